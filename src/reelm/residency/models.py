"""Global, non-personal tables of residency: the Directory, policy versions, public profiles."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reelm.db import ID, GlobalModel, UTCDateTime, utcnow


# Directory states. `pending`: sign-up started, the region write not yet committed (a crash here
# leaves no protected data, and the janitor removes the entry). `moving`: a carve-out is copying the
# user to `moving_to`; writes are allowed in both regions until the flip.
class UserState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    MOVING = "moving"
    DELETED = "deleted"
    REMOTE = "remote"  # an ActivityPub actor of another server: public data only, no home here


PENDING, ACTIVE, MOVING, DELETED, REMOTE = UserState
REMOTE_REGION = "~remote"
"""The `home_region` of a remote actor's Directory entry: no region of any policy has this name,
so nothing protected can ever be written for a remote actor, and the dispatcher hands what is
addressed to one to federation (see `effects.outbox.federate_with`)."""


class DirectoryEntry(GlobalModel):
    """User id → home region. The one global table about users; it holds no personal data."""

    __tablename__ = "directory"

    user_id: Mapped[str] = mapped_column(ID, primary_key=True)
    handle: Mapped[str] = mapped_column(String(30))
    handle_key: Mapped[str] = mapped_column(String(30), unique=True)
    home_region: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    moving_to: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PolicyVersion(GlobalModel):
    """Every residency policy that was ever active, by content hash."""

    __tablename__ = "policy_versions"

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    activated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PublicProfile(GlobalModel):
    """PublicCatalog: what a user chose to publish about themselves. Written only through Egress."""

    __tablename__ = "public_profiles"

    user_id: Mapped[str] = mapped_column(
        ID, ForeignKey("directory.user_id", ondelete="CASCADE"), primary_key=True
    )
    handle: Mapped[str] = mapped_column(String(30))
    display_name: Mapped[str] = mapped_column(String(60), default="")
    bio: Mapped[str] = mapped_column(String(300), default="")
    avatar_url: Mapped[str | None] = mapped_column(String(300), default=None)
    region: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
