"""Input and output schemas of accounts, including the PUBLIC profile that Egress publishes."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session

from reelm.residency.egress import PublicRecord, public_schema
from reelm.residency.models import PublicProfile
from reelm.text import UserText

HASHTAG = re.compile(r"\w{1,100}")


class SignUp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    handle: UserText = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    email: UserText = Field(min_length=3, max_length=320)
    birth_date: date
    jurisdiction: str = Field(min_length=2, max_length=2)
    display_name: UserText = Field(default="", max_length=60)
    interests: list[Annotated[str, Field(max_length=101)]] = Field(
        default_factory=list,
        max_length=10,
        description="Hashtags to seed the For You feed (see GET /api/v1/interests).",
    )

    @field_validator("interests")
    @classmethod
    def _hashtags(cls, value: list[str]) -> list[str]:
        tags = list(dict.fromkeys(t.strip().lstrip("#").lower() for t in value))
        for tag in tags:
            if not HASHTAG.fullmatch(tag):
                raise ValueError(f"{tag!r} is not a hashtag (letters, digits, underscores)")
        return tags


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    handle: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class ProfileUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: UserText | None = Field(default=None, max_length=60)
    bio: UserText | None = Field(default=None, max_length=300)
    is_private: bool | None = None


class AccountRead(BaseModel):
    """What a user sees of their own account (never sent across regions)."""

    id: str
    handle: str
    email: str
    birth_date: date
    jurisdiction: str
    region: str
    display_name: str
    bio: str
    is_private: bool
    created_at: datetime
    deletion_due_at: datetime | None = None


class SessionRead(BaseModel):
    id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    client_address: str
    user_agent: str
    current: bool


class SignedIn(BaseModel):
    token: str
    account: AccountRead


def _write_profile(catalog: Session, record: PublicProfileRecord) -> None:
    row = catalog.get(PublicProfile, record.user_id)
    if row is None:
        catalog.add(PublicProfile(**record.model_dump()))
    else:
        for k, v in record.model_dump().items():
            setattr(row, k, v)
    catalog.flush()


def _profile_lane(record: PublicProfileRecord) -> str:
    return f"profile:{record.user_id}"


@public_schema(_write_profile, lane=_profile_lane)
class PublicProfileRecord(PublicRecord):
    """The public profile: exactly these fields leave the home region."""

    user_id: str
    handle: str
    display_name: str
    bio: str
    avatar_url: str | None
    region: str


class PublicProfileRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    handle: str
    display_name: str
    bio: str
    avatar_url: str | None
    region: str
