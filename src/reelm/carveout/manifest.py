"""Manifests: one Merkle root over everything a region holds about a user, computed the same way
by any region, on SQLite or PostgreSQL, from that region's own database, blob store and key ring.

A carve-out computes the manifest of each moved user on both sides, independently, and moves on
only when they are equal. The leaves (RFC 9162 leaf hashes, `reelm.audit.merkle`), in order:

- for each region table in which the user has rows (in `RegionModel.metadata.sorted_tables`
  order): `rows NUL <table> NUL <row count> NUL <sha256 hex of the rows' canonical text>`;
- for each blob under `<user id>/`, by key: `blob NUL <key> NUL <size> NUL <sha256 hex>`;
- the user's data key, if the region holds one: `key NUL <sha256 hex of the key>`.

Canonical text of a user's rows in one table: one line per row, in primary-key order (byte
order of the UTF-8 text, numbers by value), lines joined by `\\n`. A line is the row's columns in
table order, floats last, joined by `|`; each value is written by its column's type: text as
`<length in characters>:<text>`, integers as decimals, booleans as 0/1, timestamps as
`YYYY-MM-DD HH:MM:SS.ffffff` in UTC, dates as `YYYY-MM-DD`, bytes as lower-case hex, floats as
Python's shortest round-trip `repr`, NULL as `~`. The database builds each line itself (and on
PostgreSQL also joins and hashes them), so a user's rows cost no Python work per value.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    String,
    Table,
    TypeDecorator,
    inspect,
)

import reelm.all_models  # noqa: F401  (every region table is known)
from reelm.audit.merkle import leaf_hash, root_from_leaf_hashes
from reelm.db import RegionModel
from reelm.residency.blobs import blob_digest
from reelm.residency.store import RegionStore
from reelm.sql import chunks, qmarks

NULL = "~"
OWNERS_PER_QUERY = 5000
"""Owners per query (an IN list on SQLite, an array on PostgreSQL): large, so PostgreSQL reads
the heap pages of a batch in one bitmap scan, in physical order."""


SQLITE_MMAP = 1 << 30
SQLITE_CACHE_KIB = 1024 * 1024


def tune_sqlite(dbapi_connection: Any, schema: str = "main") -> None:
    """Memory-map the file and give the connection a large page cache: a carve-out reads a
    batch's rows through the owner index, scattered over the table, and would otherwise pay a
    system call and a cold cache for most of them."""
    dbapi_connection.execute(f"PRAGMA {schema}.mmap_size={SQLITE_MMAP}")
    dbapi_connection.execute(f"PRAGMA {schema}.cache_size=-{SQLITE_CACHE_KIB}")


class UnsupportedColumn(TypeError):
    """A region table has a column type the manifest cannot write canonically yet."""


@dataclass(frozen=True)
class Manifest:
    root: str
    rows: int
    blobs: int
    bytes: int

    @property
    def empty(self) -> bool:
        return not self.rows and not self.blobs


def kind_of(column: Any) -> str:
    """How a column is written canonically: str, int, bool, float, timestamp, timestamptz,
    date or bytes."""
    t = column.type
    if isinstance(t, TypeDecorator):
        t = t.impl_instance
    if isinstance(t, Boolean):
        return "bool"
    if isinstance(t, Integer):
        return "int"
    if isinstance(t, Float):
        return "float"
    if isinstance(t, DateTime):
        return "timestamptz" if t.timezone else "timestamp"
    if isinstance(t, Date):
        return "date"
    if isinstance(t, LargeBinary):
        return "bytes"
    if isinstance(t, String):
        return "str"
    raise UnsupportedColumn(
        f"{column.table.name}.{column.name}: the carve-out manifest has no canonical form for "
        f"{t!r}; add one to reelm/carveout/manifest.py (and to docs/carveout.md)"
    )


def _expr(dialect: str, column: str, kind: str) -> str:
    """SQL that writes one column's canonical text (never NULL)."""
    c = f'"{column}"'
    if dialect == "postgresql":
        value = {
            "str": f"length({c})::text || ':' || {c}",
            "int": f"{c}::text",
            "bool": f"{c}::int::text",
            "timestamptz": f"to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')",
            "timestamp": f"to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US')",
            "date": f"to_char({c}, 'YYYY-MM-DD')",
            "bytes": f"encode({c}, 'hex')",
        }[kind]
    else:  # SQLite keeps timestamps and dates as the text SQLAlchemy wrote: already canonical
        value = {
            "str": f"length({c}) || ':' || {c}",
            "int": f"CAST({c} AS TEXT)",
            "bool": f"CAST({c} AS TEXT)",
            "timestamptz": c,
            "timestamp": c,
            "date": c,
            "bytes": f"lower(hex({c}))",
        }[kind]
    return f"coalesce({value}, '{NULL}')"


@dataclass(frozen=True)
class _TablePlan:
    line: str  # SQL for the canonical line without the floats
    floats: tuple[str, ...]  # float columns, fetched as values and appended in Python
    order: str  # primary key ORDER BY terms


@lru_cache(maxsize=256)
def _plan(table: Table, dialect: str) -> _TablePlan:
    kinds = [(col.name, kind_of(col)) for col in table.columns]
    parts = [_expr(dialect, name, kind) for name, kind in kinds if kind != "float"]
    floats = tuple(f'"{name}"' for name, kind in kinds if kind == "float")
    terms = []
    for col in table.primary_key.columns:
        term = f'"{col.name}"'
        if dialect == "postgresql" and kind_of(col) == "str":
            term += ' COLLATE "C"'
        terms.append(term)
    return _TablePlan(" || '|' || ".join(parts) or "''", floats, ", ".join(terms))


