"""Engines, the Directory, RegionStore and the Platform that holds them all.

The residency rule is enforced here, once: every region session checks, before anything is
flushed or bulk-written, that each protected row's `owner_id` has this region as its home (or as
the target of an ongoing move) in the Directory. A wrong write raises `ResidencyViolation` and the
transaction writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, select
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from reelm.db import RegionModel
from reelm.errors import ResidencyViolation, TryAgainLater
from reelm.residency.blobs import BlobStore, open_blob_store
from reelm.residency.keys import FieldCipher, KeyRing, LocalKeyRing
from reelm.residency.models import ACTIVE, DELETED, MOVING, PENDING, DirectoryEntry
from reelm.residency.policy import ResidencyPolicy
from reelm.sql import chunks, read_rows

log = logging.getLogger(__name__)


def normalise_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    """An engine with the settings reelm relies on: WAL, foreign keys and a busy timeout on SQLite."""
    url = normalise_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    # no pre-ping: it costs a round trip per checkout; stale connections are recycled instead
    return create_engine(url, pool_size=10, max_overflow=20, pool_recycle=1800)


@dataclass(frozen=True)
class Home:
    region: str
    state: str
    moving_to: str | None

    def allows(self, region: str) -> bool:
        if self.state == DELETED:
            return False
        if self.state == MOVING and self.moving_to == region:
            return True
        return self.region == region


class Directory:
    """Reads of the global Directory that residency checks need; no personal data involved."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def homes(self, user_ids: Iterable[str]) -> dict[str, Home]:
        ids = list(set(user_ids))
        out: dict[str, Home] = {}
        with Session(self.engine) as s:
            for chunk in chunks(ids, 500):
                rows = s.execute(
                    select(
                        DirectoryEntry.user_id,
                        DirectoryEntry.home_region,
                        DirectoryEntry.state,
                        DirectoryEntry.moving_to,
                    ).where(DirectoryEntry.user_id.in_(chunk))
                )
                for uid, region, state, moving_to in rows:
                    out[uid] = Home(region, state, moving_to)
        return out

    def home(self, user_id: str) -> Home | None:
        """One user's home, read straight on a pooled DBAPI connection (`read_rows`): the web's
        session pass reads it on every signed-in read, where the ORM's per-execute work cost
        more than the primary-key lookup itself."""
        sql = "SELECT home_region, state, moving_to FROM directory WHERE user_id = ?"
        rows = read_rows(self.engine, sql, (user_id,))
        return Home(*rows[0]) if rows else None

    def all_homes(self) -> dict[str, Home]:
        with Session(self.engine) as s:
            rows = s.execute(
                select(
                    DirectoryEntry.user_id,
                    DirectoryEntry.home_region,
                    DirectoryEntry.state,
                    DirectoryEntry.moving_to,
                )
            )
            return {uid: Home(r, st, mt) for uid, r, st, mt in rows}


