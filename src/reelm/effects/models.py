"""The outbox of a region, the keys that make applying an effect happen once, and the replies
remembered for clients that retry with an Idempotency-Key."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from reelm.db import ID, GlobalModel, RegionModel, UTCDateTime, new_id, utcnow


class EffectState(StrEnum):
    PENDING = "pending"  # waiting to be applied (or to be tried again at `next_attempt_at`)
    PARKED = "parked"  # failed MAX_FAILURES times with an error that is not a wait; shown by
    # `reelm effects list`, tried again by `reelm effects retry`


class Effect(RegionModel):
    """One pending change to another database, written in the same transaction as the action
    that causes it and owned by the user whose action that is: the carve-out moves it with its
    owner, the scanner checks it, the export and the purge include it. The row is deleted once
    the effect is applied; `payload` is a registered Egress record (public fields only)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    # effects of one lane (one comment, one video) apply in the order they were written
    lane: Mapped[str | None] = mapped_column(String(80), default=None, index=True)
    ordinal: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(10), default=EffectState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReceivedEffect(RegionModel):
    """The applied-effects key on a region's side: effect `id` has been written into this
    region for `owner_id` (the recipient). Written in the same transaction as the effect's
    record, so a dispatcher that reruns after a crash finds it and applies nothing twice; it is
    the recipient's row, so it moves with them in a carve-out together with what it guards."""

    __tablename__ = "received_effects"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class AppliedEffect(GlobalModel):
    """The applied-effects key on the catalog's side (an effect id and when; nothing else)."""

    __tablename__ = "applied_effects"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class IdempotentReply(RegionModel):
    """The first answer to a create request sent with an `Idempotency-Key`, kept for a day so a
    client that retries (after a timeout, a 503, a lost connection) gets the same result and
    creates nothing twice. `fingerprint` is a digest of what was asked: the same key with a
    different request is refused."""

    __tablename__ = "idempotent_replies"
    __table_args__ = (UniqueConstraint("owner_id", "key"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    reply: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
