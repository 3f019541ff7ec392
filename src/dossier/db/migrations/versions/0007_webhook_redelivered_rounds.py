"""webhook sweeps make first attempts too: a delivery remembers that its round was started by hand

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("redelivered", sa.Boolean(), server_default=sa.false(), nullable=False))
    # Before this column, a pending delivery at the start of a later round was a manual redelivery.
    op.execute(
        "UPDATE webhook_deliveries SET redelivered = true "
        "WHERE status = 'pending' AND attempts > 0 AND attempts = round_start"
    )


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_column("redelivered")
