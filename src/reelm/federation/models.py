"""Federation's tables. Global ones hold public or instance data only: remote actors (their public
documents and keys), remote followers of local users, the instances this deployment knows, the
keys of local actors, and the ids of inbound activities already handled. The one region table,
`fed_deliveries`, is a local user's outgoing activity waiting for a remote inbox: it says what
that user did (a like, a follow), so it is theirs and stays in their home region."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from reelm.db import ID, GlobalModel, RegionModel, UTCDateTime, new_id, utcnow


class InstanceState(StrEnum):
    KNOWN = "known"  # seen, neither allowed nor blocked (federates only in open mode)
    ALLOWED = "allowed"
    BLOCKED = "blocked"


class Instance(GlobalModel):
    """A remote server by domain (host[:port]), and what the operator decided about it."""

    __tablename__ = "fed_instances"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str] = mapped_column(String(10), default=InstanceState.KNOWN)
    software: Mapped[str] = mapped_column(String(100), default="")
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ActorKey(GlobalModel):
    """The HTTP Signatures key pair of a local actor. Instance key material, not the user's
    personal data: the public half is published in the actor document; the private half signs
    what this deployment delivers on the actor's behalf. Deleted with the Directory entry (a
    hand-over finished at the source destroys the key; the new home makes its own)."""

    __tablename__ = "fed_actor_keys"

    user_id: Mapped[str] = mapped_column(
        ID, ForeignKey("directory.user_id", ondelete="CASCADE"), primary_key=True
    )
    public_pem: Mapped[str] = mapped_column(Text)
    private_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RemoteActor(GlobalModel):
    """A remote actor known here: public data (its document's fields and its key), cached.
    `id` is its local id, also the Directory entry (state `remote`) that lets catalog rows
    (its videos, comments, counts) name it like a local creator."""

    __tablename__ = "fed_remote_actors"

    id: Mapped[str] = mapped_column(
        ID, ForeignKey("directory.user_id", ondelete="CASCADE"), primary_key=True
    )
    uri: Mapped[str] = mapped_column(String(500), unique=True)
    domain: Mapped[str] = mapped_column(String(255), index=True)
    acct: Mapped[str] = mapped_column(String(300))
    inbox: Mapped[str] = mapped_column(String(500))
    shared_inbox: Mapped[str | None] = mapped_column(String(500), default=None)
    key_id: Mapped[str] = mapped_column(String(500))
    public_pem: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    moved_to: Mapped[str | None] = mapped_column(String(500), default=None)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RemoteFollower(GlobalModel):
    """A remote actor follows a local user (`pending` while a private account has not
    answered). The remote actor's own act, sent to us in public: catalog data."""

    __tablename__ = "fed_followers"
    __table_args__ = (UniqueConstraint("remote_id", "user_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    remote_id: Mapped[str] = mapped_column(
        ID, ForeignKey("fed_remote_actors.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(
        ID, ForeignKey("directory.user_id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(String(10))
    follow_uri: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RemoteObject(GlobalModel):
    """A remote video or comment held in the catalog under a local id, with its ActivityPub
    id and (videos) its media links."""

    __tablename__ = "fed_remote_objects"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    uri: Mapped[str] = mapped_column(String(500), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # video / comment
    actor_id: Mapped[str] = mapped_column(
        ID, ForeignKey("fed_remote_actors.id", ondelete="CASCADE"), index=True
    )
    hls_url: Mapped[str | None] = mapped_column(String(500), default=None)
    mp4_url: Mapped[str | None] = mapped_column(String(500), default=None)
    poster_url: Mapped[str | None] = mapped_column(String(500), default=None)
    page_url: Mapped[str | None] = mapped_column(String(500), default=None)


class RemoteLike(GlobalModel):
    """A remote actor likes a local video (kept so an `Undo` or a replay counts once)."""

    __tablename__ = "fed_remote_likes"
    __table_args__ = (UniqueConstraint("remote_id", "video_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    remote_id: Mapped[str] = mapped_column(
        ID, ForeignKey("fed_remote_actors.id", ondelete="CASCADE"), index=True
    )
    video_id: Mapped[str] = mapped_column(ID, index=True)
    like_uri: Mapped[str] = mapped_column(String(500))


class InboundActivity(GlobalModel):
    """An inbound activity already handled, by the SHA-256 of its id: a replay or a second
    delivery of the same activity changes nothing."""

    __tablename__ = "fed_inbound"

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class DeliveryState(StrEnum):
    PENDING = "pending"
    PARKED = "parked"  # gave up after FEDERATION_MAX_TRIES; `reelm federation deliveries`


class Delivery(RegionModel):
    """One activity of a local user (`owner_id`) for one remote inbox (a shared inbox when the
    server has one, so one POST serves every follower there). `record` is the Egress record
    the activity is built from (public fields only); the activity is built and signed when it
    is sent. Deleted once the inbox accepted it."""

    __tablename__ = "fed_deliveries"
    __table_args__ = (Index("ix_fed_deliveries_state_next_attempt_at", "state", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    activity_id: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(20))
    record: Mapped[str] = mapped_column(Text)
    target_id: Mapped[str | None] = mapped_column(ID, default=None)
    inbox: Mapped[str] = mapped_column(String(500))
    state: Mapped[str] = mapped_column(String(10), default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
