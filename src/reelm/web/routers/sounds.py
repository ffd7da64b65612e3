"""/api/v1/sounds: the song catalog, public and read-only (search, trending, detail, files)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from reelm.sounds import service
from reelm.sounds.schemas import SongPage, SongRead
from reelm.web.deps import PlatformDep
from reelm.web.ranges import IMMUTABLE, blob_response

router = APIRouter(prefix="/api/v1/sounds", tags=["sounds"])
Limit = Annotated[int, Query(ge=1, le=service.MAX_PAGE)]
# A song's file never changes under its id: caches may keep it.


@router.get("")
def search(
    platform: PlatformDep,
    q: Annotated[str, Query(max_length=200, description="Words of the title or artist.")] = "",
    limit: Limit = 20,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> SongPage:
    """Songs with every word of `q` starting a word of the title or artist, most relevant
    first; every song by title without `q`."""
    return service.search_songs(platform, q=q, limit=limit, cursor=cursor)


@router.get("/trending")
def trending(platform: PlatformDep, limit: Limit = 20) -> SongPage:
    """The songs most videos published in the last 7 days use (`uses_last_7_days`)."""
    return service.trending_songs(platform, limit)


@router.get("/{song_id}")
def detail(song_id: str, platform: PlatformDep) -> SongRead:
    return SongRead.of(service.get_song(platform, song_id))


@router.get("/{song_id}/audio", response_class=Response)
def audio(song_id: str, request: Request, platform: PlatformDep) -> Response:
    """The song as AAC in an .m4a, with HTTP Range support (players seek with it)."""
    found = service.access_song_file(platform, song_id, "audio")
    return blob_response(
        request, found.blobs, found.key, stat=found.stat, media_type="audio/mp4", cache=IMMUTABLE
    )


@router.get("/{song_id}/preview", response_class=Response)
def preview(song_id: str, request: Request, platform: PlatformDep) -> Response:
    """30 seconds of the song (its loudest), for browsing, as AAC in an .m4a with Range."""
    found = service.access_song_file(platform, song_id, "preview")
    return blob_response(
        request, found.blobs, found.key, stat=found.stat, media_type="audio/mp4", cache=IMMUTABLE
    )


@router.get("/{song_id}/cover", response_class=Response)
def cover(song_id: str, request: Request, platform: PlatformDep) -> Response:
    """The song's square cover, a 512 px JPEG."""
    found = service.access_song_file(platform, song_id, "cover")
    return blob_response(
        request, found.blobs, found.key, stat=found.stat, media_type="image/jpeg", cache=IMMUTABLE
    )
