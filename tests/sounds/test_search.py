"""Full-text search, trending by recent uses, and detail, through the service and over HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, text

from helpers import make_song
from reelm.db import new_id, utcnow
from reelm.errors import InvalidInput
from reelm.residency.store import Platform
from reelm.sounds.models import Song, search_key
from reelm.sounds.search import _matches, search_songs, trending_songs
from reelm.sounds.service import do_record_song_use


def add_songs(platform: Platform, *songs: tuple[str, str, int]) -> list[str]:
    """Catalog rows (title, artist, uses) without files, each a minute newer than the one
    before."""
    now = utcnow()
    return [
        make_song(platform, title, artist, uses=uses, created_at=now + timedelta(minutes=i))
        for i, (title, artist, uses) in enumerate(songs)
    ]


def titles(page: object) -> list[str]:
    return [s.title for s in page.items]  # type: ignore[attr-defined]


def test_search_matches_title_or_artist_ignoring_case_and_accents(platform: Platform) -> None:
    add_songs(
        platform,
        ("Crème Brûlée", "Zoë Café", 0),
        ("Neon Drift", "Velvet Coupe", 0),
        ("Drift Away", "Neon Lights", 0),
        ("Sunday Skate", "Kite Avenue", 0),
        ("Straße", "Bäckerei", 0),
    )
    assert titles(search_songs(platform, q="creme")) == ["Crème Brûlée"]
    assert titles(search_songs(platform, q="ZOE")) == ["Crème Brûlée"]
    assert titles(search_songs(platform, q="CAFÉ")) == ["Crème Brûlée"]
    assert titles(search_songs(platform, q="strasse")) == ["Straße"]
    assert titles(search_songs(platform, q="STRASSE backerei")) == ["Straße"]
    assert sorted(titles(search_songs(platform, q="drift"))) == ["Drift Away", "Neon Drift"]
    # Every word must start a word of the title or the artist.
    assert titles(search_songs(platform, q="neon velvet")) == ["Neon Drift"]
    assert titles(search_songs(platform, q="neon kite")) == []
    assert titles(search_songs(platform, q="rift")) == []
    assert len(search_songs(platform, q="").items) == 5


def test_a_word_being_typed_matches_as_a_prefix(platform: Platform) -> None:
    add_songs(platform, ("Neon Drift", "Velvet Coupe", 0), ("Sunday Skate", "Kite Avenue", 0))
    assert titles(search_songs(platform, q="ne")) == ["Neon Drift"]
    assert titles(search_songs(platform, q="velvet cou")) == ["Neon Drift"]
    assert titles(search_songs(platform, q="sund sk")) == ["Sunday Skate"]


def test_query_syntax_and_punctuation_are_only_words(platform: Platform) -> None:
    add_songs(
        platform,
        ("100% Love", "A", 0),
        ("Under_score", "B", 0),
        ("Rock 'n' Roll", "C", 0),
        ("Plain", "D", 0),
    )
    assert titles(search_songs(platform, q="100%")) == ["100% Love"]
    assert titles(search_songs(platform, q="under_score")) == ["Under_score"]
    assert titles(search_songs(platform, q="rock n")) == ["Rock 'n' Roll"]
    # Punctuation alone matches nothing (not the whole catalog), and operators of either full-
    # text engine are plain words or ignored, never syntax.
    for query in ("%", "_", "!", '"', "*", "-", "&", "|", ":*", "'"):
        assert titles(search_songs(platform, q=query)) == [], query
    assert titles(search_songs(platform, q='plain" OR "love')) == []
    assert titles(search_songs(platform, q="plain:* | love")) == []
    assert titles(search_songs(platform, q="NEAR(plain)")) == []


def test_the_most_relevant_songs_come_first(platform: Platform) -> None:
    add_songs(
        platform,
        ("Neon Nights", "Club Kids", 0),
        ("Neon Neon Nights", "Neon Club", 0),
        ("Nights Out", "Neon Club", 0),
    )
    found = titles(search_songs(platform, q="neon"))
    assert found[0] == "Neon Neon Nights"
    assert sorted(found) == ["Neon Neon Nights", "Neon Nights", "Nights Out"]


@pytest.mark.parametrize("query", ["song", ""])
def test_pagination_walks_every_song_once(platform: Platform, query: str) -> None:
    names = [f"Song {i:02d}" for i in range(25)]
    add_songs(platform, *((n, "Same Artist", 0) for n in reversed(names)))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = search_songs(platform, q=query, limit=10, cursor=cursor)
        seen += titles(page)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == names  # equally relevant: by title
    assert pages == 3


def test_ranked_pages_keep_relevance_order_across_pages(platform: Platform) -> None:
    add_songs(
        platform,
        *((f"Neon {i:02d}", "Artist", 0) for i in range(6)),
        *((f"Neon Neon {i:02d}", "Neon", 0) for i in range(6)),
    )
    first = search_songs(platform, q="neon", limit=4)
    rest = search_songs(platform, q="neon", limit=20, cursor=first.next_cursor)
    found = titles(first) + titles(rest)
    assert rest.next_cursor is None
    assert len(set(found)) == len(found) == 12
    assert all(t.startswith("Neon Neon") for t in found[:6])


def test_the_full_text_index_follows_every_change_to_the_songs(platform: Platform) -> None:
    first, second = add_songs(platform, ("Kept Song", "A", 0), ("Gone Song", "B", 0))
    with platform.global_store.transaction() as g:
        g.execute(delete(Song).where(Song.id == second))
        song = g.get(Song, first)
        assert song is not None
        song.title, song.search_key = "Renamed", search_key("Renamed", "A")
    assert titles(search_songs(platform, q="song")) == []
    assert titles(search_songs(platform, q="renamed")) == ["Renamed"]


def test_search_goes_through_the_backends_full_text_index(platform: Platform) -> None:
    add_songs(platform, ("Neon Drift", "Velvet Coupe", 0))
    with platform.global_store.session() as g:
        query = _matches(g, ["neon", "vel"])
        sql = str(query.compile(g.get_bind(), compile_kwargs={"literal_binds": True}))
        if g.get_bind().dialect.name == "sqlite":
            plan = " ".join(str(row[-1]) for row in g.execute(text("EXPLAIN QUERY PLAN " + sql)))
            assert "VIRTUAL TABLE INDEX" in plan
        else:
            g.execute(text("SET LOCAL enable_seqscan = off"))  # a table this small is scanned
            plan = " ".join(row[0] for row in g.execute(text("EXPLAIN " + sql)))
            assert "ix_songs_search_tsv" in plan
        assert [row.search_key for row in g.execute(query)] == ["neon drift velvet coupe"]


def test_a_forged_cursor_is_refused(platform: Platform) -> None:
    with pytest.raises(InvalidInput) as caught:
        search_songs(platform, cursor="not-a-cursor")
    assert caught.value.code == "invalid_cursor"


def test_trending_is_by_uses_then_newest(platform: Platform) -> None:
    add_songs(
        platform, ("Old Hit", "A", 5), ("Quiet", "B", 0), ("New Hit", "C", 5), ("Mid", "D", 2)
    )
    assert titles(trending_songs(platform, 3)) == ["New Hit", "Old Hit", "Mid"]


def test_trending_counts_only_the_uses_of_the_last_seven_days(platform: Platform) -> None:
    classic, fresh, idle = add_songs(
        platform, ("Classic", "A", 0), ("Fresh", "B", 0), ("Idle", "C", 0)
    )
    now = utcnow()
    with platform.global_store.transaction() as g:
        for i in range(5):  # many uses, but weeks ago
            do_record_song_use(g, classic, video_id=new_id(), at=now - timedelta(days=10 + i))
        for i in range(2):
            do_record_song_use(g, fresh, video_id=new_id(), at=now - timedelta(days=i))
        do_record_song_use(g, classic, video_id=new_id(), at=now - timedelta(days=6, hours=23))
    page = trending_songs(platform, 10)
    assert titles(page) == ["Fresh", "Classic", "Idle"]
    assert [s.uses_last_7_days for s in page.items] == [2, 1, 0]
    assert [s.use_count for s in page.items] == [2, 6, 0]
    # A week later Fresh's uses have aged out too; all-time uses decide.
    later = trending_songs(platform, 10, now=now + timedelta(days=8))
    assert titles(later) == ["Classic", "Fresh", "Idle"]


def test_a_video_is_counted_once_however_often_it_is_published(platform: Platform) -> None:
    (song,) = add_songs(platform, ("Once", "A", 0))
    video = new_id()
    with platform.global_store.transaction() as g:
        assert do_record_song_use(g, song, video_id=video)
        assert not do_record_song_use(g, song, video_id=video)
        assert not do_record_song_use(g, "0" * 32, video_id=new_id())  # no such song
    assert trending_songs(platform).items[0].use_count == 1


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
