"""Search, trending and detail, through the service and over HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from reelm.db import new_id, utcnow
from reelm.errors import InvalidInput
from reelm.residency.store import Platform
from reelm.sounds.models import Song
from reelm.sounds.service import fold, search_songs, trending_songs


def add_songs(platform: Platform, *songs: tuple[str, str, int]) -> list[str]:
    """Catalog rows (title, artist, uses) without files: search and trending read rows only.
    Each is a minute newer than the one before."""
    now = utcnow()
    ids = []
    with platform.global_store.transaction() as g:
        for i, (title, artist, uses) in enumerate(songs):
            song = Song(
                id=new_id(),
                title=title,
                artist=artist,
                search_key=fold(f"{title} {artist}"),
                genre="Pop",
                duration_s=30.0,
                territories="*",
                sha256="0" * 64,
                size_bytes=1,
                use_count=uses,
                created_at=now + timedelta(minutes=i),
            )
            g.add(song)
            ids.append(song.id)
    return ids


def titles(page: object) -> list[str]:
    return [s.title for s in page.items]  # type: ignore[attr-defined]


def test_search_matches_title_or_artist_ignoring_case_and_accents(platform: Platform) -> None:
    add_songs(
        platform,
        ("Crème Brûlée", "Zoë Café", 0),
        ("Neon Drift", "Velvet Coupe", 0),
        ("Drift Away", "Neon Lights", 0),
        ("Sunday Skate", "Kite Avenue", 0),
    )
    assert titles(search_songs(platform, q="creme")) == ["Crème Brûlée"]
    assert titles(search_songs(platform, q="ZOE")) == ["Crème Brûlée"]
    assert titles(search_songs(platform, q="drift")) == ["Drift Away", "Neon Drift"]
    # Every word must match, in the title or the artist.
    assert titles(search_songs(platform, q="neon velvet")) == ["Neon Drift"]
    assert titles(search_songs(platform, q="neon kite")) == []
    assert len(search_songs(platform, q="").items) == 4


def test_like_wildcards_in_a_query_are_literal(platform: Platform) -> None:
    add_songs(platform, ("100% Love", "A", 0), ("Under_score", "B", 0), ("Plain", "C", 0))
    assert titles(search_songs(platform, q="%")) == ["100% Love"]
    assert titles(search_songs(platform, q="_")) == ["Under_score"]
    assert titles(search_songs(platform, q="!")) == []


def test_pagination_walks_every_song_once_in_title_order(platform: Platform) -> None:
    names = [f"Song {i:02d}" for i in range(25)]
    add_songs(platform, *((n, "Same Artist", 0) for n in reversed(names)))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = search_songs(platform, q="song", limit=10, cursor=cursor)
        seen += titles(page)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == names
    assert pages == 3


def test_a_forged_cursor_is_refused(platform: Platform) -> None:
    with pytest.raises(InvalidInput) as caught:
        search_songs(platform, cursor="not-a-cursor")
    assert caught.value.code == "invalid_cursor"


def test_trending_is_by_uses_then_newest(platform: Platform) -> None:
    add_songs(
        platform, ("Old Hit", "A", 5), ("Quiet", "B", 0), ("New Hit", "C", 5), ("Mid", "D", 2)
    )
    assert titles(trending_songs(platform, 3)) == ["New Hit", "Old Hit", "Mid"]


def test_sounds_api_search_trending_and_detail(client: TestClient, platform: Platform) -> None:
    first, second = add_songs(platform, ("Alpha Song", "X", 1), ("Beta Song", "Y", 3))
    r = client.get("/api/v1/sounds", params={"q": "song", "limit": 1})
    assert r.status_code == 200
    body = r.json()
    assert [s["title"] for s in body["items"]] == ["Alpha Song"]
    r = client.get("/api/v1/sounds", params={"q": "song", "cursor": body["next_cursor"]})
    assert [s["title"] for s in r.json()["items"]] == ["Beta Song"]
    assert r.json()["next_cursor"] is None
    r = client.get("/api/v1/sounds/trending")
    assert [s["id"] for s in r.json()["items"]] == [second, first]
    r = client.get(f"/api/v1/sounds/{first}")
    assert r.status_code == 200
    song = r.json()
    assert song["worldwide"] is True
    assert song["territories"] == ["*"]
    assert song["audio_url"] == f"/api/v1/sounds/{first}/audio"


def test_sounds_api_errors_have_the_app_error_shape(client: TestClient) -> None:
    r = client.get("/api/v1/sounds/" + "f" * 32)
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "song_not_found", "message": "No such sound."}}
    r = client.get("/api/v1/sounds", params={"limit": 1000})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_input"
    r = client.get("/api/v1/sounds", params={"cursor": "zzz"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_cursor"
