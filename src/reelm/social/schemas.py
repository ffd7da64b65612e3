"""Social schemas, and the PUBLIC records that carry behaviour's public side out of a region."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from reelm.effects.outbox import Outbox
from reelm.media.models import PublishedVideo
from reelm.residency.egress import PublicRecord, public_schema
from reelm.social.models import Follow, FollowStatus, Notification, PublicComment, PublicCounts
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
    """Publish (or edit) a comment; a new one counts on its video. A reply whose parent was
    removed meanwhile is not published: it would hang under nothing."""
    row = catalog.get(PublicComment, record.id)
    if row is not None:
        row.text = record.text
        catalog.flush()
        return
    if record.parent_id is not None and catalog.get(PublicComment, record.parent_id) is None:
        return
    catalog.add(PublicComment(**record.model_dump()))
    catalog.flush()
    _add_to_count(catalog, PublishedVideo.comment_count, PublishedVideo.id == record.video_id, 1)


def _add_to_count(catalog: Session, column: Any, where: Any, delta: int) -> None:
    catalog.execute(update(column.class_).where(where).values({column: column + delta}))


def _comment_lane(record: PublicCommentRecord | CommentRemoval) -> str:
    return f"comment:{record.id}"


@public_schema(_write_comment, lane=_comment_lane)
class PublicCommentRecord(PublicRecord):
    """A comment's published text: exactly these fields leave the author's region."""

    id: str
    video_id: str
    author_id: str
    author_handle: str
    parent_id: str | None
    text: str
    created_at: datetime


def _remove_comment(catalog: Session, record: CommentRemoval) -> None:
    """Take a comment and its replies out of the catalog; its video counts what was removed."""
    removed = catalog.execute(
        delete(PublicComment).where(
            (PublicComment.id == record.id) | (PublicComment.parent_id == record.id)
        )
    )
    n = int(getattr(removed, "rowcount", 0) or 0)
    if n:
        _add_to_count(
            catalog, PublishedVideo.comment_count, PublishedVideo.id == record.video_id, -n
        )


@public_schema(_remove_comment, lane=_comment_lane)
class CommentRemoval(PublicRecord):
    """A comment (and its replies) is deleted: its id and its video's, nothing else."""

    id: str
    video_id: str


class CounterKind(StrEnum):
    """The public aggregates a `CountChange` moves."""

    LIKE_COUNT = "like_count"
    COMMENT_COUNT = "comment_count"
    SHARE_COUNT = "share_count"
    VIEW_COUNT = "view_count"
    FOLLOWERS = "followers"
    FOLLOWING = "following"
    LIKES_RECEIVED = "likes_received"
    VIDEOS = "videos"


VIDEO_COUNTS = {
    CounterKind.LIKE_COUNT,
    CounterKind.COMMENT_COUNT,
    CounterKind.SHARE_COUNT,
    CounterKind.VIEW_COUNT,
}
USER_COUNTS = set(CounterKind) - VIDEO_COUNTS


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
        # one statement: the user's row is made at their first count (an upsert on both
        # backends, so two dispatchers counting a new user at once never collide)
        column = getattr(PublicCounts, record.field)
        upsert = postgresql.insert if catalog.get_bind().dialect.name == "postgresql" else sqlite.insert
        catalog.execute(
            upsert(PublicCounts)
            .values({"user_id": record.id, record.field: record.delta})
            .on_conflict_do_update(
                index_elements=[PublicCounts.user_id], set_={column: column + record.delta}
            )
        )


@public_schema(_write_count)
class CountChange(PublicRecord):
    """A change of a public aggregate: non-personal numbers, applied atomically in the catalog."""

    target: Literal["video", "user"]
    id: str
    field: CounterKind
    delta: int


def _write_notification(region: Session, record: NotificationRecord) -> None:
    region.add(
        Notification(owner_id=record.recipient_id, **record.model_dump(exclude={"recipient_id"}))
    )
    region.flush()


@public_schema(_write_notification, recipient="recipient_id")
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


def end_follow(session: Session, outbox: Outbox, follower_id: str, followee_id: str) -> None:
    """Delete `follower_id`'s follow of `followee_id` (their row, in `session`'s region, which
    must be theirs); an active one's counters change as the follower's effects in `outbox`."""
    row = session.scalar(
        select(Follow).where(Follow.owner_id == follower_id, Follow.followee_id == followee_id)
    )
    if row is None:
        return
    if row.state == FollowStatus.ACTIVE:
        for user_id, kind in ((followee_id, CounterKind.FOLLOWERS), (follower_id, CounterKind.FOLLOWING)):
            outbox.emit(CountChange(target="user", id=user_id, field=kind, delta=-1))
    session.delete(row)
    session.flush()


def _sever_follow(region: Session, record: FollowSevered) -> None:
    """End the recipient's follow of `followee_id`, in the recipient's region, emitting its
    counter changes as the recipient's own effects in this same transaction."""
    end_follow(region, Outbox(region, record.recipient_id), record.recipient_id, record.followee_id)


@public_schema(_sever_follow, recipient="recipient_id")
class FollowSevered(PublicRecord):
    """`followee_id` blocked the recipient: the recipient's follow of them (their record, in
    their region) ends. Two ids, nothing else."""

    recipient_id: str
    followee_id: str