class RegionStore:
    """Everything one region holds, behind one object: the only door to protected data.

    Its sessions check the residency rule on every flush and bulk statement. The engine is
    private: the one way around those checks is `unchecked_connection`, which names itself and
    its reason (and ruff's SLF001 refuses `store._engine` outside this class)."""

    def __init__(
        self,
        name: str,
        *,
        engine: Engine,
        blobs: BlobStore,
        keys: KeyRing,
        directory: Directory,
        work_dir: Path | None = None,
        redis_url: str | None = None,
    ) -> None:
        self.name = name
        self._engine = engine
        self.blobs = blobs
        self.keys = keys
        # Region-local scratch space (uploads being received, transcode work, the job queue):
        # protected bytes in flight never leave the region's machines either.
        self.work_dir = work_dir or Path(f"/tmp/reelm-work-{name}")
        # The region's job queue on Redis (media/jobs.py); None: a SQLite file in work_dir.
        self.redis_url = redis_url
        self.directory = directory
        self._sessions = sessionmaker(engine, expire_on_commit=False, info={"region": name})
        event.listen(self._sessions, "before_flush", self._check_flush)
        event.listen(self._sessions, "do_orm_execute", self._check_bulk)

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def unchecked_connection(self, *, reason: str) -> Iterator[Connection]:
        """A connection to this region's database *below* the residency hooks: nothing run on
        it is checked against the Directory.

        Only for bulk jobs that keep the rule by construction and say how (the carve-out and
        hand-over copy users a journal marked `moving`, export and purge touch one user's rows
        in their home region, the scanner and For You's page reads only read). `reason` names
        the job; it is logged at debug. The connection has not begun a transaction: write
        under `with conn.begin():`, or use `conn.connection` for the DBAPI connection (it goes
        back to the pool, rolled back, when the block ends)."""
        if not reason.strip():
            raise ValueError("unchecked_connection needs a reason")
        log.debug("unchecked connection to region %s: %s", self.name, reason)
        with self._engine.connect() as conn:
            yield conn

    @property
    def dialect(self) -> Dialect:
        """The database this region runs on (reading it opens no connection)."""
        return self._engine.dialect

    @property
    def url(self) -> URL:
        return self._engine.url

    def table_names(self) -> set[str]:
        """The tables this region's database has: its schema, no rows."""
        return set(inspect(self._engine).get_table_names())

    def wait_for_writers(self) -> None:
        """Return once every transaction holding this region's write fence has ended (see
        `hold_write_fence`)."""
        if self.dialect.name == "postgresql":
            with self._engine.begin() as conn:
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_FENCE_KEY})")
            return
        raw: Any = self._engine.raw_connection()
        try:
            raw.execute("BEGIN IMMEDIATE")
            raw.rollback()
        finally:
            raw.close()

    def close(self) -> None:
        """Close the region's pooled connections."""
        self._engine.dispose()

    def cipher(self, owner_id: str) -> FieldCipher:
        """Encrypts and decrypts one user's sensitive fields with their data key."""
        return FieldCipher(self.keys, owner_id)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session committed on success and rolled back on any error (for edges: CLI, tasks)."""
        with self._sessions() as s, s.begin():
            yield s

    def check_owners(self, owners: dict[str, str], *, deleting: bool = False) -> None:
        """Raise unless every owner (id → table) may have protected rows written in this region.

        A user whose data a carve-out is moving (Directory state `moving`) may not be written
        anywhere until the move is over: `TryAgainLater` (503, Retry-After), so the copy the
        carve-out verifies is the copy that survives. `deleting`: only that check (removing a
        row from the wrong region is always allowed)."""
        if not owners:
            return
        homes = self.directory.homes(owners)
        for owner, table in owners.items():
            home = homes.get(owner)
            if home is not None and home.state == MOVING:
                raise TryAgainLater(
                    "This account's data is being moved to another region; try again in a few "
                    "seconds.",
                    retry_after=MOVING_RETRY_AFTER,
                    code="user_moving",
                )
            if deleting:
                continue
            if home is None:
                raise ResidencyViolation(
                    f"{table}: owner {owner} is not in the Directory; a protected row needs a "
                    f"known owner (writing into region {self.name!r} refused)"
                )
            if not home.allows(self.name):
                raise ResidencyViolation(
                    f"{table}: a protected row of user {owner} (home region {home.region!r}, "
                    f"state {home.state}) may not be written into region {self.name!r}"
                )

    def _check_flush(self, session: Session, _ctx: Any, _instances: Any) -> None:
        owners: dict[str, str] = {}
        removed: dict[str, str] = {}
        for obj in (*session.new, *session.dirty):
            if isinstance(obj, RegionModel):
                table = obj.__tablename__
                if obj.owner_id is None:
                    raise ResidencyViolation(f"{table}: a protected row has no owner_id")
                owners[obj.owner_id] = table
        for obj in session.deleted:
            if isinstance(obj, RegionModel) and obj.owner_id is not None:
                removed[obj.owner_id] = obj.__tablename__
        if owners or removed:
            _fence_once(session)
        self._check_once(session, owners)
        self._check_once(
            session, {k: v for k, v in removed.items() if k not in owners}, deleting=True
        )

    def _check_once(
        self, session: Session, owners: dict[str, str], *, deleting: bool = False
    ) -> None:
        """`check_owners`, skipping owners this transaction has passed already: the write fence
        it holds keeps a carve-out from copying them before it ends, so what the Directory
        said then still holds for the rest of the transaction (one Directory read per
        transaction instead of one per flush)."""
        root = session.get_transaction()
        cached = session.info.get("residency_checked")
        if cached is None or cached[0] is not root:
            cached = session.info["residency_checked"] = (root, set(), set())
        written: set[str] = cached[1]
        removed: set[str] = cached[2]
        passed = removed | written if deleting else written
        todo = {k: v for k, v in owners.items() if k not in passed}
        self.check_owners(todo, deleting=deleting)
        (removed if deleting else written).update(todo)

    def _check_bulk(self, state: ORMExecuteState) -> None:
        if not (state.is_insert or state.is_update or state.is_delete):
            return
        mapper = state.bind_mapper
        if mapper is None or not issubclass(mapper.class_, RegionModel):
            return
        table = mapper.class_.__tablename__
        params = state.parameters
        rows: list[Any] = params if isinstance(params, list) else [params] if params else []
        values = getattr(state.statement, "_values", None) or {}
        owners: dict[str, str] = {}
        for row in rows:
            if isinstance(row, dict) and "owner_id" in row:
                owners[str(row["owner_id"])] = table
        for col, val in values.items():
            if getattr(col, "key", col) == "owner_id":
                owners[str(getattr(val, "value", val))] = table
        if state.is_insert and not owners and not rows:
            raise ResidencyViolation(f"{table}: bulk insert without owner_id refused")
        _fence_once(state.session)
        current: dict[str, str] = {}
        if not state.is_insert:
            # the owners of the rows an UPDATE or DELETE touches, from its own WHERE clause
            query = select(mapper.class_.owner_id).distinct()
            where = getattr(state.statement, "whereclause", None)
            if where is not None:
                query = query.where(where)
            current = {str(o): table for o in state.session.execute(query).scalars()}
        self._check_once(state.session, owners)
        self._check_once(
            state.session,
            {k: v for k, v in current.items() if k not in owners},
            deleting=state.is_delete,
        )


MOVING_RETRY_AFTER = 3
"""Seconds a client is asked to wait while its user's data is being moved (a batch of a
carve-out takes about a second; see docs/carveout.md)."""

_FENCE_KEY = 0x7265656C6D  # "reelm": the PostgreSQL advisory lock key of the write fence


def _fence_once(session: Session) -> None:
    """`hold_write_fence` for the session's current transaction, taken at its first protected
    write (it is held until the transaction ends; taking it again is a wasted round trip)."""
    root = session.get_transaction()
    if session.info.get("write_fence") is not root:
        hold_write_fence(session.connection())
        session.info["write_fence"] = root


def hold_write_fence(connection: Connection) -> None:
    """Take this region's write fence, shared, for the rest of the caller's transaction.

    Every write of protected rows takes it *before* it reads the owners' homes from the
    Directory. A carve-out marks users `moving`, then waits for the fence exclusively
    (`RegionStore.wait_for_writers`): every transaction that read a home before the mark has ended by
    then (so the copy sees its rows), and every later one reads the mark and is refused.
    PostgreSQL: a shared advisory transaction lock. SQLite: the database's write lock itself
    (taken now rather than at the first INSERT; SQLite has one writer at a time anyway)."""
    name = connection.dialect.name
    if name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock_shared({_FENCE_KEY})")
    elif name == "sqlite":
        raw: Any = connection.connection.dbapi_connection
        if not raw.in_transaction:
            raw.execute("BEGIN IMMEDIATE")


class GlobalStore:
    """The global database: Directory, PublicCatalog, policy versions. Never personal data."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._sessions() as s, s.begin():
            yield s


