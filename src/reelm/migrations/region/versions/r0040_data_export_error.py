"""data_exports: the message of a failed export, shown to its user

Revision ID: r0040
Revises: r0003
Create Date: 2026-12-03 07:00:00

On its own branch off r0003 (where `data_exports` was created): only data rights touch it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0040"
down_revision: str | None = "r0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("data_exports") as batch_op:
        batch_op.add_column(sa.Column("error", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("data_exports") as batch_op:
        batch_op.drop_column("error")
