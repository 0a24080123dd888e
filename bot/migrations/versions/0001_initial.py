"""Initial schema: sessions, turns, feedback, unanswered questions, daily counts, Messenger state.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False, index=True),
    )
    op.create_table(
        "turns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(64), sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16)),
        sa.Column("reply_id", sa.String(32), unique=True),
        sa.Column("created_at", TS, nullable=False, index=True),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("reply_id", sa.String(32), nullable=False, index=True),
        sa.Column("rating", sa.String(4), nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("reply_kind", sa.String(16)),
        sa.Column("reply_text", sa.Text),
        sa.Column("question", sa.Text),
        sa.Column("handled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", TS, nullable=False, index=True),
    )
    op.create_table(
        "unanswered",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("session_id", sa.String(64)),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("handled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", TS, nullable=False, index=True),
    )
    op.create_table(
        "daily_counts",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_table(
        "messenger_mids",
        sa.Column("mid", sa.String(255), primary_key=True),
        sa.Column("created_at", TS, nullable=False, index=True),
    )
    op.create_table(
        "messenger_threads",
        sa.Column("psid_hash", sa.String(64), primary_key=True),
        sa.Column("session_id", sa.String(64)),
        sa.Column("last_seen", TS),
        sa.Column("human_until", TS),
    )


def downgrade() -> None:
    for table in ("messenger_threads", "messenger_mids", "daily_counts", "unanswered", "feedback", "turns",
                  "sessions"):
        op.drop_table(table)