def _float_text(value: Any) -> str:
    return NULL if value is None else repr(float(value))


def canonical_line(line: str, floats: Sequence[Any]) -> str:
    if not floats:
        return line
    return line + "|" + "|".join(_float_text(v) for v in floats)


def region_tables(bind: RegionStore | Engine | Connection) -> list[Table]:
    """The RegionModel tables this database has, parents before children."""
    if isinstance(bind, RegionStore):
        existing = bind.table_names()
    else:
        existing = set(inspect(bind).get_table_names())
    return [t for t in RegionModel.metadata.sorted_tables if t.name in existing]


def table_digests(
    conn: Connection, table: Table, owners: Sequence[str]
) -> dict[str, tuple[int, str]]:
    """Per owner with rows in `table`: (row count, sha256 hex of the rows' canonical text)."""
    dialect = conn.dialect.name
    plan = _plan(table, dialect)
    out: dict[str, tuple[int, str]] = {}
    raw: Any = conn.connection
    if dialect == "sqlite":
        tune_sqlite(raw.driver_connection)
    cur = raw.cursor()
    for chunk in chunks(owners, OWNERS_PER_QUERY):
        if dialect == "postgresql" and not plan.floats:
            cur.execute(
                f"SELECT owner_id, count(*), encode(sha256(convert_to(string_agg("
                f"{plan.line}, E'\\n' ORDER BY {plan.order}), 'UTF8')), 'hex') "
                f'FROM "{table.name}" WHERE owner_id = ANY(%s) GROUP BY owner_id',
                (chunk,),
            )
            for owner, count, digest in cur.fetchall():
                out[owner] = (int(count), digest)
            continue
        extra = "".join(", " + f for f in plan.floats)
        params: tuple[Any, ...]
        if dialect == "postgresql":
            where, params = "owner_id = ANY(%s)", (chunk,)
        else:
            where, params = f"owner_id IN ({qmarks(len(chunk))})", tuple(chunk)
        cur.execute(
            f'SELECT owner_id, {plan.line}{extra} FROM "{table.name}" WHERE {where} '
            f"ORDER BY owner_id, {plan.order}",
            params,
        )
        for owner, rows in itertools.groupby(cur.fetchall(), key=_first):
            if plan.floats:
                lines = [canonical_line(r[1], r[2:]) for r in rows]
            else:
                lines = [r[1] for r in rows]
            out[owner] = (len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest())
    cur.close()
    raw.rollback()  # ends the read transaction: each table is read on its own
    return out


def _first(row: Sequence[Any]) -> Any:
    return row[0]


def with_blobs(store: RegionStore, owners: Sequence[str]) -> list[str]:
    """Those of `owners` that have a blob folder in `store` (one directory listing for a local
    store, instead of one look-up per user: most users have no files)."""
    root = getattr(store.blobs, "root", None)
    if isinstance(root, Path):
        if not root.is_dir():
            return []
        present = {e.name for e in os.scandir(root) if e.is_dir(follow_symlinks=False)}
        return [o for o in owners if o in present]
    return list(owners)


def blob_digests(store: RegionStore, owner: str) -> list[tuple[str, int, str]]:
    """(key, size, sha256 hex) of every blob of `owner` in the region, by key."""
    return [(key, *blob_digest(store.blobs, key)) for key in store.blobs.keys(f"{owner}/")]


def compute_manifests(store: RegionStore, owners: Sequence[str]) -> dict[str, Manifest]:
    """The manifest of each of `owners` in `store`'s region, from that region's stores alone."""
    owners = list(dict.fromkeys(owners))
    leaves: dict[str, list[bytes]] = {o: [] for o in owners}
    rows = dict.fromkeys(owners, 0)
    tables = region_tables(store)
    with store.unchecked_connection(reason="carve-out: manifest of the users' rows") as conn:
        for table in tables:
            name = table.name.encode()
            for owner, (count, digest) in table_digests(conn, table, owners).items():
                leaves[owner].append(
                    b"rows\x00" + name + b"\x00" + str(count).encode() + b"\x00" + digest.encode()
                )
                rows[owner] += count
    blobs = dict.fromkeys(owners, 0)
    size = dict.fromkeys(owners, 0)
    for owner in with_blobs(store, owners):
        for blob_key, n, sha in blob_digests(store, owner):
            leaves[owner].append(
                b"blob\x00"
                + blob_key.encode()
                + b"\x00"
                + str(n).encode()
                + b"\x00"
                + sha.encode()
            )
            blobs[owner] += 1
            size[owner] += n
    for owner, data_key in store.keys.data_keys(owners).items():
        leaves[owner].append(b"key\x00" + hashlib.sha256(data_key).hexdigest().encode())
    return {
        owner: Manifest(
            root=root_from_leaf_hashes([leaf_hash(leaf) for leaf in leaves[owner]]).hex(),
            rows=rows[owner],
            blobs=blobs[owner],
            bytes=size[owner],
        )
        for owner in owners
    }


def run_root(manifest_roots: Iterable[str]) -> str:
    """The Merkle root over a run's manifests: leaves are the manifest roots (hex, ASCII), sorted,
    so anyone holding the roots (the report, or the `carve_out_move` entries of the logs) can
    recompute it."""
    return root_from_leaf_hashes([leaf_hash(r.encode()) for r in sorted(manifest_roots)]).hex()
