"""A region's audit log in its own database: batched appends, O(log n) proofs, signed checkpoints.

Other code records an entry through a `RegionLog` (`region_log(settings, store)`), inside its own
region transaction with `record(session, entry)` or in a short transaction of its own with
`record_now(entry)`. The functions taking a session first are the storage layer under it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import cached_property, lru_cache
from itertools import repeat
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Insert, Table, bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from reelm.audit.checkpoint import Signer, sign_checkpoint
from reelm.audit.entries import Entry, pseudonym
from reelm.audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MemoryTree,
    consistency_proof,
    fold_range,
    inclusion_proof,
    node_hash,
    range_nodes,
)
from reelm.audit.models import AuditCheckpoint, AuditEntry, AuditHead, AuditNode
from reelm.audit.schemas import (
    ConsistencyProofRead,
    EntriesPage,
    EntryRead,
    InclusionProofRead,
    b64,
)
from reelm.config import Settings
from reelm.db import utcnow
from reelm.errors import InvalidInput, NotFound, ReelmError
from reelm.residency.store import RegionStore
from reelm.sql import chunks, qmarks

DEFAULT_ORIGIN = "reelm.example/{region}"
"""The log origin (and checkpoint key name) a region's key is created with: `{region}` is the
region name. Once the key file exists, its name is the origin."""

SIGNING_KEY_FILE = "audit.key"
PSEUDONYM_KEY_FILE = "audit-pseudonym.key"
MAX_PAGE = 1000
"""Most entries one read returns (HTTP pages, the CLI)."""

_HEAD_ID = 1
_ENTRIES = cast(Table, AuditEntry.__table__)
_NODES = cast(Table, AuditNode.__table__)
_CHECKPOINTS = cast(Table, AuditCheckpoint.__table__)
_HEAD = cast(Table, AuditHead.__table__)
_T = TypeVar("_T")


class AuditLogCorrupt(ReelmError):
    """The stored tree is missing a node it must have: the database was changed by hand."""

    status = 500
    code = "audit_log_corrupt"


# --- storage: a session first, no commit ---------------------------------------------------


def _insert_or_ignore(session: Session, table: Any, values: dict[str, Any]) -> Insert:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).values(values).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).values(values).on_conflict_do_nothing()
    raise NotImplementedError(f"the audit log does not support {dialect}")


_GROW = (
    update(_HEAD)
    .where(_HEAD.c.id == _HEAD_ID)
    .values(size=_HEAD.c.size + bindparam("count"))
    .returning(_HEAD.c.size)
)
"""Built once: building and compiling it per append cost most of a millisecond."""


def _reserve(session: Session, count: int) -> int:
    """Grow the head by `count` and return the new size, holding the lock until commit.

    The UPDATE is the first statement so the lock is taken before anything is read: the row
    lock on PostgreSQL (a second appender waits, then sees the new size), the write lock on
    SQLite (which also begins the transaction there, so no stale snapshot is read)."""
    size = session.execute(_GROW, {"count": count}).scalar_one_or_none()
    if size is None:  # a new log (or emptied tables): start from the entries actually stored
        stored = session.scalar(select(func.coalesce(func.max(AuditEntry.idx) + 1, 0)))
        session.execute(_insert_or_ignore(session, _HEAD, {"id": _HEAD_ID, "size": stored or 0}))
        size = session.execute(_GROW, {"count": count}).scalar_one()
    return int(size)


def tree_size(session: Session) -> int:
    """The number of entries committed (or appended in this session's transaction)."""
    size = session.scalar(_SIZE)
    return int(size or 0)


_SIZE = select(_HEAD.c.size).where(_HEAD.c.id == _HEAD_ID)
"""Built once, like `_GROW`: every proof checks the size first."""


@lru_cache(maxsize=64)
def _nodes_query(terms: int) -> str:
    """`SELECT ... WHERE (level = ? AND idx = ?) OR ...` with `terms` pairs, built once: one
    index probe per pair on SQLite, which answers a row-value IN list with a full scan."""
    pairs = " OR ".join("(level = ? AND idx = ?)" for _ in range(terms))
    return f"SELECT level, idx, hash FROM audit_nodes WHERE {pairs}"


_PG_NODES_QUERY = (
    "SELECT n.level, n.idx, n.hash FROM audit_nodes AS n JOIN unnest("
    "CAST(%s AS smallint[]), CAST(%s AS bigint[])) AS k(level, idx) "
    "ON n.level = k.level AND n.idx = k.idx"
)
"""PostgreSQL: the keys as two arrays, so every read is one prepared plan of index probes."""


def _stored(level: int) -> bool:
    """Whether `audit_nodes` holds the nodes of `level`: only even levels do.

    A node of an odd level is the hash of its two children, read with it (one read still does a
    whole proof, of at most twice as many rows). Storing every other level writes a third as
    many node rows as storing them all (n + n/4 + n/16 … instead of n + n/2 + n/4 …), and node
    rows are most of an append's cost after the entries themselves. Level 0, the copy of every
    leaf hash, stays stored: proofs and signed roots come from `audit_nodes` alone, so an entry
    changed in `audit_entries`, even with a matching `leaf_hash`, fails verification."""
    return level % 2 == 0


def _read_nodes(session: Session, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """The hashes of the nodes `keys`, from one read of the stored nodes (per 64 rows on SQLite;
    a proof needs one): see `_stored`."""
    wanted = set(keys)
    rows = sorted(
        {
            row
            for level, idx in wanted
            for row in (
                [(level, idx)]
                if _stored(level)
                else [(level - 1, 2 * idx), (level - 1, 2 * idx + 1)]
            )
        }
    )
    found: dict[tuple[int, int], bytes] = {}
    # Straight to the driver: SQLAlchemy's statement and row handling cost more than the
    # database's index probes (a proof is one statement of ~30 rows).
    dbapi = cast(Any, session.connection().connection.dbapi_connection)
    if session.get_bind().dialect.name == "postgresql":
        # binary results: bytea as bytes rather than hex text, about half a proof's time
        with dbapi.cursor(binary=True) as cursor:
            cursor.execute(_PG_NODES_QUERY, ([k[0] for k in rows], [k[1] for k in rows]))
            for level, idx, value in cursor.fetchall():
                found[(level, idx)] = bytes(value)
    else:
        cursor = dbapi.cursor()
        try:
            for chunk in chunks(rows, 64):
                # padded to a multiple of 8 pairs with a key never stored: few statements
                terms = 8 * -(-len(chunk) // 8)
                flat = [x for key in chunk for x in key] + [-1] * (2 * (terms - len(chunk)))
                for level, idx, value in cursor.execute(_nodes_query(terms), flat).fetchall():
                    found[(level, idx)] = bytes(value)
        finally:
            cursor.close()
    missing = [key for key in rows if key not in found]
    if missing:
        raise AuditLogCorrupt(
            f"audit log tree nodes {missing[:5]} are missing: the log's tables were changed "
            "outside reelm; run `reelm audit fsck` and investigate"
        )
    return {
        (level, idx): found[(level, idx)]
        if _stored(level)
        else node_hash(found[(level - 1, 2 * idx)], found[(level - 1, 2 * idx + 1)])
        for level, idx in wanted
    }


_SQLITE_ROWS = 500
"""Rows per SQLite `INSERT ... VALUES`: 500 rows of up to 4 values stay far below SQLite's limit
on bound variables (32766 since SQLite 3.32), and longer statements gain nothing."""


@lru_cache(maxsize=16)
def _values_statement(table: str, columns: tuple[str, ...], rows: int) -> str:
    row = "(" + qmarks(len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([row] * rows)


def _insert_many(
    session: Session, table: Table, columns: tuple[str, ...], values: list[Any]
) -> None:
    """Bulk-insert rows given as one flat list of values, row after row, already in the
    driver's types, with no per-row statement or type processing. PostgreSQL: binary COPY,
    about 2.5 times the rows/s of text COPY, which spends its time escaping bytea. SQLite:
    multi-row `INSERT ... VALUES` of `_SQLITE_ROWS` rows each, about half the cost of an
    executemany of one-row inserts (one statement run per 500 rows, not per row)."""
    width = len(columns)
    connection = session.connection()
    cursor = cast(Any, connection.connection.dbapi_connection).cursor()
    try:
        if connection.dialect.name == "postgresql":
            types = [table.c[c].type.compile(dialect=connection.dialect).lower() for c in columns]
            sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
            with cursor.copy(sql) as copy:
                copy.set_types(types)
                for row in chunks(values, width):
                    copy.write_row(row)
            return
        step = width * _SQLITE_ROWS
        for chunk in chunks(values, step):
            cursor.execute(_values_statement(table.name, columns, len(chunk) // width), chunk)
    finally:
        cursor.close()


_COPY_LEAF_NODES = text(
    "INSERT INTO audit_nodes (level, idx, hash) "
    "SELECT 0, idx, leaf_hash FROM audit_entries WHERE idx >= :start AND idx < :end"
)
"""Level 0 of the tree from the leaf hashes of entries just written, without sending them again."""


def append_leaves(session: Session, datas: Sequence[bytes], *, at: datetime | None = None) -> int:
    """Append leaf data in one batch and return the first new index (the tree size before).

    The leaf hashes and every aligned block the batch completes are computed in memory from
    the batch and the O(log n) pending left siblings on the tree's right edge (one read). Then
    three bulk writes: the entries, level 0 copied from them by the database, and the nodes of
    the stored levels above (`_stored`), each from one flat list of plain values (a tuple per
    row would cost about as much as SQLite's insert of it). Serialised per region by
    `_reserve`'s lock."""
    if not datas:
        return tree_size(session)
    count = len(datas)
    end = _reserve(session, count)
    start = end - count
    pending = [(k, (start >> k) - 1) for k in range(start.bit_length()) if (start >> k) & 1]
    known = _read_nodes(session, pending) if pending else {}
    sha256 = hashlib.sha256
    leaves = [sha256(b"\x00" + d).digest() for d in datas]  # merkle.leaf_hash, inlined
    dialect = session.get_bind().dialect
    to_db = _ENTRIES.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    created = to_db(at or utcnow()) if to_db else at or utcnow()
    entries: list[Any] = [None] * (4 * count)
    entries[0::4] = range(start, end)
    entries[1::4] = leaves
    entries[2::4] = datas
    entries[3::4] = repeat(created, count)
    _insert_many(session, _ENTRIES, ("idx", "leaf_hash", "data", "created_at"), entries)
    session.execute(_COPY_LEAF_NODES, {"start": start, "end": end})
    nodes: list[Any] = []
    level, first, row = 0, start, leaves  # the nodes of `level` this batch adds, from `first`
    while True:
        if first & 1:  # its left sibling is pending on the tree's right edge
            row = [known[(level, first - 1)], *row]
            first -= 1
        pairs = iter(row)  # an odd last node waits for its right sibling in a later batch
        row = [sha256(b"\x01" + a + b).digest() for a, b in zip(pairs, pairs, strict=False)]
        if not row:
            break
        level, first = level + 1, first >> 1
        if not _stored(level):
            continue
        block: list[Any] = [None] * (3 * len(row))
        block[0::3] = repeat(level, len(row))
        block[1::3] = range(first, first + len(row))
        block[2::3] = row
        nodes += block
    if nodes:
        _insert_many(session, _NODES, ("level", "idx", "hash"), nodes)
    return start


def append_entries(session: Session, entries: Sequence[Entry]) -> list[int]:
    """Append `entries`, stamped with the time now, inside the caller's region transaction; their
    indexes. Needs no key: an Egress writer running in a region's session records with it."""
    at = utcnow()
    datas = [e.model_copy(update={"time": e.time or at}).to_bytes() for e in entries]
    start = append_leaves(session, datas, at=at)
    return list(range(start, start + len(datas)))


class DbHashSource:
    """`merkle.HashSource` over the stored nodes: each range costs one indexed read of its
    `range_nodes` (at most 2·log2(n) rows, see `_stored`). `prefetched` does a whole proof in
    one read."""

    def __init__(self, session: Session, nodes: dict[tuple[int, int], bytes] | None = None):
        self.session = session
        self.nodes = nodes

    def subtree_hash(self, start: int, end: int) -> bytes:
        keys = range_nodes(start, end)
        nodes = self.nodes if self.nodes is not None else _read_nodes(self.session, keys)
        try:
            return fold_range([nodes[k] for k in keys])
        except KeyError:
            raise AuditLogCorrupt(f"audit log nodes for [{start}, {end}) were not read") from None


class _RangeRecorder:
    """Answers with placeholders and remembers the ranges: proof walks depend only on sizes."""

    def __init__(self) -> None:
        self.keys: set[tuple[int, int]] = set()

    def subtree_hash(self, start: int, end: int) -> bytes:
        self.keys.update(range_nodes(start, end))
        return bytes(HASH_SIZE)


def _prefetched(session: Session, size: int, walk: Callable[[Any], _T]) -> _T:
    """Run a proof `walk` over a tree of `size` leaves with every node it needs read at once.

    The size is checked against the head only when a node is missing: a stored tree has every
    node of each of its past sizes and none beyond, so a proof costs one read, not two."""
    recorder = _RangeRecorder()
    walk(recorder)
    try:
        nodes = _read_nodes(session, recorder.keys)
    except AuditLogCorrupt:
        _check_size(session, size)  # a size beyond the tree is the caller's mistake
        raise
    return walk(DbHashSource(session, nodes))


def _check_size(session: Session, size: int) -> int:
    current = tree_size(session)
    if not 0 <= size <= current:
        raise InvalidInput(
            f"tree size {size} is outside this log (it has {current} entries)", code="bad_size"
        )
    return current


def tree_root(session: Session, size: int | None = None) -> bytes:
    """MTH of the first `size` leaves (default: all), from O(log n) stored nodes."""
    size = tree_size(session) if size is None else size
    _check_size(session, size)
    if size == 0:
        return EMPTY_ROOT
    return DbHashSource(session).subtree_hash(0, size)


def prove_inclusion(session: Session, index: int, size: int) -> tuple[list[bytes], bytes]:
    """PATH(index, D[0:size]) and the root it leads to, from one read of the stored nodes."""
    if not 0 <= index < size:
        _check_size(session, size)
        raise InvalidInput(f"entry {index} is not in a tree of size {size}", code="bad_index")
    return _prefetched(
        session,
        size,
        lambda source: (inclusion_proof(source, index, size), source.subtree_hash(0, size)),
    )


def prove_consistency(
    session: Session, first: int, second: int
) -> tuple[list[bytes], bytes, bytes]:
    """PROOF(first, D[0:second]) and the two roots it links, from one read of the stored nodes."""
    if not 0 < first <= second:
        _check_size(session, second)
        raise InvalidInput(
            f"no consistency proof from size {first} to size {second}: need 0 < first <= second",
            code="bad_size",
        )
    return _prefetched(
        session,
        second,
        lambda source: (
            consistency_proof(source, first, second),
            source.subtree_hash(0, first),
            source.subtree_hash(0, second),
        ),
    )


def read_entries(session: Session, start: int, end: int) -> list[AuditEntry]:
    """Entries [start, end), at most MAX_PAGE of them, in index order."""
    if start < 0 or end < start:
        raise InvalidInput(f"[{start}, {end}) is not a range of entries", code="bad_range")
    end = min(end, start + MAX_PAGE)
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.idx >= start, AuditEntry.idx < end)
            .order_by(AuditEntry.idx)
        )
    )


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    return session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc()).limit(1))


def sign_tree_head(session: Session, signer: Signer) -> str:
    """Sign the current tree head and store it; the key's name is the log's origin."""
    size = tree_size(session)
    note = sign_checkpoint(signer.name, size, tree_root(session, size), signer)
    session.execute(
        _insert_or_ignore(
            session, _CHECKPOINTS, {"size": size, "note": note, "created_at": utcnow()}
        )
    )
    stored = session.scalar(select(AuditCheckpoint.note).where(AuditCheckpoint.size == size))
    return stored or note


# --- keys ---------------------------------------------------------------------------------


def _create_exclusively(path: Path, text: str) -> bool:
    """Write `path` (mode 0600) atomically unless it exists; False when another writer won.

    Written to a temporary file and hard-linked into place, so a concurrent reader never sees
    half a key, and an existing key is never replaced."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def load_or_create_signer(path: Path, origin: str) -> Signer:
    """The region's checkpoint key, created under the name `origin` at first use."""
    if not path.exists():
        _create_exclusively(path, Signer.generate(origin).key_text() + "\n")
    return Signer.load(path)


def load_or_create_secret(path: Path) -> bytes:
    if not path.exists():
        _create_exclusively(path, secrets.token_hex(32) + "\n")
    secret = bytes.fromhex(path.read_text(encoding="utf-8").strip())
    if len(secret) < 32:
        raise ReelmError(f"{path}: a pseudonym secret is 32 bytes of hex", status=500)
    return secret


# --- the region's log, as the rest of reelm uses it -----------------------------------------


class RegionLog:
    """One region's audit log: its tables in the region database, its checkpoint key and its
    pseudonym secret (both key files under `<data_dir>/keys/<region>/`)."""

    def __init__(
        self, store: RegionStore, key_dir: Path, *, origin_template: str = DEFAULT_ORIGIN
    ) -> None:
        self.store = store
        self.key_dir = key_dir
        self.origin_template = origin_template

    @property
    def region(self) -> str:
        return self.store.name

    @cached_property
    def signer(self) -> Signer:
        origin = self.origin_template.format(region=self.region)
        return load_or_create_signer(self.key_dir / SIGNING_KEY_FILE, origin)

    @property
    def origin(self) -> str:
        return self.signer.name

    def vkey(self) -> str:
        """The public verifier key an auditor needs: `<origin>+<key id>+<base64 key>`."""
        return self.signer.verifier.vkey()

    @cached_property
    def _secret(self) -> bytes:
        return load_or_create_secret(self.key_dir / PSEUDONYM_KEY_FILE)

    def pseudonym(self, user_id: str) -> str:
        """How `user_id` appears in this region's log: the only way entries refer to a user."""
        return pseudonym(self._secret, self.region, user_id)

    # writing

    def record(self, session: Session, entry: Entry) -> int:
        """Append `entry` inside the caller's region transaction; returns its index.

        It is committed or rolled back with the caller's work, and the log stays locked for
        other appenders until then, so keep the transaction short."""
        return self.record_many(session, [entry])[0]

    def record_many(self, session: Session, entries: Sequence[Entry]) -> list[int]:
        return append_entries(session, entries)

    def record_now(self, *entries: Entry) -> list[int]:
        """Append in a short transaction of its own (alongside, not inside, the caller's)."""
        with self.store.transaction() as session:
            return self.record_many(session, entries)

    # reading (own short sessions; what the CLI and the public endpoints serve)

    def size(self) -> int:
        with self.store.session() as session:
            return tree_size(session)

    def checkpoint(self, *, fresh: bool = True) -> str:
        """The latest signed checkpoint; with `fresh`, sign one first if the tree has grown."""
        with self.store.transaction() as session:
            latest = latest_checkpoint(session)
            if fresh and (latest is None or latest.size < tree_size(session)):
                return sign_tree_head(session, self.signer)
            if latest is None:
                raise NotFound(f"region {self.region} has no checkpoint yet", code="no_checkpoint")
            return latest.note

    def sign_checkpoint(self) -> str:
        """Sign and store a checkpoint of the current tree (the `reelm audit checkpoint` step)."""
        with self.store.transaction() as session:
            return sign_tree_head(session, self.signer)

    def entries(self, start: int, end: int) -> list[AuditEntry]:
        with self.store.session() as session:
            return read_entries(session, start, end)

    def root(self, size: int | None = None) -> bytes:
        with self.store.session() as session:
            return tree_root(session, size)

    def entries_page(self, start: int = 0, end: int | None = None) -> EntriesPage:
        """Entries [start, end) (default: to the end), at most MAX_PAGE; `end` says where it
        stopped."""
        with self.store.session() as session:
            size = tree_size(session)
            rows = read_entries(session, start, size if end is None else min(end, size))
        return EntriesPage(
            start=start,
            end=start + len(rows),
            size=size,
            entries=[
                EntryRead(
                    index=row.idx,
                    data=b64(row.data),
                    leaf_hash=b64(row.leaf_hash),
                    entry=_parsed(row.data),
                )
                for row in rows
            ],
        )

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProofRead:
        """Proof that entry `index` is in the tree of `size` entries (default: all of them)."""
        with self.store.session() as session:
            size = tree_size(session) if size is None else size
            proof, root = prove_inclusion(session, index, size)
        return InclusionProofRead(index=index, size=size, root=b64(root), proof=_b64s(proof))

    def consistency_proof(self, first: int, second: int | None = None) -> ConsistencyProofRead:
        """Proof that the tree of `second` entries (default: all) extends the one of `first`."""
        with self.store.session() as session:
            second = tree_size(session) if second is None else second
            proof, *roots = prove_consistency(session, first, second)
        return ConsistencyProofRead(
            first=first,
            second=second,
            first_root=b64(roots[0]),
            second_root=b64(roots[1]),
            proof=_b64s(proof),
        )

    def fsck(self, *, batch: int = 10_000) -> list[str]:
        """Recompute every stored node from the entry bytes; the problems found (none: [])."""
        problems: list[str] = []
        tree = MemoryTree()
        with self.store.session() as session:
            size = tree_size(session)
            for start in range(0, size, batch):
                rows = session.execute(
                    select(AuditEntry.idx, AuditEntry.data, AuditEntry.leaf_hash)
                    .where(AuditEntry.idx >= start, AuditEntry.idx < start + batch)
                    .order_by(AuditEntry.idx)
                )
                for idx, data, stored in rows:
                    if idx != tree.size:
                        problems.append(f"entry {tree.size} is missing")
                        return problems
                    tree.append_data(bytes(data))
                    if bytes(stored) != tree.levels[0][-1]:
                        problems.append(f"entry {idx}: stored leaf hash is not the data's hash")
            if tree.size != size:
                problems.append(f"the head says {size} entries, {tree.size} are stored")
            for level, row in enumerate(tree.levels):
                for start in range(0, len(row), batch):
                    stored_nodes = {
                        int(i): bytes(h)
                        for i, h in session.execute(
                            select(AuditNode.idx, AuditNode.hash).where(
                                AuditNode.level == level,
                                AuditNode.idx >= start,
                                AuditNode.idx < start + batch,
                            )
                        )
                    }
                    for i in range(start, min(start + batch, len(row))):
                        stored_node = stored_nodes.get(i)
                        if stored_node is None and not _stored(level):
                            continue  # hashed from its children when read
                        if stored_node != row[i]:
                            problems.append(f"node ({level}, {i}) does not match the entries")
        return problems


def _b64s(hashes: Sequence[bytes]) -> list[str]:
    return [b64(h) for h in hashes]


def _parsed(data: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def region_log(settings: Settings, store: RegionStore) -> RegionLog:
    """The audit log of `store`'s region, with its keys under `<data_dir>/keys/<region>/`."""
    return RegionLog(
        store, settings.data_dir / "keys" / store.name, origin_template=settings.audit_origin
    )
