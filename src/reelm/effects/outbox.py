"""The outbox of one region transaction: effects written beside the action that causes them.

Lower than the dispatcher (effects/service.py), so an Egress writer that runs in a region's
transaction can emit further effects of that region's user (a follow removed there changes
public counters) without importing the dispatcher.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from reelm.db import new_id, utcnow
from reelm.effects.models import Effect
from reelm.residency.egress import PublicRecord, check_public, destination


@dataclass(frozen=True)
class Emitted:
    """One effect as the dispatcher handles it: read back from the outbox, or kept in memory by
    the action that just emitted it (so the dispatch right after the commit reads nothing)."""

    id: str
    owner_id: str
    lane: str | None
    created_at: datetime
    record: PublicRecord | None  # None: the payload could not be read back (a poison effect)
    error: str | None = None
    region: str | None = None  # where the action believed the recipient lives (a hint only)


Federator = Callable[[Session, str, PublicRecord, "str | None"], bool]
"""Given (the action's session, its actor, a record being emitted, its region hint): whether
the record is still emitted as an effect. Federation adds its deliveries to other servers to
the same session, so they commit with the action or not at all."""
_FEDERATORS: list[Federator] = []


def federate_with(federator: Federator) -> None:
    """Register the federation's view of every emitted record (reelm.federation does, when its
    schemas are imported): what a local action sends a remote actor becomes a delivery."""
    if federator not in _FEDERATORS:
        _FEDERATORS.append(federator)


class Outbox:
    """The effects of one action, added to the action's region transaction."""

    def __init__(self, session: Session, owner_id: str) -> None:
        self.session = session
        self.owner_id = owner_id
        self.emitted: list[Emitted] = []

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.emitted]

    def emit(self, record: PublicRecord, *, region: str | None = None) -> None:
        """Queue `record` for where it lands. It is checked as Egress checks it, now: a record
        that may not leave the region fails the action, before anything commits. `region`: the
        recipient's home as the action read it, so the dispatch right after the commit need
        not read it again (the target's residency check still decides)."""
        checked = check_public(record)
        keep = True
        for federator in _FEDERATORS:
            keep = federator(self.session, self.owner_id, checked, region) and keep
        if not keep:
            return
        lane = destination(checked).lane
        effect = Effect(
            id=new_id(),
            owner_id=self.owner_id,
            kind=type(checked).__name__,
            payload=checked.model_dump_json(),
            lane=lane(checked) if lane else None,
            ordinal=len(self.emitted),
            created_at=utcnow(),
        )
        self.session.add(effect)
        self.emitted.append(
            Emitted(
                effect.id, self.owner_id, effect.lane, effect.created_at, checked, region=region
            )
        )
