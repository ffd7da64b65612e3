"""Reading the catalog by many songs: full-text search by title and artist, and trending.

Search uses each backend's own full-text index over `songs.search_key` (migration g0030): FTS5 on
SQLite, a GIN-indexed `tsvector` on PostgreSQL. Both hold the same folded words, and a query is
folded and split the same way, so the two backends find the same songs.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Double, Select, cast, func, literal_column, or_, select, table, tuple_
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnClause

from reelm.db import utcnow
from reelm.errors import InvalidInput
from reelm.residency.store import Platform
from reelm.sounds.models import SONGS_FTS, Song, SongUse, search_words
from reelm.sounds.schemas import SongPage, SongRead

MAX_PAGE = 100
MAX_QUERY_WORDS = 8
TRENDING_DAYS = 7
_SIMPLE: ColumnClause[Any] = literal_column("'simple'::regconfig")


def _encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, kind: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if isinstance(values, list) and values and values[0] == kind:
            if kind == "t" and len(values) == 3 and all(isinstance(v, str) for v in values):
                return values[1:]
            if (
                kind == "r"
                and len(values) == 4
                and isinstance(values[1], int | float)
                and all(isinstance(v, str) for v in values[2:])
            ):
                return values[1:]
    except (binascii.Error, ValueError, TypeError):
        pass
    raise InvalidInput(
        "This page cursor is not valid; start again from the first page.", code="invalid_cursor"
    )


def _matches(session: Session, words: Sequence[str]) -> Select[Any]:
    """(id, search_key, score) of the songs holding every word as a word prefix; a lower score
    is more relevant. SQLite: FTS5 and its BM25; PostgreSQL: the GIN-indexed `tsvector` and
    `ts_rank`. Query words are letters and digits only, so no query syntax can get through."""
    if session.get_bind().dialect.name == "sqlite":
        fts = table(SONGS_FTS, literal_column("song_id"))
        return (
            select(
                Song.id,
                Song.search_key,
                func.bm25(literal_column(SONGS_FTS)).label("score"),
            )
            .join(fts, literal_column(f"{SONGS_FTS}.song_id") == Song.id)
            .where(literal_column(SONGS_FTS).op("MATCH")(" ".join(f'"{w}"*' for w in words)))
        )
    vector = func.to_tsvector(_SIMPLE, Song.search_key)
    query = func.to_tsquery(_SIMPLE, " & ".join(f"{w}:*" for w in words))
    # ts_rank is a `real`; as a double it survives the trip through a cursor exactly.
    score = cast(-func.ts_rank(vector, query), Double)
    return select(Song.id, Song.search_key, score.label("score")).where(vector.op("@@")(query))


def search_songs(
    platform: Platform, *, q: str = "", limit: int = 20, cursor: str | None = None
) -> SongPage:
    """Songs whose title or artist has every word of `q` as the start of one of its words
    (case- and accent-insensitive), most relevant first; an empty `q` lists the whole catalog
    by title. Keyset pagination on (relevance, title, id), so a page is as cheap at the end as
    at the start."""
    limit = max(1, min(limit, MAX_PAGE))
    words = search_words(q[:200])[:MAX_QUERY_WORDS]
    if not words:
        if q.strip():  # only punctuation: nothing can match a word
            return SongPage(items=[])
        return _title_page(platform, limit, cursor)
    with platform.global_store.session() as g:
        ranked = _matches(g, words).subquery()
        query = select(Song, ranked.c.score).join(ranked, ranked.c.id == Song.id)
        if cursor:
            score, key, song_id = _decode_cursor(cursor, "r")
            query = query.where(
                tuple_(ranked.c.score, ranked.c.search_key, ranked.c.id) > (score, key, song_id)
            )
        query = query.order_by(ranked.c.score, ranked.c.search_key, ranked.c.id).limit(limit + 1)
        rows = [(row[0], row[1]) for row in g.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    last_song, last_score = rows[-1] if rows else (None, 0.0)
    return SongPage(
        items=[SongRead.of(s) for s, _ in rows],
        next_cursor=(
            _encode_cursor(["r", float(last_score), last_song.search_key, last_song.id])
            if more and last_song is not None
            else None
        ),
    )


def _title_page(platform: Platform, limit: int, cursor: str | None) -> SongPage:
    query = select(Song)
    if cursor:
        key, song_id = _decode_cursor(cursor, "t")
        query = query.where(
            or_(Song.search_key > key, (Song.search_key == key) & (Song.id > song_id))
        )
    query = query.order_by(Song.search_key, Song.id).limit(limit + 1)
    with platform.global_store.session() as g:
        songs = list(g.scalars(query))
    more = len(songs) > limit
    songs = songs[:limit]
    return SongPage(
        items=[SongRead.of(s) for s in songs],
        next_cursor=_encode_cursor(["t", songs[-1].search_key, songs[-1].id]) if more else None,
    )


def trending_songs(platform: Platform, limit: int = 20, *, now: datetime | None = None) -> SongPage:
    """The songs most videos published in the last TRENDING_DAYS used; then all-time uses,
    then the newest, so a quiet week still lists the catalog's favourites."""
    limit = max(1, min(limit, MAX_PAGE))
    since = (now or utcnow()) - timedelta(days=TRENDING_DAYS)
    recent = (
        select(SongUse.song_id, func.count().label("uses"))
        .where(SongUse.used_at >= since)
        .group_by(SongUse.song_id)
        .subquery()
    )
    uses = func.coalesce(recent.c.uses, 0)
    query = (
        select(Song, uses)
        .outerjoin(recent, recent.c.song_id == Song.id)
        .order_by(uses.desc(), Song.use_count.desc(), Song.created_at.desc(), Song.id.desc())
        .limit(limit)
    )
    with platform.global_store.session() as g:
        rows = [(row[0], row[1]) for row in g.execute(query)]
    return SongPage(items=[SongRead.of(s, uses_last_7_days=int(n)) for s, n in rows])
