"""reports (the reporter's) and moderation cases (the content owner's region's queue)

Revision ID: r0046
Revises: r0045
Create Date: 2026-12-04 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reelm.db

revision: str = "r0046"
down_revision: str | None = "r0045"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("target_kind", sa.String(length=10), nullable=False),
        sa.Column("target_id", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", reelm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint(
            "owner_id", "target_kind", "target_id", name=op.f("uq_reports_owner_id")
        ),
    )
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reports_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_reports_owner_id"), ["owner_id"], unique=False)
    op.create_table(
        "moderation_cases",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("target_kind", sa.String(length=10), nullable=False),
        sa.Column("target_id", sa.String(length=32), nullable=False),
        sa.Column("open_key", sa.String(length=48), nullable=True),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("report_count", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("hold", sa.String(length=40), nullable=True),
        sa.Column("opened_at", reelm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", reelm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", reelm.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_cases")),
        sa.UniqueConstraint("open_key", name=op.f("uq_moderation_cases_open_key")),
    )
    with op.batch_alter_table("moderation_cases", schema=None) as batch_op:
        for column in ("opened_at", "owner_id", "state", "target_id"):
            batch_op.create_index(
                batch_op.f(f"ix_moderation_cases_{column}"), [column], unique=False
            )


def downgrade() -> None:
    op.drop_table("moderation_cases")
    op.drop_table("reports")
