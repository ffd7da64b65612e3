"""foryou_candidates: each user's precomputed For You candidate set, in their home region

Revision ID: r0043
Revises: r0042
Create Date: 2026-12-03 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reelm.db

revision: str = "r0043"
down_revision: str | None = "r0042"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "foryou_candidates",
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("built_at", reelm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("model_trained_at", reelm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", name=op.f("pk_foryou_candidates")),
    )


def downgrade() -> None:
    op.drop_table("foryou_candidates")
