"""Media tables: uploads and videos in the creator's region; published videos in the catalog."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from reelm.db import ID, GlobalModel, RegionModel, UTCDateTime, new_id, utcnow


class UploadState(StrEnum):
    RECEIVING = "receiving"
    READY = "ready"
    REJECTED = "rejected"


class VideoState(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    READY = "ready"  # transcoded and stored; published unless private
    FAILED = "failed"


class Upload(RegionModel):
    """A raw upload: received into the region's work folder, probed, then kept encrypted with the
    owner's data key as the blob `<owner>/uploads/<id>.enc`."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    filename: Mapped[str] = mapped_column(String(255), default="")
    declared_size: Mapped[int] = mapped_column(BigInteger)
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(String(16), default=UploadState.RECEIVING)
    error_code: Mapped[str | None] = mapped_column(String(40), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    probe: Mapped[str | None] = mapped_column(Text, default=None)  # ProbeResult as JSON
    blob_key: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Video(RegionModel):
    """The creator's video: the edit, the publish settings and the transcode job's state."""

    __tablename__ = "videos"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    upload_id: Mapped[str] = mapped_column(ID, ForeignKey("uploads.id", ondelete="CASCADE"))
    edit: Mapped[str] = mapped_column(Text)  # EditSpec as JSON
    caption: Mapped[str] = mapped_column(Text, default="")
    # Closed captions as WebVTT (plain-text cues, times in the edited video); "" for none.
    captions_vtt: Mapped[str] = mapped_column(Text, default="", server_default="")
    visibility: Mapped[str] = mapped_column(String(16), default="public")
    allow_comments: Mapped[bool] = mapped_column(Boolean, default=True)
    allow_sound_reuse: Mapped[bool] = mapped_column(Boolean, default=True)
    sound_id: Mapped[str | None] = mapped_column(String(32), default=None)
    state: Mapped[str] = mapped_column(String(16), default=VideoState.QUEUED)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    failure: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    duration_s: Mapped[float | None] = mapped_column(Float, default=None)
    width: Mapped[int | None] = mapped_column(Integer, default=None)
    height: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Draft(RegionModel):
    """An unfinished edit of the owner's upload. What it says is sealed with the owner's data
    key in the blob `blob_key`; this row holds only ids and times (see media/drafts.py)."""

    __tablename__ = "drafts"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    upload_id: Mapped[str] = mapped_column(
        ID, ForeignKey("uploads.id", ondelete="CASCADE"), index=True
    )
    blob_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PublishedVideo(GlobalModel):
    """PublicCatalog: a published video's public fields. Written only through Egress."""

    __tablename__ = "catalog_videos"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    creator_id: Mapped[str] = mapped_column(
        ID, ForeignKey("directory.user_id", ondelete="CASCADE"), index=True
    )
    creator_handle: Mapped[str] = mapped_column(String(30))
    region: Mapped[str] = mapped_column(String(32))
    caption: Mapped[str] = mapped_column(Text, default="")
    captions_vtt: Mapped[str] = mapped_column(Text, default="", server_default="")
    visibility: Mapped[str] = mapped_column(String(16))
    allow_comments: Mapped[bool] = mapped_column(Boolean, default=True)
    allow_sound_reuse: Mapped[bool] = mapped_column(Boolean, default=True)
    # never shown to viewers under 18 nor to anonymous ones (see accounts/age.py)
    age_restricted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    sound_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    duration_s: Mapped[float] = mapped_column(Float)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    like_count: Mapped[int] = mapped_column(BigInteger, default=0)
    comment_count: Mapped[int] = mapped_column(BigInteger, default=0)
    share_count: Mapped[int] = mapped_column(BigInteger, default=0)
    view_count: Mapped[int] = mapped_column(BigInteger, default=0)

    @property
    def has_captions(self) -> bool:
        return bool(self.captions_vtt)


class VideoTag(GlobalModel):
    """Hashtags and mentions of published videos, for hashtag pages and search."""

    __tablename__ = "catalog_video_tags"

    video_id: Mapped[str] = mapped_column(
        ID, ForeignKey("catalog_videos.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # hashtag / mention
    value: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)
