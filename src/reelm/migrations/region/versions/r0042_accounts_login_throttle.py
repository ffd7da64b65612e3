"""accounts: the per-account login throttle (failures in the window, and its end)

Revision ID: r0042
Revises: r0041
Create Date: 2026-12-03 13:30:00

The rate limit of failed logins per account moves out of one process's memory into the
account's row in its home region, so several web processes share it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reelm.db

revision: str = "r0042"
down_revision: str | None = "r0041"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.add_column(
            sa.Column("login_failures", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("login_window_ends_at", reelm.db.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.drop_column("login_window_ends_at")
        batch_op.drop_column("login_failures")
