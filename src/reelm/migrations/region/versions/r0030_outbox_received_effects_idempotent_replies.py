"""effects: the region's outbox, the applied keys of effects it received, idempotent replies

Revision ID: r0030
Revises: r0021
Create Date: 2026-12-03 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reelm.db

revision: str = "r0030"
down_revision: str | None = "r0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("lane", sa.String(length=80), nullable=True),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", reelm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", reelm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.create_index("ix_outbox_state_next_attempt_at", ["state", "next_attempt_at"])
        batch_op.create_index(batch_op.f("ix_outbox_lane"), ["lane"])
        batch_op.create_index(batch_op.f("ix_outbox_owner_id"), ["owner_id"])

    op.create_table(
        "received_effects",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("applied_at", reelm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_received_effects")),
    )
    with op.batch_alter_table("received_effects") as batch_op:
        batch_op.create_index(batch_op.f("ix_received_effects_applied_at"), ["applied_at"])
        batch_op.create_index(batch_op.f("ix_received_effects_owner_id"), ["owner_id"])

    op.create_table(
        "idempotent_replies",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("created_at", reelm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotent_replies")),
        sa.UniqueConstraint("owner_id", "key", name=op.f("uq_idempotent_replies_owner_id")),
    )
    with op.batch_alter_table("idempotent_replies") as batch_op:
        batch_op.create_index(batch_op.f("ix_idempotent_replies_created_at"), ["created_at"])
        batch_op.create_index(batch_op.f("ix_idempotent_replies_owner_id"), ["owner_id"])


def downgrade() -> None:
    op.drop_table("idempotent_replies")
    op.drop_table("received_effects")
    op.drop_table("outbox")
