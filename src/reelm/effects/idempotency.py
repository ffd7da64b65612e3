"""Idempotency keys: a client that retries a create request (a comment, an upload, a share)
with the same `Idempotency-Key` gets the first answer back, and nothing is created twice.

The reply is stored in the same transaction as what the request created, in the requester's
region (it is their data: the key and the answer they were given), and kept for REPLY_TTL.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from reelm.db import utcnow
from reelm.effects.models import IdempotentReply
from reelm.errors import InvalidInput
from reelm.residency.store import Platform

REPLY_TTL = timedelta(hours=24)
_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII, as in draft-ietf-httpapi-idempotency-key


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency_key_reused"


@dataclass(frozen=True)
class Idempotency:
    """One request's key and the digest of what it asks for."""

    key: str
    fingerprint: str

    @classmethod
    def of(cls, key: str | None, scope: str, *parts: object) -> Idempotency | None:
        """`None` without a key; otherwise the key checked and the request's fingerprint."""
        if key is None:
            return None
        if not _KEY.fullmatch(key):
            raise InvalidInput(
                "The Idempotency-Key header must be 1 to 255 visible ASCII characters.",
                code="bad_idempotency_key",
            )
        digest = hashlib.sha256(json.dumps([scope, *parts], sort_keys=True, default=str).encode())
        return cls(key, digest.hexdigest())


def recall(session: Session, owner_id: str, request: Idempotency | None) -> str | None:
    """The stored reply to this key, or None if the key is new (or expired). The same key with
    a different request: 422, nothing done."""
    if request is None:
        return None
    row = session.scalar(
        select(IdempotentReply).where(
            IdempotentReply.owner_id == owner_id,
            IdempotentReply.key == request.key,
            IdempotentReply.created_at > utcnow() - REPLY_TTL,
        )
    )
    if row is None:
        return None
    if row.fingerprint != request.fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a different request; send a new key "
            "for a new request."
        )
    return row.reply


def remember(session: Session, owner_id: str, request: Idempotency | None, reply: str) -> None:
    """Store `reply` under the key, in the caller's transaction (a concurrent duplicate fails
    its commit on the unique key, and then finds this reply)."""
    if request is None:
        return
    session.execute(
        delete(IdempotentReply).where(
            IdempotentReply.owner_id == owner_id,
            IdempotentReply.key == request.key,
            IdempotentReply.created_at <= utcnow() - REPLY_TTL,
        )
    )
    session.add(
        IdempotentReply(
            owner_id=owner_id, key=request.key, fingerprint=request.fingerprint, reply=reply
        )
    )
    session.flush()


def replay(platform: Platform, region: str, owner_id: str, request: Idempotency | None) -> str | None:
    """`recall` in its own session of `region` (for the retry that lost a race at commit)."""
    if request is None:
        return None
    with platform.region(region).session() as s:
        return recall(s, owner_id, request)


def prune_replies(platform: Platform, region: str) -> int:
    with platform.region(region).transaction() as s:
        result = s.execute(
            delete(IdempotentReply).where(IdempotentReply.created_at <= utcnow() - REPLY_TTL)
        )
    return int(getattr(result, "rowcount", 0) or 0)
