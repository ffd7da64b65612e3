"""Staff tables (global database): operator employees, their sessions and tickets.

Staff are not users: they hold no user data, belong to an operator, and log in with a password and
a TOTP second factor. Their TOTP secret is encrypted under a key derived from the deployment
secret."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from reelm.db import ID, GlobalModel, UTCDateTime, new_id, utcnow


class StaffMember(GlobalModel):
    __tablename__ = "staff_members"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    handle: Mapped[str] = mapped_column(String(40), unique=True)
    operator: Mapped[str] = mapped_column(String(40))
    password_hash: Mapped[str] = mapped_column(String(200))
    totp_secret_ct: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StaffSession(GlobalModel):
    __tablename__ = "staff_sessions"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[str] = mapped_column(ID, ForeignKey("staff_members.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Ticket(GlobalModel):
    """A reason to look at protected data: opened by a staff member of an operator, for a purpose,
    about one region's data; reads are allowed (by the demo policy) only while it is open."""

    __tablename__ = "staff_tickets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    operator: Mapped[str] = mapped_column(String(40))
    region: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(40))
    opened_by: Mapped[str] = mapped_column(ID, ForeignKey("staff_members.id"))
    state: Mapped[str] = mapped_column(String(10), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
