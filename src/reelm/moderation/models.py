"""Moderation tables. A report is its reporter's protected data, in the reporter's region; a case
is the public part of the reports about one piece of content, in the region of the user whose
content it is (its `owner_id`), where that region's operator moderates it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from reelm.db import ID, RegionModel, UTCDateTime, new_id, utcnow


class TargetKind(StrEnum):
    VIDEO = "video"
    COMMENT = "comment"
    ACCOUNT = "account"


REASONS = (
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
)
"""The fixed list a reporter picks from (and the rules an action names)."""


class Report(RegionModel):
    """`owner_id` reported one piece of content, once (a second report of it counts nothing).
    `text` is what the reporter wrote for `other`; it never leaves their region."""

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("owner_id", "target_kind", "target_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    target_kind: Mapped[str] = mapped_column(String(10))
    target_id: Mapped[str] = mapped_column(ID)
    reason: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class CaseState(StrEnum):
    OPEN = "open"  # in the queue
    CLOSED = "closed"  # acted on or dismissed


class ModerationCase(RegionModel):
    """The queue item about one piece of `owner_id`'s content: how many reports of each reason
    reached this region (counts only, no reporter), or the automatic hold that opened it.
    `open_key` is the target while the case is open, so one target has one open case."""

    __tablename__ = "moderation_cases"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    target_kind: Mapped[str] = mapped_column(String(10))
    target_id: Mapped[str] = mapped_column(ID, index=True)
    open_key: Mapped[str | None] = mapped_column(String(48), unique=True, default=None)
    state: Mapped[str] = mapped_column(String(10), default=CaseState.OPEN, index=True)
    report_count: Mapped[int] = mapped_column(Integer, default=0)
    reasons: Mapped[str] = mapped_column(Text, default="{}")  # {reason: count} as JSON
    hold: Mapped[str | None] = mapped_column(String(40), default=None)  # e.g. "blocked_term"
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


def open_key(target_kind: str, target_id: str) -> str:
    return f"{target_kind}:{target_id}"
