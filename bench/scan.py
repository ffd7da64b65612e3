"""`reelm residency scan` throughput over 1M protected rows, against `SELECT count(*)`.

For each backend (SQLite files, a real PostgreSQL) a fresh deployment is initialised (`do_init`,
what `reelm init` runs) and seeded directly — users in the Directory, then rows bulk-inserted into
the region tables `accounts` (one per user) and `sessions` (nine per user) with executemany
(SQLite) or COPY (PostgreSQL), bypassing the ORM's residency hook but with every row in its owner's
home region; users alternate between regions us and sg. Then, interleaved and repeated, the
baseline (a plain `SELECT count(*)` over every scanned table: the floor of touching each row once)
and `do_scan(platform)`, the function the CLI calls, which must report every row and zero
violations. Finally ten violating rows are planted (accounts and sessions of users stored in the
wrong region, and of an owner the Directory does not know) and both `do_scan` and the real
`reelm residency scan` command must report exactly those.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench import _pg
from bench._common import (
    Context,
    Outcome,
    fmt_rate,
    fmt_ratio,
    md_table,
    median,
    reelm_command,
    reelm_env,
)

TITLE = "Residency scan: rows/s over 1M protected rows, against SELECT count(*)"

SQLITE_TARGET = 200_000  # rows/s
SESSIONS_PER_USER = 9
REGIONS = ("us", "sg")
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


# ---- seeding -------------------------------------------------------------------------------


def _plain_type(col: Any) -> Any:
    from sqlalchemy import TypeDecorator

    t = col.type
    return t.impl_instance if isinstance(t, TypeDecorator) else t


def _unique_columns(table: Any) -> set[str]:
    from sqlalchemy import UniqueConstraint

    out = {c.name for c in table.columns if c.unique}
    for con in table.constraints:
        if isinstance(con, UniqueConstraint) and len(con.columns) == 1:
            out |= {c.name for c in con.columns}
    for ix in table.indexes:
        if ix.unique and len(ix.columns) == 1:
            out |= {c.name for c in ix.columns}
    pk = list(table.primary_key.columns)
    if len(pk) == 1:
        out.add(pk[0].name)
    return out


def _filler(col: Any) -> Any:
    """A plausible constant for a NOT NULL column the benchmark has no reason to vary."""
    from sqlalchemy import Boolean, Date, DateTime, Float, Integer, LargeBinary, String, Text

    t = _plain_type(col)
    if isinstance(t, Boolean):
        return False
    if isinstance(t, Integer):
        return 0
    if isinstance(t, Float):
        return 0.0
    if isinstance(t, DateTime):
        return NOW + timedelta(days=30) if "expires" in col.name else NOW
    if isinstance(t, Date):
        return date(1990, 4, 1)
    if isinstance(t, LargeBinary):
        return b"\x01" + bytes(12) + b"bench-ciphertext" + bytes(16)  # AES-GCM-sized blob
    if isinstance(t, Text):
        return "bench"
    if isinstance(t, String):
        return "bench"[: t.length or 5] if col.name != "jurisdiction" else "US"
    raise NotImplementedError(
        f"bench/scan.py does not know how to fill {col.table.name}.{col.name} ({t!r}); "
        "teach _filler about this type"
    )


@dataclass
class Layout:
    """How to build rows of one table: constants everywhere except the per-row columns."""

    table: Any
    columns: list[str]
    template: list[Any]
    slot: dict[str, int]
    random: list[int] = field(default_factory=list)  # unique columns without a given value


def layout(table: Any, given: Iterable[str], process: Callable[[Any, Any], Any]) -> Layout:
    given = set(given)
    unique = _unique_columns(table)
    columns, template, slot, random = [], [], {}, []
    for i, col in enumerate(table.columns):
        columns.append(col.name)
        if col.name in given:
            slot[col.name] = i
            template.append(None)
        elif col.name in unique:
            random.append(i)
            template.append(None)
        elif col.nullable:
            template.append(None)
        else:
            template.append(process(col, _filler(col)))
    missing = given - set(slot)
    if missing:
        raise RuntimeError(f"{table.name} has no column(s) {sorted(missing)}")
    return Layout(table, columns, template, slot, random)


def rows(lay: Layout, values: Iterable[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
    template, slot, random = lay.template, lay.slot, lay.random
    urandom = os.urandom
    for v in values:
        row = template.copy()
        for name, x in v.items():
            row[slot[name]] = x
        for i in random:
            row[i] = urandom(16).hex()
        yield tuple(row)


def _hex_ids(n: int) -> list[str]:
    blob = os.urandom(16 * n).hex()
    return [blob[i : i + 32] for i in range(0, 32 * n, 32)]


class Writer:
    """Bulk writes straight into one database: executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.backend = engine.dialect.name

    def process(self, col: Any, value: Any) -> Any:
        if self.backend != "sqlite" or value is None:
            return value  # psycopg adapts Python values itself
        proc = col.type.bind_processor(self.engine.dialect)
        return proc(value) if proc else value

    def write(self, lay: Layout, data: Iterable[tuple[Any, ...]]) -> int:
        cols = ", ".join(lay.columns)
        if self.backend == "sqlite":
            path = self.engine.url.database
            conn = sqlite3.connect(path)
            try:
                conn.execute("PRAGMA synchronous=OFF")
                conn.execute("PRAGMA cache_size=-524288")
                marks = ", ".join("?" for _ in lay.columns)
                with conn:
                    cur = conn.executemany(
                        f"INSERT INTO {lay.table.name} ({cols}) VALUES ({marks})", data
                    )
                    n = cur.rowcount
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
            return int(n)
        raw = self.engine.raw_connection()
        try:
            n = 0
            sql = f"COPY {lay.table.name} ({cols}) FROM STDIN"
            with raw.cursor() as cur, cur.copy(sql) as copy:
                for row in data:
                    copy.write_row(row)
                    n += 1
            raw.commit()
        finally:
            raw.close()
        return n


