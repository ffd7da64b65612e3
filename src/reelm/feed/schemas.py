"""Feed pages: items with the reason they were shown, and an opaque cursor to the next page."""

from __future__ import annotations

import base64
import json
from typing import Any

from pydantic import BaseModel

from reelm.errors import InvalidInput
from reelm.media.schemas import PublicVideoRead


class FeedItem(BaseModel):
    video: PublicVideoRead
    reason: str  # "why this video", in words a user understands


class FeedPage(BaseModel):
    items: list[FeedItem]
    next_cursor: str | None = None


class Interest(BaseModel):
    """A hashtag a new user may pick to seed their For You feed."""

    tag: str
    videos: int


class ProfilePage(BaseModel):
    handle: str
    display_name: str
    bio: str
    avatar_url: str | None
    region: str
    followers: int
    following: int
    likes: int
    videos: int
    follow_state: str  # none / pending / active / self
    items: list[PublicVideoRead]
    next_cursor: str | None = None


class SearchResults(BaseModel):
    users: list[dict[str, Any]]
    hashtags: list[dict[str, Any]]
    sounds: list[dict[str, Any]]
    videos: list[PublicVideoRead]


def encode_cursor(data: dict[str, Any]) -> str:
    return (
        base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode())
        .decode()
        .rstrip("=")
    )


def decode_cursor(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise InvalidInput("That page cursor is not valid.", code="bad_cursor") from None
    if not isinstance(value, dict):
        raise InvalidInput("That page cursor is not valid.", code="bad_cursor")
    return value
