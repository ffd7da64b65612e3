"""Moving a batch of users' rows and blobs between two regions, generically.

Rows: every `RegionModel` table, by `owner_id`, parents before children, in one transaction of
the target that first removes whatever an earlier, interrupted attempt left there (so a copy is
all or nothing and can be repeated). The copy goes the fastest way the two databases allow:
`INSERT … SELECT` from the source file attached to the target connection when both are SQLite
files on this machine, a binary `COPY … TO STDOUT` streamed into `COPY … FROM STDIN` when both
are PostgreSQL, and SQLAlchemy rows otherwise. Blobs: every key under `<owner>/`, written
atomically, made durable (fsync) before the step is recorded.

These functions write below the ORM, so the region hooks do not see them; the carve-out checks
the Directory itself (its users are `moving` to this target) before calling them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import Table, delete, select

from reelm.carveout.manifest import OWNERS_PER_QUERY, region_tables, tune_sqlite, with_blobs
from reelm.residency.blobs import LocalBlobStore
from reelm.residency.store import RegionStore
from reelm.sql import among, chunks, qmarks

Crash = Callable[[str], None]
FILE_THREADS = 16


def _no_crash(_name: str) -> None:
    return None


def _sqlite_file(store: RegionStore) -> str | None:
    url = store.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return str(Path(url.database).resolve())
    return None


def _columns(table: Table) -> str:
    return ", ".join(f'"{c.name}"' for c in table.columns)


def _check_tables(source: RegionStore, target: RegionStore) -> list[Table]:
    tables = region_tables(source)
    missing = {t.name for t in tables} - {t.name for t in region_tables(target)}
    if missing:
        raise RuntimeError(
            f"region {target.name} lacks tables {sorted(missing)} that {source.name} has: "
            "run `reelm init` (migrations) before a carve-out"
        )
    return tables


def copy_rows(
    source: RegionStore, target: RegionStore, owners: Sequence[str], *, crash: Crash = _no_crash
) -> int:
    """Copy every region row of `owners` from `source` to `target`, replacing any copies there;
    one target transaction. Returns the number of rows copied."""
    if not owners:
        return 0
    tables = _check_tables(source, target)
    src_file, dst_file = _sqlite_file(source), _sqlite_file(target)
    if src_file and dst_file:
        return _copy_sqlite(src_file, target, tables, owners, crash)
    if source.dialect.name == target.dialect.name == "postgresql":
        return _copy_postgresql(source, target, tables, owners, crash)
    return _copy_generic(source, target, tables, owners, crash)


def _copy_sqlite(
    src_file: str, target: RegionStore, tables: list[Table], owners: Sequence[str], crash: Crash
) -> int:
    copied = 0
    with target.unchecked_connection(reason="carve-out: copy rows in (SQLite ATTACH)") as conn:
        db: Any = conn.connection.driver_connection
        tune_sqlite(db)
        db.execute("ATTACH DATABASE ? AS carveout_src", (src_file,))
        tune_sqlite(db, "carveout_src")
        try:
            db.execute("BEGIN IMMEDIATE")
            for chunk in chunks(owners, OWNERS_PER_QUERY):
                marks = qmarks(len(chunk))
                for table in reversed(tables):
                    db.execute(
                        f'DELETE FROM main."{table.name}" WHERE owner_id IN ({marks})', chunk
                    )
            first = True
            for table in tables:
                cols = _columns(table)
                for chunk in chunks(owners, OWNERS_PER_QUERY):
                    marks = qmarks(len(chunk))
                    copied += db.execute(
                        f'INSERT INTO main."{table.name}" ({cols}) SELECT {cols} '
                        f'FROM carveout_src."{table.name}" WHERE owner_id IN ({marks})',
                        chunk,
                    ).rowcount
                if first:
                    crash("copy.rows_mid")
                    first = False
            db.commit()
        except BaseException:
            db.rollback()
            raise
        finally:
            db.execute("DETACH DATABASE carveout_src")
    return copied


def _copy_postgresql(
    source: RegionStore,
    target: RegionStore,
    tables: list[Table],
    owners: Sequence[str],
    crash: Crash,
) -> int:
    from psycopg import sql

    copied = 0
    with (
        source.unchecked_connection(reason="carve-out: copy rows out (COPY)") as src,
        target.unchecked_connection(reason="carve-out: copy rows in (COPY)") as dst,
    ):
        s: Any = src.connection.driver_connection
        d: Any = dst.connection.driver_connection
        try:
            with d.cursor() as cur:
                for table in reversed(tables):
                    cur.execute(
                        f'DELETE FROM "{table.name}" WHERE owner_id = ANY(%s)', (list(owners),)
                    )
            first = True
            for table in tables:
                cols = _columns(table)
                query = sql.SQL(
                    "COPY (SELECT {cols} FROM {table} WHERE owner_id = ANY({owners})) "
                    "TO STDOUT (FORMAT BINARY)"
                ).format(
                    cols=sql.SQL(cols),
                    table=sql.Identifier(table.name),
                    owners=sql.Literal(list(owners)),
                )
                with s.cursor() as out_cur, d.cursor() as in_cur:
                    with (
                        out_cur.copy(query) as out,
                        in_cur.copy(
                            sql.SQL("COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)").format(
                                table=sql.Identifier(table.name), cols=sql.SQL(cols)
                            )
                        ) as into,
                    ):
                        for block in out:
                            into.write(block)
                    copied += max(in_cur.rowcount, 0)
                if first:
                    crash("copy.rows_mid")
                    first = False
            d.commit()
            s.rollback()
        except BaseException:
            d.rollback()
            raise
    return copied


def _copy_generic(
    source: RegionStore,
    target: RegionStore,
    tables: list[Table],
    owners: Sequence[str],
    crash: Crash,
) -> int:
    copied = 0
    with (
        source.unchecked_connection(reason="carve-out: copy rows out") as src,
        target.unchecked_connection(reason="carve-out: copy rows in") as dst,
        dst.begin(),
    ):
        for table in reversed(tables):
            for chunk in chunks(owners, OWNERS_PER_QUERY):
                dst.execute(delete(table).where(table.c.owner_id.in_(chunk)))
        first = True
        for table in tables:
            for chunk in chunks(owners, OWNERS_PER_QUERY):
                rows = [
                    dict(r._mapping)
                    for r in src.execute(select(table).where(table.c.owner_id.in_(chunk)))
                ]
                if rows:
                    dst.execute(table.insert(), rows)
                    copied += len(rows)
            if first:
                crash("copy.rows_mid")
                first = False
    return copied


def delete_rows(store: RegionStore, owners: Sequence[str], *, crash: Crash = _no_crash) -> int:
    """Delete every region row of `owners` in `store`, children first.

    Elsewhere one transaction. SQLite: one short transaction per table and chunk of owners,
    since a database there has one writer at a time: a long deletion would hold up the
    region's other writers (requests of users who are not moving, the next batch's write
    fence). A deletion cut short is finished by the next attempt (the rows left are still the
    owners' and nothing else refers to them)."""
    if not owners:
        return 0
    if store.dialect.name == "sqlite":
        return _delete_sqlite(store, owners, crash)
    deleted = 0
    pg = store.dialect.name == "postgresql"  # one array parameter, not thousands
    tables = region_tables(store)
    with (
        store.unchecked_connection(reason="carve-out: delete the source copy") as conn,
        conn.begin(),
    ):
        first = True
        for table in reversed(tables):
            for chunk in chunks(owners, OWNERS_PER_QUERY):
                deleted += conn.execute(
                    delete(table).where(among(table.c.owner_id, chunk, pg=pg))
                ).rowcount
            if first:
                crash("clean.rows_mid")
                first = False
    return deleted


def _delete_sqlite(store: RegionStore, owners: Sequence[str], crash: Crash) -> int:
    deleted = 0
    tables = region_tables(store)
    with store.unchecked_connection(reason="carve-out: delete the source copy (SQLite)") as conn:
        db: Any = conn.connection.driver_connection
        tune_sqlite(db)
        first = True
        for table in reversed(tables):
            for chunk in chunks(owners, OWNERS_PER_QUERY):
                marks = qmarks(len(chunk))
                db.execute("BEGIN IMMEDIATE")
                try:
                    deleted += db.execute(
                        f'DELETE FROM "{table.name}" WHERE owner_id IN ({marks})', chunk
                    ).rowcount
                    db.commit()
                except BaseException:
                    db.rollback()
                    raise
            if first:
                crash("clean.rows_mid")
                first = False
    return deleted


# --- blobs ----------------------------------------------------------------------------------


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _local_files(root: Path, owner: str) -> list[str]:
    """Keys of an owner's files in a local store (one walk; no sorting, no temporary files)."""
    out = []
    for folder, _dirs, files in os.walk(root / owner):
        rel = os.path.relpath(folder, root).replace(os.sep, "/")
        out += [f"{rel}/{name}" for name in files if not name.startswith(".tmp-")]
    return out


def copy_blobs(
    source: RegionStore, target: RegionStore, owners: Sequence[str], *, crash: Crash = _no_crash
) -> tuple[int, int]:
    """Copy every blob of `owners` to `target` (and remove target blobs the source does not
    have: leftovers of an earlier attempt); durable on return. Returns (blobs, bytes).

    Users' files are copied side by side (threads: the time goes to the file system's latency,
    not to Python), then all fsynced side by side, so the file system commits them together."""
    todo = list(dict.fromkeys(with_blobs(source, owners) + with_blobs(target, owners)))
    if not (isinstance(source.blobs, LocalBlobStore) and isinstance(target.blobs, LocalBlobStore)):
        count = size = 0
        for owner in todo:
            keys = list(source.blobs.keys(f"{owner}/"))
            for stale in set(target.blobs.keys(f"{owner}/")) - set(keys):
                target.blobs.delete(stale)
            for key in keys:
                with source.blobs.staged(key) as path:
                    target.blobs.put_file(key, path)
                    size += path.stat().st_size
                count += 1
                if count == 1:
                    crash("copy.blob_mid")
        return count, size
    src_root, dst_root = source.blobs.root, target.blobs.root

    def one(owner: str) -> list[Path]:
        keys = _local_files(src_root, owner)
        folder = dst_root / owner
        if folder.is_dir():  # leftovers of an attempt killed mid-copy
            for key in set(_local_files(dst_root, owner)) - set(keys):
                (dst_root / key).unlink(missing_ok=True)
            for tmp in folder.rglob(".tmp-carveout-*"):
                tmp.unlink(missing_ok=True)
        written = []
        for key in keys:
            dst = dst_root / key
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.parent / f".tmp-carveout-{uuid.uuid4().hex}"
            shutil.copyfile(src_root / key, tmp)
            os.replace(tmp, dst)
            written.append(dst)
            crash("copy.blob_mid")
        return written

    with ThreadPoolExecutor(max_workers=FILE_THREADS) as pool:
        written = [path for paths in pool.map(one, todo) for path in paths]
        list(pool.map(_fsync, written))
        list(pool.map(_fsync, {p.parent for p in written}))
    return len(written), sum(p.stat().st_size for p in written)


def delete_blobs(store: RegionStore, owners: Sequence[str], *, crash: Crash = _no_crash) -> int:
    """Delete every blob of `owners` in `store`, and their emptied folders; returns how many.
    Users are removed side by side (threads), as files are copied."""
    if not isinstance(store.blobs, LocalBlobStore):
        count = 0
        for owner in with_blobs(store, owners):
            for key in list(store.blobs.keys(f"{owner}/")):
                store.blobs.delete(key)
                count += 1
                if count == 1:
                    crash("clean.blob_mid")
        return count
    root = store.blobs.root

    def one(owner: str) -> int:
        count = 0
        # one walk, deepest first: files, then the folders they leave empty
        for folder, dirs, files in os.walk(root / owner, topdown=False):
            for name in files:
                os.unlink(os.path.join(folder, name))
                if not name.startswith(".tmp-"):
                    count += 1
                    crash("clean.blob_mid")
            for name in dirs:
                os.rmdir(os.path.join(folder, name))
        os.rmdir(root / owner)
        return count

    with ThreadPoolExecutor(max_workers=FILE_THREADS) as pool:
        return sum(pool.map(one, with_blobs(store, owners)))
