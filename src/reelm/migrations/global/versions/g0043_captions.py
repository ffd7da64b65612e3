"""catalog_videos: a public video's closed captions (WebVTT)

Revision ID: g0043
Revises: g0042
Create Date: 2026-12-03 13:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "g0043"
down_revision: str | None = "g0042"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_videos") as batch_op:
        batch_op.add_column(sa.Column("captions_vtt", sa.Text(), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("catalog_videos") as batch_op:
        batch_op.drop_column("captions_vtt")
