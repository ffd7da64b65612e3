"""Behaviour records (region tables, owned by the actor) and their public projections (catalog)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from reelm.db import ID, GlobalModel, RegionModel, UTCDateTime, new_id, utcnow


class FollowStatus(StrEnum):
    ACTIVE = "active"
    PENDING = "pending"  # asked of a private account, not yet approved
    NONE = "none"  # no follow (answers only; never stored)


class Follow(RegionModel):
    """`owner_id` follows `followee_id`; `pending` until a private account approves."""

    __tablename__ = "follows"
    __table_args__ = (UniqueConstraint("owner_id", "followee_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    followee_id: Mapped[str] = mapped_column(ID, index=True)
    state: Mapped[str] = mapped_column(String(10), default=FollowStatus.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Like(RegionModel):
    __tablename__ = "likes"
    __table_args__ = (UniqueConstraint("owner_id", "video_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    video_id: Mapped[str] = mapped_column(ID, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Save(RegionModel):
    __tablename__ = "saves"
    __table_args__ = (UniqueConstraint("owner_id", "video_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    video_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Share(RegionModel):
    __tablename__ = "shares"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    video_id: Mapped[str] = mapped_column(ID, index=True)
    channel: Mapped[str] = mapped_column(String(20), default="link")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotInterested(RegionModel):
    __tablename__ = "not_interested"
    __table_args__ = (UniqueConstraint("owner_id", "video_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    video_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Block(RegionModel):
    """`owner_id` blocks `target_id`: neither sees the other's videos, comments or profile."""

    __tablename__ = "blocks"
    __table_args__ = (UniqueConstraint("owner_id", "target_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    target_id: Mapped[str] = mapped_column(ID, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Mute(RegionModel):
    """`owner_id` mutes `target_id`: their videos leave the owner's feeds; nothing else changes."""

    __tablename__ = "mutes"
    __table_args__ = (UniqueConstraint("owner_id", "target_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    target_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Comment(RegionModel):
    """The source of a comment, in its author's region; its published text is in the catalog."""

    __tablename__ = "comments"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    video_id: Mapped[str] = mapped_column(ID, index=True)
    parent_id: Mapped[str | None] = mapped_column(ID, default=None)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class WatchEvent(RegionModel):
    """How long the viewer watched a video, reported by the player in batches."""

    __tablename__ = "watch_events"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    video_id: Mapped[str] = mapped_column(ID, index=True)
    watched_ms: Mapped[int] = mapped_column(Integer)
    completed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Notification(RegionModel):
    """A notification in its recipient's region (`owner_id` = recipient), public fields only."""

    __tablename__ = "notifications"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str] = mapped_column(ID)
    actor_handle: Mapped[str] = mapped_column(String(30))
    video_id: Mapped[str | None] = mapped_column(ID, default=None)
    comment_id: Mapped[str | None] = mapped_column(ID, default=None)
    snippet: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class PublicComment(GlobalModel):
    """PublicCatalog: a comment's published text. Written only through Egress."""

    __tablename__ = "catalog_comments"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    video_id: Mapped[str] = mapped_column(
        ID, ForeignKey("catalog_videos.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[str] = mapped_column(ID, ForeignKey("directory.user_id", ondelete="CASCADE"))
    author_handle: Mapped[str] = mapped_column(String(30))
    parent_id: Mapped[str | None] = mapped_column(ID, default=None)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    like_count: Mapped[int] = mapped_column(Integer, default=0)


class PublicCounts(GlobalModel):
    """PublicCatalog: a user's public, non-personal numbers."""

    __tablename__ = "catalog_user_counts"

    user_id: Mapped[str] = mapped_column(
        ID, ForeignKey("directory.user_id", ondelete="CASCADE"), primary_key=True
    )
    followers: Mapped[int] = mapped_column(Integer, default=0)
    following: Mapped[int] = mapped_column(Integer, default=0)
    likes_received: Mapped[int] = mapped_column(Integer, default=0)
    videos: Mapped[int] = mapped_column(Integer, default=0)
