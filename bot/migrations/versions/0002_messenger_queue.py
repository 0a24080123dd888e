"""Messenger durable queue: accepted events, the outbox of replies, staff flags and channel status.

Revision ID: 0002_messenger_queue
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_messenger_queue"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "messenger_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("psid_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("standby", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("payload", sa.Text),
        sa.Column("event_time", TS),
        sa.Column("received_at", TS, nullable=False, index=True),
        sa.Column("next_at", TS, nullable=False),
        sa.Column("lease_until", TS),
        sa.Column("worker", sa.String(64)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("outcome", sa.String(32)),
        sa.Column("finished_at", TS),
        sa.Index("ix_messenger_events_open", "status", "psid_hash", "id"),
    )
    op.create_table(
        "messenger_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Integer, sa.ForeignKey("messenger_events.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("idem_key", sa.String(64), nullable=False, unique=True),
        sa.Column("body", sa.Text),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempted_at", TS),
        sa.Column("message_id", sa.String(255)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS),
    )
    op.create_table(
        "messenger_flags",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("psid_hash", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(64)),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("handled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", TS, nullable=False, index=True),
    )
    op.create_table(
        "messenger_status",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("messenger_status", "messenger_flags", "messenger_outbox", "messenger_events"):
        op.drop_table(table)
