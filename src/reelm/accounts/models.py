"""Protected account tables of a region database."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reelm.db import ID, RegionModel, UTCDateTime, new_id, utcnow


class Account(RegionModel):
    """A user's private account record; `owner_id` is the user's id.

    Sensitive fields (`*_ct`) are AES-256-GCM ciphertexts under the user's own data key
    (residency/keys.py), so destroying that key shreds them in every copy of this database."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    handle: Mapped[str] = mapped_column(String(30))
    email_ct: Mapped[bytes] = mapped_column(LargeBinary)
    password_hash: Mapped[str] = mapped_column(String(200))
    birth_date_ct: Mapped[bytes] = mapped_column(LargeBinary)
    jurisdiction: Mapped[str] = mapped_column(String(2))
    display_name: Mapped[str] = mapped_column(String(60), default="")
    bio: Mapped[str] = mapped_column(String(300), default="")
    is_private: Mapped[bool] = mapped_column(default=False)
    # Hashtags picked at sign-up (a JSON list), seeding the For You feed of a new user.
    interests: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the user asks to delete their account: after this moment the account is purged
    # (rows, blobs, data key). Until then the user can log in and cancel.
    deletion_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The per-account login throttle: failed logins in the current window and when it ends.
    # The account's own data, so it lives with the account in its home region (and moves with
    # it); one UPDATE per failure, so every web process of every machine counts together.
    login_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    login_window_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class LoginSession(RegionModel):
    """A login session. The token is `<region>.<random>`; only its SHA-256 is stored."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[str] = mapped_column(ID, ForeignKey("accounts.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    client_address_ct: Mapped[bytes] = mapped_column(LargeBinary)
    user_agent_ct: Mapped[bytes] = mapped_column(LargeBinary)


class ExportState(StrEnum):
    QUEUED = "queued"  # waiting for a region worker
    BUILDING = "building"  # a worker is on it (or died on it: a starting worker requeues it)
    READY = "ready"
    FAILED = "failed"  # its last attempt failed; `error` says why, and the user asks again


class DataExportJob(RegionModel):
    """A download-my-data archive, built in the user's region; its ZIP is a blob of the user."""

    __tablename__ = "data_exports"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    state: Mapped[str] = mapped_column(String(16), default=ExportState.QUEUED)
    progress: Mapped[int] = mapped_column(default=0)  # percent
    blob_key: Mapped[str | None] = mapped_column(String(200), default=None)
    size_bytes: Mapped[int] = mapped_column(default=0)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    error: Mapped[str | None] = mapped_column(String(500), default=None)  # shown to the user
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
