"""Staff knowledge: FAQ entries and clinic details, their versions, and the audit log.

Revision ID: 0003_staff_knowledge
Revises: 0002_messenger_queue
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_staff_knowledge"
down_revision = "0002_messenger_queue"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "kb_entries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("slug", sa.String(96), nullable=False, unique=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("published_version", sa.Integer),
        sa.Column("unanswered_ids", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "kb_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.Integer, sa.ForeignKey("kb_entries.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("applies_to", sa.Text, nullable=False),
        sa.Column("author", sa.String(80), nullable=False),
        sa.Column("author_role", sa.String(12), nullable=False, server_default="editor"),
        sa.Column("flags", sa.Text, nullable=False),
        sa.Column("approved_by", sa.String(80)),
        sa.Column("was_published", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("vectors", sa.LargeBinary),
        sa.Column("model", sa.String(64)),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("entry_id", "version", name="uq_kb_versions_entry_version"),
    )
    revision_table = op.create_table(
        "kb_revision",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("n", sa.Integer, nullable=False),
    )
    op.bulk_insert(revision_table, [{"id": 1, "n": 0}])  # the one row every change bumps
    op.create_table(
        "kb_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("entry_id", sa.Integer, nullable=False, index=True),
        sa.Column("version", sa.Integer),
        sa.Column("question", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("kb_audit")
    op.drop_table("kb_revision")
    op.drop_table("kb_versions")
    op.drop_table("kb_entries")
