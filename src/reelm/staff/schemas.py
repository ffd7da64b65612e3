"""Staff API schemas."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class StaffLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    handle: str = Field(max_length=40)
    password: str = Field(max_length=1024)
    totp: str = Field(pattern=r"^[0-9]{6}$")


class StaffSignedIn(BaseModel):
    token: str
    operator: str


class TicketOpen(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: str = Field(max_length=32)
    purpose: str = Field(pattern=r"^[a-z][a-z_-]{1,39}$")


class TicketRead(BaseModel):
    id: str
    operator: str
    region: str
    purpose: str
    state: str
    created_at: datetime


class AccountData(BaseModel):
    """What an authorised staff read of the `account` category returns."""

    user_id: str
    handle: str
    email: str
    birth_date: date
    jurisdiction: str
    region: str
    created_at: datetime


class SessionData(BaseModel):
    id: str
    created_at: datetime
    expires_at: datetime
    revoked: bool
    client_address: str
    user_agent: str


class StaffRead(BaseModel):
    """The protected data returned by one authorised read, with the audit entry that logged it."""

    category: str
    audit_region: str
    audit_index: int
    policy_ids: list[str]
    account: AccountData | None = None
    sessions: list[SessionData] | None = None
