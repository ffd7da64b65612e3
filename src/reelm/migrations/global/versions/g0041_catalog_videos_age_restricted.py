"""catalog_videos: age_restricted, never shown to viewers under 18

Revision ID: g0041
Revises: g0040
Create Date: 2026-12-03 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "g0041"
down_revision: str | None = "g0040"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_videos") as batch_op:
        batch_op.add_column(
            sa.Column("age_restricted", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("catalog_videos") as batch_op:
        batch_op.drop_column("age_restricted")
