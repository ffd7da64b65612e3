"""/api/v1 feeds, profile grids, hashtag and sound pages, search."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from reelm.feed import foryou, service
from reelm.feed.schemas import FeedPage, Interest, ProfilePage, SearchResults
from reelm.web.deps import CurrentUserDep, OptionalUserDep, PlatformDep, SettingsDep

router = APIRouter(prefix="/api/v1", tags=["feed"])
Cursor = Annotated[str | None, Query(max_length=400)]
Limit = Annotated[int, Query(ge=1, le=50)]


@router.get("/feed/following")
def following(
    user: CurrentUserDep, platform: PlatformDep, cursor: Cursor = None, limit: Limit = 10
) -> FeedPage:
    """Newest videos of the accounts you follow."""
    return service.following_feed(platform, user, cursor=cursor, limit=limit)


@router.get("/feed/for-you", response_model=FeedPage)
def for_you(
    user: OptionalUserDep,
    platform: PlatformDep,
    settings: SettingsDep,
    cursor: Cursor = None,
    limit: Limit = 10,
) -> Response:
    """Videos picked for you, each with the reason it was picked; anonymous: popular and new."""
    page = foryou.for_you_feed(platform, settings, user, cursor=cursor, limit=limit)
    # serialised once, here: the service built the page from typed catalogue rows
    return Response(page.model_dump_json(), media_type="application/json")


@router.get("/interests")
def interests(platform: PlatformDep) -> list[Interest]:
    """Popular hashtags a new user can pick at sign-up to seed their For You feed."""
    return foryou.popular_interests(platform)


@router.get("/users/{handle}/videos")
def profile(
    handle: str,
    user: OptionalUserDep,
    platform: PlatformDep,
    cursor: Cursor = None,
    limit: Limit = 24,
) -> ProfilePage:
    """A profile with its counts and video grid."""
    return service.profile_page(platform, user, handle, cursor=cursor, limit=limit)


@router.get("/hashtags/{tag}")
def hashtag(
    tag: str, user: OptionalUserDep, platform: PlatformDep, cursor: Cursor = None, limit: Limit = 24
) -> dict[str, Any]:
    return service.hashtag_page(platform, user, tag, cursor=cursor, limit=limit)


@router.get("/sounds/{sound_id}/videos")
def sound(
    sound_id: str,
    user: OptionalUserDep,
    platform: PlatformDep,
    cursor: Cursor = None,
    limit: Limit = 24,
) -> dict[str, Any]:
    return service.sound_page(platform, user, sound_id, cursor=cursor, limit=limit)


@router.get("/search")
def search(
    q: Annotated[str, Query(max_length=100)], user: OptionalUserDep, platform: PlatformDep
) -> SearchResults:
    """Users, hashtags, sounds and captions."""
    return service.search(platform, user, q)
