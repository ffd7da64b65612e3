"""Moderation input and output, and the one PUBLIC record a report sends out of its region."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from reelm.audit.entries import ReportReceived
from reelm.audit.log import append_entries
from reelm.db import utcnow
from reelm.moderation.models import CaseState, ModerationCase, open_key
from reelm.residency.egress import PublicRecord, public_schema

Reason = Literal[
    "spam",
    "harassment_or_bullying",
    "hate",
    "violence",
    "sexual_content",
    "minor_safety",
    "dangerous_acts",
    "intellectual_property",
    "misinformation",
    "other",
]
Kind = Literal["video", "comment", "account"]


class ReportCreate(BaseModel):
    """A report: the kind of content, which one (a video or comment id, an account's handle),
    a reason from the fixed list, and for `other` a few words of why."""

    model_config = ConfigDict(extra="forbid")
    kind: Kind
    target: str = Field(min_length=1, max_length=40)
    reason: Reason
    text: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _other_says_why(self) -> ReportCreate:
        if self.reason == "other" and not self.text.strip():
            raise ValueError("a report for another reason says why in `text`")
        return self


class ReportRead(BaseModel):
    id: str
    kind: Kind
    target: str
    reason: Reason
    created_at: datetime
    counted: bool  # false: this user had reported it already, so it counts once


def open_case(region: Session, *, owner_id: str, kind: str, target_id: str) -> ModerationCase:
    """The open case about a target in its owner's region, opened when there is none."""
    key = open_key(kind, target_id)
    case = region.scalar(select(ModerationCase).where(ModerationCase.open_key == key))
    if case is None:
        case = ModerationCase(
            owner_id=owner_id,
            target_kind=kind,
            target_id=target_id,
            open_key=key,
            state=CaseState.OPEN,
        )
        region.add(case)
        region.flush()
    return case


def _receive_report(region: Session, record: ReportRecord) -> None:
    """In the content owner's region: count the report into the target's open case and log it."""
    case = open_case(region, owner_id=record.owner_id, kind=record.kind, target_id=record.target_id)
    reasons = json.loads(case.reasons)
    reasons[record.reason] = reasons.get(record.reason, 0) + 1
    case.reasons = json.dumps(reasons, sort_keys=True)
    case.report_count += 1
    case.updated_at = utcnow()
    region.flush()
    append_entries(
        region, [ReportReceived(case=case.id, target_kind=record.kind, reason=record.reason)]
    )


@public_schema(_receive_report, recipient="owner_id")
class ReportRecord(PublicRecord):
    """The public part of a report, written into the region of the user whose content it is:
    what was reported and why. Never who reported it, never their words."""

    owner_id: str
    kind: Kind
    target_id: str
    reason: Reason
