"""effects: the catalog's keys of applied effects

Revision ID: g0040
Revises: g0030
Create Date: 2026-12-03 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reelm.db

revision: str = "g0040"
down_revision: str | None = "g0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "applied_effects",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("applied_at", reelm.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applied_effects")),
    )
    with op.batch_alter_table("applied_effects") as batch_op:
        batch_op.create_index(batch_op.f("ix_applied_effects_applied_at"), ["applied_at"])


def downgrade() -> None:
    op.drop_table("applied_effects")
