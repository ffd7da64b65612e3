"""Tables of a region's audit log: entries, Merkle tree nodes, signed checkpoints and the head row.

They are `RegionSystemModel` tables: owned by the region, never moved or scanned as a user's
protected rows, and they hold only pseudonymous ids (see `reelm.audit.entries`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, LargeBinary, SmallInteger, Text
from sqlalchemy.orm import Mapped, mapped_column

from reelm.db import RegionSystemModel, UTCDateTime, utcnow

# SQLite only treats INTEGER PRIMARY KEY as the rowid; PostgreSQL wants a 64-bit column.
Index64 = BigInteger().with_variant(Integer(), "sqlite")


class AuditEntry(RegionSystemModel):
    """One leaf of the log: the entry's canonical JSON bytes exactly as hashed.

    `leaf_hash` repeats the level-0 node so a page of entries is served with one read; a
    verifier recomputes it from `data` and never trusts either copy.
    """

    __tablename__ = "audit_entries"

    idx: Mapped[int] = mapped_column(Index64, primary_key=True, autoincrement=False)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class AuditNode(RegionSystemModel):
    """The tree in `reelm.audit.merkle.HashSource`'s layout: level 0 holds the leaf hashes; level
    k at `idx` holds the hash of the complete aligned block of leaves [idx * 2^k, (idx + 1) * 2^k),
    written once when the block fills and never changed, so proofs for past sizes keep working.
    Only even levels are stored; a node of an odd level is hashed from its two children when read
    (`reelm.audit.log._stored`)."""

    __tablename__ = "audit_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)


class AuditCheckpoint(RegionSystemModel):
    """A signed checkpoint (C2SP signed note) of the tree at `size` leaves.

    One per size: Ed25519 signatures are deterministic, so signing the same tree head twice
    gives the same note and concurrent signers can both insert-or-ignore.
    """

    __tablename__ = "audit_checkpoints"

    size: Mapped[int] = mapped_column(Index64, primary_key=True, autoincrement=False)
    note: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class AuditHead(RegionSystemModel):
    """The single row (`id` = 1) holding the tree size: appenders lock it to serialise.

    Every append starts with `UPDATE audit_head SET size = size + n`, which takes the row lock on
    PostgreSQL and the database write lock on SQLite before anything is read, so two appenders
    never see the same size and never fork the tree.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
