"""operations: worker heartbeats, retention indexes, secrets encrypted at rest

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

- ``workers``: one row per live worker process (its heartbeat), read by /readyz and the metrics.
- Indexes the retention task walks in bounded batches: finished deliveries and events by age, jobs and
  analyses by completion.
- Secret columns widened to text, and every clear secret already stored encrypted with the deployment's key
  (webhook signing secrets of accounts and endpoints, endpoint option values, Slack incoming-webhook URLs).
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# (table, primary key, column, kind): the secret columns; "json" columns hold an object whose string values
# are each encrypted.
SECRET_COLUMNS = (
    ("accounts", "id", "webhook_secret", "text"),
    ("accounts", "id", "previous_webhook_secret", "text"),
    ("webhook_secrets", "id", "value", "text"),
    ("slack_connections", "account_id", "url", "text"),
    ("webhook_endpoints", "id", "options", "json"),
)


def _encrypt_existing(decrypt: bool = False) -> None:
    from dossier.db.secrets import PREFIX, keyring_of, reencrypt

    bind = op.get_bind()
    keyring = keyring_of(bind.dialect)

    def convert(value: str) -> str:
        if decrypt:
            return str(keyring.decrypt(value))
        return value if value.startswith(PREFIX) else str(keyring.encrypt(value))

    reencrypt(bind, SECRET_COLUMNS, convert)


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    op.create_index(op.f("ix_workers_last_seen_at"), "workers", ["last_seen_at"], unique=False)
    op.create_index(
        "ix_webhook_deliveries_status_created", "webhook_deliveries", ["status", "created_at"], unique=False
    )
    op.create_index("ix_webhook_events_created", "webhook_events", ["created_at"], unique=False)
    op.create_index("ix_jobs_status_completed", "jobs", ["status", "completed_at"], unique=False)
    op.create_index("ix_analyses_status_completed", "analyses", ["status", "completed_at"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # SQLite does not enforce VARCHAR lengths; an encrypted secret is longer than the clear one was.
        op.alter_column("accounts", "webhook_secret", type_=sa.Text(), existing_type=sa.String(length=100))
        op.alter_column(
            "accounts", "previous_webhook_secret", type_=sa.Text(), existing_type=sa.String(length=100)
        )
        op.alter_column("webhook_secrets", "value", type_=sa.Text(), existing_type=sa.String(length=100))
    _encrypt_existing()


def downgrade() -> None:
    _encrypt_existing(decrypt=True)
    op.drop_index("ix_analyses_status_completed", table_name="analyses")
    op.drop_index("ix_jobs_status_completed", table_name="jobs")
    op.drop_index("ix_webhook_events_created", table_name="webhook_events")
    op.drop_index("ix_webhook_deliveries_status_created", table_name="webhook_deliveries")
    op.drop_index(op.f("ix_workers_last_seen_at"), table_name="workers")
    op.drop_table("workers")