@dataclass
class Seeded:
    users: dict[str, str]  # user id → home region
    rows: int
    seconds: float


def seed(platform: Any, total_rows: int) -> Seeded:
    """Users (total_rows / 10) alternating between regions; one account and nine sessions each."""
    from reelm.db import RegionModel
    from reelm.residency.models import DirectoryEntry

    if total_rows % (1 + SESSIONS_PER_USER):
        raise ValueError(f"total_rows must be a multiple of {1 + SESSIONS_PER_USER}")
    t0 = time.perf_counter()
    n_users = total_rows // (1 + SESSIONS_PER_USER)
    ids = _hex_ids(n_users)
    users = {uid: REGIONS[i % len(REGIONS)] for i, uid in enumerate(ids)}

    g = Writer(platform.global_store.engine)
    directory = layout(
        DirectoryEntry.__table__,
        ["user_id", "handle", "handle_key", "home_region", "state"],
        g.process,
    )
    g.write(
        directory,
        rows(
            directory,
            (
                {"user_id": uid, "handle": f"b{i}", "handle_key": f"b{i}", "home_region": region,
                 "state": "active"}
                for i, (uid, region) in enumerate(users.items())
            ),
        ),
    )  # fmt: skip

    accounts = RegionModel.metadata.tables["accounts"]
    sessions = RegionModel.metadata.tables["sessions"]
    written = 0
    for region in REGIONS:
        w = Writer(platform.regions[region]._engine)
        mine = [uid for uid, r in users.items() if r == region]
        acc = layout(accounts, ["id", "owner_id"], w.process)
        written += w.write(acc, rows(acc, ({"id": u, "owner_id": u} for u in mine)))
        ses = layout(sessions, ["owner_id", "account_id"], w.process)
        written += w.write(
            ses,
            rows(
                ses,
                ({"owner_id": u, "account_id": u} for _ in range(SESSIONS_PER_USER) for u in mine),
            ),
        )
    return Seeded(users, written, time.perf_counter() - t0)


@dataclass(frozen=True)
class Planted:
    region: str
    table: str
    row_id: str
    owner_id: str


