"""accounts: interests picked at sign-up (hashtags, for the For You cold start)

Revision ID: r0020
Revises: r0010
Create Date: 2026-11-23 19:00:00

Made on a branch of its own off r0001 (where `accounts` was created), the feed's only change to
a region table; since the history is one line, it follows r0010.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0020"
down_revision: str | None = "r0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.add_column(sa.Column("interests", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.drop_column("interests")
