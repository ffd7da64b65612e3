"""The For You feed's per-request reads, on a pooled DBAPI connection with SQL written once.

Measured on a page of For You, SQLAlchemy's per-execute work (session, ORM events, statement
cache, result processing: about 0.2 ms per query) cost more than the queries themselves (a few
microseconds on an index). These reads are simple, read-only and on every request, so they skip
it; every write, and every other read, goes through the ORM and the RegionStore's hooks as usual.
The SQL is plain enough for both backends (only the placeholder style differs).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import Dialect


class CatalogRow(NamedTuple):
    """A PublishedVideo row: the columns feeds render (attribute names as on the model)."""

    id: str
    creator_id: str
    creator_handle: str
    region: str
    caption: str
    visibility: str
    allow_comments: bool
    sound_id: str | None
    duration_s: float
    width: int
    height: int
    published_at: datetime
    like_count: int
    comment_count: int
    share_count: int
    view_count: int


CATALOG_COLUMNS = ", ".join(CatalogRow._fields)


def run(bind: Engine | Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Rows of one read-only statement written with `?` placeholders: on the global engine, or
    on a region's `unchecked_connection` (which rolls the read transaction back at its end)."""
    if bind.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    conn = bind.raw_connection() if isinstance(bind, Engine) else bind.connection
    try:
        cur = conn.cursor()
        try:
            cur.execute(sql, tuple(params))
            rows = cur.fetchall()
        finally:
            cur.close()
    finally:
        if isinstance(bind, Engine):
            conn.close()  # back to the pool, which rolls the read transaction back
    return [tuple(r) for r in rows]


def when(dialect: Dialect, value: datetime) -> Any:
    """A timestamp parameter as the column stores it (SQLite: SQLAlchemy's UTC text format)."""
    if dialect.name == "sqlite":
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def timestamp(value: Any) -> datetime:
    """A stored timestamp as an aware UTC datetime."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def catalog_rows(rows: list[tuple[Any, ...]]) -> list[CatalogRow]:
    out = []
    for r in rows:
        row = CatalogRow._make(r)
        out.append(
            row._replace(published_at=timestamp(row.published_at), allow_comments=bool(r[6]))
        )
    return out