class Platform:
    """One deployment: its policy, the global store and a RegionStore per region."""

    def __init__(
        self,
        *,
        policy: ResidencyPolicy,
        global_url: str,
        keys_dir: Path,
        region_urls: dict[str, str] | None = None,
        redis_urls: dict[str, str] | None = None,
    ) -> None:
        self.policy = policy
        self.keys_dir = keys_dir
        self.global_store = GlobalStore(make_engine(global_url))
        self.directory = Directory(self.global_store.engine)
        overrides = region_urls or {}
        redis = redis_urls or {}
        self.regions: dict[str, RegionStore] = {}
        for name, region in policy.regions.items():
            url = overrides.get(name, region.database_url)
            self.regions[name] = RegionStore(
                name,
                engine=make_engine(url),
                blobs=open_blob_store(region.blob_store),
                keys=LocalKeyRing(keys_dir / name, region=name),
                directory=self.directory,
                work_dir=Path(region.blob_store.removeprefix("file://")).parent / "work",
                redis_url=redis.get(name, region.redis_url),
            )

    def region(self, name: str) -> RegionStore:
        try:
            return self.regions[name]
        except KeyError:
            from reelm.errors import NotFound

            raise NotFound(f"Unknown region {name!r}", code="unknown_region") from None

    def close(self) -> None:
        self.global_store.engine.dispose()
        for r in self.regions.values():
            r.close()


__all__ = [
    "ACTIVE",
    "DELETED",
    "MOVING",
    "PENDING",
    "Directory",
    "GlobalStore",
    "Home",
    "Platform",
    "RegionStore",
    "hold_write_fence",
    "make_engine",
]