def plant_violations(platform: Any, users: dict[str, str]) -> list[Planted]:
    """Ten rows that break the rule: for two us users and two sg users an account and a session
    in the other region (8 rows), and an account and a session of an unknown owner in us (2)."""
    from reelm.db import RegionModel

    accounts = RegionModel.metadata.tables["accounts"]
    sessions = RegionModel.metadata.tables["sessions"]
    by_region = {r: [u for u, home in users.items() if home == r] for r in REGIONS}
    wrong = [(u, "sg") for u in by_region["us"][:2]] + [(u, "us") for u in by_region["sg"][:2]]
    stranger = _hex_ids(1)[0]
    wrong.append((stranger, "us"))
    planted: list[Planted] = []
    for region in REGIONS:
        owners = [u for u, r in wrong if r == region]
        w = Writer(platform.regions[region]._engine)
        acc = layout(accounts, ["id", "owner_id"], w.process)
        w.write(acc, rows(acc, ({"id": u, "owner_id": u} for u in owners)))
        session_ids = _hex_ids(len(owners))
        ses = layout(sessions, ["id", "owner_id", "account_id"], w.process)
        w.write(
            ses,
            rows(
                ses,
                (
                    {"id": s, "owner_id": u, "account_id": u}
                    for u, s in zip(owners, session_ids, strict=True)
                ),
            ),
        )
        planted += [Planted(region, "accounts", u, u) for u in owners]
        planted += [
            Planted(region, "sessions", s, u) for u, s in zip(owners, session_ids, strict=True)
        ]
    return planted


# ---- measuring -----------------------------------------------------------------------------


def scanned_tables(platform: Any) -> dict[str, list[Any]]:
    """Per region, the tables do_scan walks: RegionModel tables that exist in that database."""
    from sqlalchemy import inspect

    from reelm.db import RegionModel

    out = {}
    for region, store in platform.regions.items():
        existing = set(inspect(store._engine).get_table_names())
        out[region] = [t for t in RegionModel.metadata.sorted_tables if t.name in existing]
    return out


def count_rows(platform: Any, tables: dict[str, list[Any]]) -> int:
    from sqlalchemy import func, select

    n = 0
    for region, store in platform.regions.items():
        with store._engine.connect() as conn:
            for t in tables[region]:
                n += int(conn.execute(select(func.count()).select_from(t)).scalar_one())
    return n


def group_by_owner(platform: Any, tables: dict[str, list[Any]]) -> int:
    """The query do_scan sends per table, fetched, with no Python work on the result."""
    from sqlalchemy import func, select

    n = 0
    for region, store in platform.regions.items():
        with store._engine.connect() as conn:
            for t in tables[region]:
                for _owner, c in conn.execute(
                    select(t.c.owner_id, func.count()).group_by(t.c.owner_id)
                ):
                    n += c
    return n


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


@dataclass
class Result:
    backend: str
    version: str
    seeded: Seeded
    times: dict[str, list[float]] = field(default_factory=dict)
    planted_scan_s: float = 0.0
    cli_s: float = 0.0
    cli_summary: str = ""
    rows: int = 0
    failures: list[str] = field(default_factory=list)

    def med(self, key: str) -> float:
        return median(self.times[key])


def settle(platform: Any) -> None:
    """After bulk loading, bring tables to the state a running database is in: PostgreSQL's
    autovacuum would have analysed them and set the visibility map; SQLite needs nothing."""
    if platform.global_store.engine.dialect.name != "postgresql":
        return
    from sqlalchemy import text

    for engine in [platform.global_store.engine, *(s.engine for s in platform.regions.values())]:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))


def measure(ctx: Context, backend: str, total: int, reps: int) -> Result:
    if backend == "sqlite":
        return _measure(ctx, backend, total, reps, {})
    with _pg.databases("reelm_bench_scan", ["global", *REGIONS]) as urls:
        return _measure(ctx, backend, total, reps, urls)


