"""data_exports: the message of a failed export, shown to its user

Revision ID: r0040
Revises: r0030
Create Date: 2026-12-03 07:00:00

Made on a branch of its own off r0003 (where `data_exports` was created); since the history
is one line, it follows r0030.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0040"
down_revision: str | None = "r0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("data_exports") as batch_op:
        batch_op.add_column(sa.Column("error", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("data_exports") as batch_op:
        batch_op.drop_column("error")
