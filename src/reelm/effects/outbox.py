"""The outbox of one region transaction: effects written beside the action that causes them.

Lower than the dispatcher (effects/service.py), so an Egress writer that runs in a region's
transaction can emit further effects of that region's user (a follow removed there changes
public counters) without importing the dispatcher.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from reelm.effects.models import Effect
from reelm.residency.egress import PublicRecord, check_public, destination


class Outbox:
    """The effects of one action, added to the action's region transaction."""

    def __init__(self, session: Session, owner_id: str) -> None:
        self.session = session
        self.owner_id = owner_id
        self.ids: list[str] = []

    def emit(self, record: PublicRecord) -> None:
        """Queue `record` for where it lands. It is checked as Egress checks it, now: a record
        that may not leave the region fails the action, before anything commits."""
        checked = check_public(record)
        lane = destination(checked).lane
        effect = Effect(
            owner_id=self.owner_id,
            kind=type(checked).__name__,
            payload=checked.model_dump_json(),
            lane=lane(checked) if lane else None,
            ordinal=len(self.ids),
        )
        self.session.add(effect)
        self.session.flush()
        self.ids.append(effect.id)
