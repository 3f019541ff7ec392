"""registry entities: street address, postal code and parent company

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registry_entities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("address", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("postal_code", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("parent_kernel_id", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("registry_entities", schema=None) as batch_op:
        batch_op.drop_column("parent_kernel_id")
        batch_op.drop_column("postal_code")
        batch_op.drop_column("address")