def _measure(ctx: Context, backend: str, total: int, reps: int, urls: dict[str, str]) -> Result:
    from reelm.config import Settings
    from reelm.residency.scan import do_scan
    from reelm.residency.service import do_init

    data_dir = ctx.subdir(backend)
    kwargs: dict[str, Any] = {"data_dir": data_dir}
    env = {"REELM_DATA_DIR": str(data_dir)}
    if urls:
        regions = {r: urls[r] for r in REGIONS}
        kwargs |= {"global_database_url": urls["global"], "region_database_urls": regions}
        env |= {
            "REELM_GLOBAL_DATABASE_URL": urls["global"],
            "REELM_REGION_DATABASE_URLS": json.dumps(regions),
        }
    platform = do_init(Settings(**kwargs))
    version = _pg.version() if urls else f"SQLite {sqlite3.sqlite_version}"
    try:
        ctx.log(f"{backend}: seeding {total:,} rows")
        seeded = seed(platform, total)
        settle(platform)
        for store in platform.regions.values():
            store._engine.dispose()
        ctx.log(f"{backend}: seeded {seeded.rows:,} rows in {seeded.seconds:.1f} s")
        res = Result(backend, version, seeded)
        if seeded.rows != total:
            res.failures.append(f"{backend}: seeded {seeded.rows} rows, wanted {total}")
        tables = scanned_tables(platform)
        steps: dict[str, Callable[[], Any]] = {
            "count": lambda: count_rows(platform, tables),
            "group": lambda: group_by_owner(platform, tables),
            "homes": lambda: platform.directory.all_homes(),
            "scan": lambda: do_scan(platform),
        }
        res.times = {k: [] for k in steps}
        for rep in range(reps + 1):  # the first round warms caches and is not counted
            for key, fn in steps.items():
                seconds, out = timed(fn)
                if rep:
                    res.times[key].append(seconds)
                if key == "count" and out != total:
                    res.failures.append(f"{backend}: count(*) saw {out} rows, wanted {total}")
                if key == "scan":
                    res.rows = out.rows
                    if out.rows != total or out.violations:
                        res.failures.append(
                            f"{backend}: clean scan reported {out.rows} rows and "
                            f"{len(out.violations or [])} violations, wanted {total} and 0"
                        )
            ctx.log(
                f"{backend}: round {rep}{' (warm-up)' if not rep else ''}: "
                + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in res.times.items() if v and rep)
            )

        planted = plant_violations(platform, seeded.users)
        res.planted_scan_s, report = timed(lambda: do_scan(platform))
        found = {(v.region, v.table, v.row_id, v.owner_id) for v in report.violations or []}
        wanted = {(p.region, p.table, p.row_id, p.owner_id) for p in planted}
        if found != wanted or len(report.violations or []) != len(planted):
            res.failures.append(
                f"{backend}: scan with {len(planted)} planted violations reported "
                f"{len(report.violations or [])}; missed {len(wanted - found)}, "
                f"extra {len(found - wanted)}"
            )
        if report.rows != total + len(planted):
            res.failures.append(f"{backend}: scan with planted rows counted {report.rows}")
        res.cli_s, res.cli_summary = _cli_scan(env, planted, res.failures, backend)
        ctx.log(
            f"{backend}: planted {len(planted)} violations; do_scan {res.planted_scan_s:.3f} s, "
            f"`reelm residency scan` {res.cli_s:.2f} s: {res.cli_summary}"
        )
        return res
    finally:
        platform.close()


def _cli_scan(
    env: dict[str, str], planted: list[Planted], failures: list[str], backend: str
) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*reelm_command(), "residency", "scan"],
        env=reelm_env(**env) | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    flagged = [ln for ln in lines if ln.startswith("VIOLATION")]
    summary = lines[-1] if lines else proc.stderr.strip()[-300:]
    missing = [p for p in planted if not any(p.row_id in ln for ln in flagged)]
    if proc.returncode != 1 or len(flagged) != len(planted) or missing:
        failures.append(
            f"{backend}: `reelm residency scan` exited {proc.returncode} with {len(flagged)} "
            f"VIOLATION lines ({len(missing)} planted rows not named); wanted exit 1 and "
            f"{len(planted)}: {summary}"
        )
    return seconds, summary


# ---- the section ---------------------------------------------------------------------------


def run(ctx: Context) -> Outcome:
    total = 100_000 if ctx.quick else 1_000_000
    reps = 2 if ctx.quick else 3
    results = [measure(ctx, backend, total, reps) for backend in ("sqlite", "postgresql")]
    return report(results, total, reps)


def _label(backend: str) -> str:
    return "SQLite" if backend == "sqlite" else "PostgreSQL"


