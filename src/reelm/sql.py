"""SQL helpers of the bulk paths (carve-out, scanner, Directory, feed, key store): statements over
many ids cut into chunks, `column IN ids` as one array parameter on PostgreSQL, named parameters
for executemany, the DBAPI placeholders of an IN list, and plain reads sent to the DBAPI
connection directly (the request path's hot reads: the Directory's one home, the feed's)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Engine, String, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of at most `size`, in order: one statement each, so none carries more
    parameters than the database accepts (SQLite: 32,766) or plans cheaply."""
    for start in range(0, len(items), size):
        part = items[start : start + size]
        yield part if isinstance(part, list) else list(part)


def among(column: Any, ids: Sequence[str], *, pg: bool) -> ColumnElement[bool]:
    """`column IN ids`: one array parameter on PostgreSQL (an IN list of thousands of
    parameters costs it more to plan than the statement costs to run), an IN list elsewhere."""
    if pg:
        return column == any_(bindparam(None, list(ids), type_=ARRAY(String), unique=True))  # type: ignore[no-any-return]
    return column.in_(ids)  # type: ignore[no-any-return]


def bind(name: str) -> Any:
    """A named parameter, filled per row by an executemany (`[{name: value}, …]`); typed `Any`
    so it stands where a column's value goes in `.values()` and `.where()`."""
    return bindparam(name)


def qmarks(n: int) -> str:
    """The `?` placeholders of an IN list of `n` values, for statements sent to a DBAPI (sqlite3)
    connection directly."""
    return ", ".join("?" * n)


def read_rows(bind: Engine | Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Rows of one read-only statement written with `?` placeholders, on a pooled DBAPI
    connection of `bind` (an engine), or on `bind` itself (a region's `unchecked_connection`,
    which rolls the read transaction back at its end). SQLAlchemy's per-execute work (session,
    ORM events, statement cache, result processing: about 0.2 ms) costs more than a primary-key
    or index read, so the reads made on every request skip it; every write goes through the ORM
    and the RegionStore's hooks as usual. The SQL must be plain enough for both backends (only
    the placeholder style is translated)."""
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
