"""What the For You feed's per-request reads read: catalogue rows and timestamps as both backends
store them. The reads themselves go straight to the DBAPI (`reelm.sql.read_rows`, which says
why); every write, and every other read, goes through the ORM and the RegionStore's hooks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

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