def _breakdown(r: Result, total: int) -> list[list[str]]:
    count = r.med("count")
    users = len(r.seeded.users)

    def line(what: str, seconds: float, n: int | None, spread: list[float] | None) -> list[str]:
        rng = f"{min(spread):.3f}–{max(spread):.3f}" if spread else "1 run"
        rate = fmt_rate(n / seconds) if n else "–"
        return [_label(r.backend), what, f"{seconds:.3f}", rng, rate, fmt_ratio(seconds / count)]

    t = r.times
    return [
        line("baseline: `SELECT count(*)` per table", count, total, t["count"]),
        line("`SELECT owner_id, count(*) … GROUP BY owner_id`, fetched", r.med("group"), total,
             t["group"]),
        line(f"Directory load (`all_homes`, {users:,} users)", r.med("homes"), None, t["homes"]),
        line("**`do_scan(platform)`**, clean", r.med("scan"), total, t["scan"]),
        line("`do_scan(platform)`, 10 violations planted", r.planted_scan_s, total + 10, None),
        line("`reelm residency scan` (CLI, whole process)", r.cli_s, total + 10, None),
    ]  # fmt: skip


def report(results: list[Result], total: int, reps: int) -> Outcome:
    failures = [f for r in results for f in r.failures]
    head, detail = [], []
    for r in results:
        scan, count = r.med("scan"), r.med("count")
        rate = total / scan
        target = "–"
        if r.backend == "sqlite":
            target = f"≥ {SQLITE_TARGET:,}: " + ("met" if rate >= SQLITE_TARGET else "**missed**")
            if rate < SQLITE_TARGET:
                failures.append(
                    f"SQLite scan ran at {rate:,.0f} rows/s, below the {SQLITE_TARGET:,} target"
                )
        head.append(
            [_label(r.backend), f"{total:,}", f"{scan:.3f}", fmt_rate(rate), f"{count:.3f}",
             fmt_rate(total / count), fmt_ratio(scan / count), target]
        )  # fmt: skip
        detail += _breakdown(r, total)
    head_table = md_table(
        ["backend", "protected rows", "do_scan s", "rows/s", "count(*) s", "count(*) rows/s",
         "do_scan ÷ count(*)", "target rows/s"],
        head,
    )  # fmt: skip
    detail_table = md_table(
        ["backend", "what", "s", "range", "rows/s", "÷ count(*)"], detail, align="llrrrr"
    )
    seeding = "; ".join(
        f"{_label(r.backend)} {r.seeded.seconds:.0f} s "
        f"({fmt_rate(r.seeded.rows / r.seeded.seconds)} rows/s)"
        for r in results
    )
    cli = "\n".join(f"- {_label(r.backend)}: `{r.cli_summary}`" for r in results)
    versions = ", ".join(r.version for r in results)
    n_users = len(results[0].seeded.users) if results else 0
    md = f"""
**Residency scan throughput, and its time relative to `SELECT count(*)` over the same tables in the
same run** (median of {reps} rounds after a warm-up round; times in seconds):

{head_table}

**Breakdown** (median and range over the rounds; "÷ count(*)" is time relative to the baseline):

{detail_table}

Data: {total:,} protected rows in `accounts` ({n_users:,}, one per user) and `sessions` (nine per
user), users alternating between regions us and sg (half the rows in each region database), and
{n_users:,} active Directory entries; the other region tables exist and are empty. Rows were
bulk-inserted with executemany (SQLite) / COPY (PostgreSQL) after `do_init`, bypassing the ORM
(seeding took {seeding}). Then PostgreSQL's databases were `VACUUM ANALYZE`d, the state autovacuum
brings a live database to; SQLite gets no `ANALYZE` (reelm runs none). {versions}; PostgreSQL
started by `pgserver` on a Unix socket with its default settings.

Correctness: every clean round reported all {total:,} rows and no violation. With 10 planted rows
(for two us and two sg users an account and a session in the wrong region, plus an account and a
session of an owner missing from the Directory) `do_scan` reported exactly those ten, and the CLI
exited 1 naming each of them:

{cli}
"""
    return Outcome(md, failures)
