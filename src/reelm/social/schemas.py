"""Social schemas, and the PUBLIC records that carry behaviour's public side out of a region."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import update
from sqlalchemy.orm import Session

from reelm.media.models import PublishedVideo
from reelm.residency.egress import PublicRecord, public_schema
from reelm.social.models import Notification, PublicComment, PublicCounts
from reelm.text import UserText

MAX_COMMENT = 500


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: UserText = Field(min_length=1, max_length=MAX_COMMENT)
    parent_id: str | None = Field(default=None, max_length=32)


class CommentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    video_id: str
    author_handle: str
    parent_id: str | None
    text: str
    created_at: datetime
    like_count: int


class WatchReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    video_id: str = Field(max_length=32)
    watched_ms: int = Field(ge=0, le=3_600_000)
    completed: bool = False


class WatchBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[WatchReport] = Field(max_length=100)


class NotificationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    kind: str
    actor_handle: str
    video_id: str | None
    comment_id: str | None
    snippet: str
    created_at: datetime
    read: bool


class FollowState(BaseModel):
    handle: str
    state: Literal["active", "pending", "none"]


def _write_comment(catalog: Session, record: PublicCommentRecord) -> None:
    row = catalog.get(PublicComment, record.id)
    if row is None:
        catalog.add(PublicComment(**record.model_dump()))
    else:
        row.text = record.text
    catalog.flush()


@public_schema(_write_comment)
class PublicCommentRecord(PublicRecord):
    """A comment's published text: exactly these fields leave the author's region."""

    id: str
    video_id: str
    author_id: str
    author_handle: str
    parent_id: str | None
    text: str
    created_at: datetime


VIDEO_COUNTS = {"like_count", "comment_count", "share_count", "view_count"}
USER_COUNTS = {"followers", "following", "likes_received", "videos"}


def _write_count(catalog: Session, record: CountChange) -> None:
    if record.target == "video":
        if record.field not in VIDEO_COUNTS:
            raise ValueError(record.field)
        column = getattr(PublishedVideo, record.field)
        catalog.execute(
            update(PublishedVideo)
            .where(PublishedVideo.id == record.id)
            .values({column: column + record.delta})
        )
    else:
        if record.field not in USER_COUNTS:
            raise ValueError(record.field)
        if catalog.get(PublicCounts, record.id) is None:
            catalog.add(PublicCounts(user_id=record.id))
            catalog.flush()
        column = getattr(PublicCounts, record.field)
        catalog.execute(
            update(PublicCounts)
            .where(PublicCounts.user_id == record.id)
            .values({column: column + record.delta})
        )


@public_schema(_write_count)
class CountChange(PublicRecord):
    """A change of a public aggregate: non-personal numbers, applied atomically in the catalog."""

    target: Literal["video", "user"]
    id: str
    field: Literal[
        "like_count",
        "comment_count",
        "share_count",
        "view_count",
        "followers",
        "following",
        "likes_received",
        "videos",
    ]
    delta: int


def _write_notification(region: Session, record: NotificationRecord) -> None:
    region.add(
        Notification(owner_id=record.recipient_id, **record.model_dump(exclude={"recipient_id"}))
    )
    region.flush()


@public_schema(_write_notification)
class NotificationRecord(PublicRecord):
    """What crosses into the recipient's region: who (public handle) did what to which public
    thing. No protected field of the actor ever travels."""

    recipient_id: str
    kind: Literal["like", "comment", "reply", "follow", "follow_request", "mention"]
    actor_id: str
    actor_handle: str
    video_id: str | None = None
    comment_id: str | None = None
    snippet: str = ""
