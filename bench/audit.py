"""The audit log at 1M entries: batched appends/s, inclusion and consistency proofs/s (generation
and verification), against hashing the same leaves with hashlib; and Cedar staff-access
decisions/s against cedarpy with pre-parsed handles.

For each backend (SQLite files, a real PostgreSQL) a fresh deployment is initialised (`do_init`,
what `reelm init` runs: region databases built by the Alembic migrations, the policy activation
already logged as entry 0). The entries are real `StaffAccess` entries' canonical bytes (about 270
bytes each, every one different: its own pseudonym, staff id, ticket and decision).

Appends: the log is filled to 1M entries with `append_leaves` (the storage path under
`RegionLog.record_many`) in batches of 10,000, one region transaction (`store.transaction()`,
committed) per batch. The fill runs in segments of 50,000 entries; right before each segment is
appended, the same segment is hashed with hashlib (`sha256(0x00 ‖ entry).digest()`, the RFC 9162
leaf hash, in a list comprehension: the ceiling), its Merkle tree computed in memory
(`merkle.root_from_leaf_hashes`: leaf and node hashes, no storage), and its rows written, as a
floor, into a scratch table of `audit_entries`' shape in the same database with the same bulk
insert and no tree. Each rate is summed over the segments, so load on the shared machine falls
on all of them alike. At 1M entries, smaller batches (1,000 and 100 entries) and
`RegionLog.record_many` (typed entries: serialisation included) are measured the same way.

Proofs: random (index, size) and (first, second) pairs, uniform over the whole tree, generated
with `prove_inclusion` / `prove_consistency` in one read session (the storage layer) and with
`RegionLog.inclusion_proof` / `consistency_proof` (a session per call and base64: what the HTTP
endpoints and CLI serve); latencies per proof, then every proof is verified with
`verify_inclusion` / `verify_consistency` against roots from an in-memory `MemoryTree` of all the
leaf hashes (the reference: a stored tree that differs from it fails). A flipped bit in a proof
must fail verification.

Cedar: `staff.access.decide` with the demo policy (src/reelm/residency/policies/staff-access.cedar)
over a round-robin mix of 8 requests (3 allowed, 5 denied: by the global operator's forbid, or by
default for a closed, foreign or missing ticket, no second factor or an unlisted purpose), against
`cedarpy.is_authorized` of the same requests with a `PolicySet` and `Schema` parsed once.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench import _pg
from bench._common import (
    Context,
    Outcome,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    md_table,
    median,
    percentile,
)

TITLE = (
    "Audit log: appends and proofs/s at 1M entries against hashing the leaves; Cedar decisions/s"
)

APPEND_TARGET = 0.25  # batched appends ÷ leaf hashing
PROOF_TARGET_S = 0.001  # one proof, p50 of generation
FILL_BATCH = 10_000
SEGMENT = 50_000
AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
FLOOR_TABLE = "bench_entries_floor"


# ---- entries -------------------------------------------------------------------------------


def entry_fields(log: Any, i: int) -> dict[str, Any]:
    """The i-th made-up staff read: every entry different, like a real log's."""
    allowed = i % 3 != 0
    return {
        "staff_id": f"staff-{i % 977}",
        "operator": "usds" if allowed else "global",
        "subject": log.pseudonym(f"{i:032x}"),
        "data_category": "account" if i % 2 else "sessions",
        "purpose": "support",
        "ticket": f"TCK-{i}",
        "decision": "allow" if allowed else "deny",
        "policy_ids": [
            "region-operator-with-open-ticket" if allowed else "global-operator-never-reads-us"
        ],
    }


def entry_bytes(log: Any, first: int, count: int) -> list[bytes]:
    """Canonical bytes of entries first..first+count-1, built like `Entry.to_bytes` (checked
    against it on a sample) but without a pydantic model per entry, to keep setup short."""
    from reelm.audit.entries import ENTRY_VERSION, StaffAccess, canonical_json

    stamp = StaffAccess.model_validate({**entry_fields(log, 0), "time": AT}).model_dump(
        mode="json"
    )["time"]
    out = [
        canonical_json(
            {"v": ENTRY_VERSION, "kind": "staff_access", "time": stamp, **entry_fields(log, i)}
        )
        for i in range(first, first + count)
    ]
    for i in random.Random(first).sample(range(count), min(count, 50)):
        real = StaffAccess(**entry_fields(log, first + i), time=AT).to_bytes()
        if real != out[i]:
            raise RuntimeError(f"bench entry bytes differ from Entry.to_bytes: {real!r}")
    return out


def leaf_hashes(datas: Sequence[bytes]) -> list[bytes]:
    """The ceiling: RFC 9162 leaf hashes with hashlib, nothing else."""
    sha256 = hashlib.sha256
    return [sha256(b"\x00" + d).digest() for d in datas]


# ---- appends ---------------------------------------------------------------------------------


@dataclass
class Rates:
    """Seconds summed over segments for one way of appending and its references."""

    entries: int = 0
    append_s: float = 0.0
    hash_s: float = 0.0
    tree_s: float = 0.0
    floor_s: float = 0.0

    def add(self, other: Rates) -> None:
        self.entries += other.entries
        self.append_s += other.append_s
        self.hash_s += other.hash_s
        self.tree_s += other.tree_s
        self.floor_s += other.floor_s


def floor_table(engine: Any) -> Any:
    """A scratch table of `audit_entries`' columns (same types), with no tree beside it."""
    from sqlalchemy import Column, MetaData, Table

    from reelm.audit.models import AuditEntry

    columns = [
        Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable, autoincrement=False)
        for c in AuditEntry.__table__.columns
    ]
    table = Table(FLOOR_TABLE, MetaData(), *columns)
    table.create(engine)
    return table


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def append_segments(
    store: Any,
    floor: Any,
    datas: list[bytes],
    batch: int,
    *,
    append: Callable[[Any, list[bytes]], Any],
) -> tuple[Rates, list[bytes]]:
    """Append `datas` in batches with `append(session, batch)`, one committed transaction per
    batch, each segment right after its references; returns the rates and the leaf hashes."""
    from reelm.audit.log import _insert_many
    from reelm.audit.merkle import root_from_leaf_hashes

    rates = Rates()
    hashes: list[bytes] = []
    dialect = store._engine.dialect
    to_db = floor.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    created = to_db(AT) if to_db else AT
    floor_next = floor_size(store, floor)

    def write_floor(seg: list[bytes], leaves: list[bytes], first: int) -> None:
        """The rows `append_leaves` writes to `audit_entries`, built and written the same way."""
        for s in range(0, len(seg), batch):
            count = len(seg[s : s + batch])
            values: list[Any] = [None] * (4 * count)
            values[0::4] = range(first + s, first + s + count)
            values[1::4] = leaves[s : s + batch]
            values[2::4] = seg[s : s + batch]
            values[3::4] = [created] * count
            with store.transaction() as session:
                _insert_many(session, floor, ("idx", "leaf_hash", "data", "created_at"), values)

    def run_appends(seg: list[bytes]) -> None:
        for s in range(0, len(seg), batch):
            with store.transaction() as session:
                append(session, seg[s : s + batch])

    for start in range(0, len(datas), SEGMENT):
        seg = datas[start : start + SEGMENT]
        t0 = time.perf_counter()
        leaves = leaf_hashes(seg)
        t1 = time.perf_counter()
        root_from_leaf_hashes(leaf_hashes(seg))
        t2 = time.perf_counter()
        write_floor(seg, leaves, floor_next + start)
        t3 = time.perf_counter()
        run_appends(seg)
        t4 = time.perf_counter()
        rates.hash_s += t1 - t0
        rates.tree_s += t2 - t1
        rates.floor_s += t3 - t2
        rates.append_s += t4 - t3
        rates.entries += len(seg)
        hashes += leaves
    return rates, hashes


def floor_size(store: Any, floor: Any) -> int:
    from sqlalchemy import func, select

    with store._engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(floor)).scalar_one())


def stored_datas(log: Any, start: int, end: int) -> list[bytes]:
    """The bytes of the stored entries [start, end), read a page at a time."""
    out: list[bytes] = []
    while start + len(out) < end:
        page = log.entries(start + len(out), end)
        if not page:
            break
        out += [bytes(e.data) for e in page]
    return out


# ---- proofs ----------------------------------------------------------------------------------


@dataclass
class ProofRun:
    label: str
    latencies: list[float] = field(default_factory=list)
    verify_s: float = 0.0
    verified: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.latencies) / sum(self.latencies) if self.latencies else float("nan")

    @property
    def verify_rate(self) -> float:
        return self.verified / self.verify_s if self.verify_s else float("nan")


def inclusion_samples(rng: random.Random, size: int, n: int) -> list[tuple[int, int]]:
    out = []
    for _ in range(n):
        s = rng.randint(1, size)
        out.append((rng.randrange(s), s))
    return out


def consistency_samples(rng: random.Random, size: int, n: int) -> list[tuple[int, int]]:
    out = []
    for _ in range(n):
        second = rng.randint(2, size)
        out.append((rng.randint(1, second - 1), second))
    return out


def measure_proofs(
    ctx: Context, log: Any, tree: Any, size: int, count: int, backend: str
) -> list[ProofRun]:
    from reelm.audit.log import prove_consistency, prove_inclusion
    from reelm.audit.merkle import ProofError, verify_consistency, verify_inclusion
    from reelm.audit.schemas import unb64

    rng = random.Random(9162)
    inc = inclusion_samples(rng, size, count)
    con = consistency_samples(rng, size, count)
    runs: list[ProofRun] = []

    # storage layer, one read session
    inc_run, con_run = ProofRun("inclusion"), ProofRun("consistency")
    inc_proofs: list[tuple[list[bytes], bytes]] = []
    con_proofs: list[tuple[list[bytes], bytes, bytes]] = []
    with log.store.session() as session:
        prove_inclusion(session, 0, size)  # warm the statement caches
        prove_consistency(session, 1, size)
        perf = time.perf_counter
        for index, s in inc:
            t0 = perf()
            proof = prove_inclusion(session, index, s)
            inc_run.latencies.append(perf() - t0)
            inc_proofs.append(proof)
        for first, second in con:
            t0 = perf()
            cproof = prove_consistency(session, first, second)
            con_run.latencies.append(perf() - t0)
            con_proofs.append(cproof)

    # every root must be the reference tree's; then verification, timed on its own
    leaves = tree.levels[0]
    roots = {s: tree.root(s) for pair in (*inc, *con) for s in pair[1:]}
    roots |= {f: tree.root(f) for f, _ in con}
    bad = sum(1 for (_, s), (_, root) in zip(inc, inc_proofs, strict=True) if root != roots[s])
    bad += sum(
        1
        for (f, s), (_, r1, r2) in zip(con, con_proofs, strict=True)
        if (r1, r2) != (roots[f], roots[s])
    )
    if bad:
        inc_run.failures.append(f"{backend}: {bad} proofs came with a root the reference lacks")
    try:
        t0 = time.perf_counter()
        for (index, s), (proof, _) in zip(inc, inc_proofs, strict=True):
            verify_inclusion(leaves[index], index, s, proof, roots[s])
        inc_run.verify_s = time.perf_counter() - t0
        inc_run.verified = len(inc)
        t0 = time.perf_counter()
        for (f, s), (cp, _, _) in zip(con, con_proofs, strict=True):
            verify_consistency(f, s, cp, roots[f], roots[s])
        con_run.verify_s = time.perf_counter() - t0
        con_run.verified = len(con)
    except ProofError as e:
        inc_run.failures.append(f"{backend}: a stored-tree proof failed verification: {e}")
    flipped = 0
    for (index, s), (proof, _) in list(zip(inc, inc_proofs, strict=True))[:200]:
        if not proof:
            continue
        broken = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
        try:
            verify_inclusion(leaves[index], index, s, broken, roots[s])
        except ProofError:
            flipped += 1
        else:
            inc_run.failures.append(f"{backend}: a proof with a flipped bit verified")
    ctx.log(f"{backend}: {flipped} proofs with a flipped bit were all refused")
    runs += [inc_run, con_run]

    # what the endpoints serve: RegionLog, a session per proof, base64
    api_inc, api_con = ProofRun("inclusion, `RegionLog`"), ProofRun("consistency, `RegionLog`")
    n_api = max(1, count // 4)
    for (index, s), (proof, _) in zip(inc[:n_api], inc_proofs, strict=False):
        t0 = time.perf_counter()
        served = log.inclusion_proof(index, s)
        api_inc.latencies.append(time.perf_counter() - t0)
        if [unb64(h) for h in served.proof] != proof:
            api_inc.failures.append(f"{backend}: RegionLog served another inclusion proof")
            break
    for f, s in con[:n_api]:
        t0 = time.perf_counter()
        log.consistency_proof(f, s)
        api_con.latencies.append(time.perf_counter() - t0)
    runs += [api_inc, api_con]
    return runs


# ---- one backend ----------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    version: str
    total: int = 0
    setup_s: float = 0.0
    fill: Rates = field(default_factory=Rates)
    at_size: dict[str, Rates] = field(default_factory=dict)
    proofs: list[ProofRun] = field(default_factory=list)
    db_mb: float = float("nan")
    failures: list[str] = field(default_factory=list)


def measure(ctx: Context, backend: str, n: int, extra: dict[int, int], proofs: int) -> Result:
    if backend == "sqlite":
        return _measure(ctx, backend, n, extra, proofs, {})
    with _pg.databases("reelm_bench_audit", ["global", "us", "sg"]) as urls:
        return _measure(ctx, backend, n, extra, proofs, urls)


def _measure(
    ctx: Context,
    backend: str,
    n: int,
    extra: dict[int, int],
    proofs: int,
    urls: dict[str, str],
) -> Result:
    from reelm.audit.log import append_leaves, region_log
    from reelm.audit.merkle import MemoryTree, leaf_hash
    from reelm.config import Settings
    from reelm.residency.service import do_init

    data_dir = ctx.subdir(backend)
    kwargs: dict[str, Any] = {"data_dir": data_dir}
    if urls:
        regions = {r: urls[r] for r in ("us", "sg")}
        kwargs |= {"global_database_url": urls["global"], "region_database_urls": regions}
    settings = Settings(**kwargs)
    platform = do_init(settings)
    version = _pg.version() if urls else f"SQLite {sqlite3.sqlite_version}"
    res = Result(backend, version)
    try:
        store = platform.regions["us"]
        log = region_log(settings, store)
        before = [bytes(e.data) for e in log.entries(0, log.size())]  # the policy activation
        t0 = time.perf_counter()
        extra_total = sum(extra.values())
        datas = entry_bytes(log, 0, n + extra_total)
        res.setup_s = time.perf_counter() - t0
        ctx.log(f"{backend}: {len(datas):,} entries built in {res.setup_s:.1f} s")
        floor = floor_table(store._engine)

        ctx.log(f"{backend}: filling to {n:,} entries in batches of {FILL_BATCH:,}")
        res.fill, hashes = append_segments(
            store, floor, datas[:n], FILL_BATCH, append=append_leaves
        )
        ctx.log(
            f"{backend}: fill {res.fill.append_s:.1f} s ({n / res.fill.append_s:,.0f}/s), "
            f"hashing {res.fill.hash_s:.2f} s, floor {res.fill.floor_s:.1f} s"
        )
        offset = n
        for batch, count in extra.items():
            part = datas[offset : offset + count]
            rates, more = append_segments(store, floor, part, batch, append=append_leaves)
            res.at_size[f"`append_leaves`, batches of {batch:,}"] = rates
            hashes += more
            offset += count
            ctx.log(f"{backend}: batches of {batch}: {count / rates.append_s:,.0f}/s")
        # typed entries through RegionLog.record_many: serialisation and all
        from reelm.audit.entries import StaffAccess

        typed_n = max(1_000, extra_total // 10)
        typed = [StaffAccess(**entry_fields(log, offset + i)) for i in range(typed_n)]

        def record() -> None:
            for s in range(0, typed_n, 1_000):
                with store.transaction() as session:
                    log.record_many(session, typed[s : s + 1_000])

        record_s = timed(record)[0]
        first = len(before) + offset
        stored = stored_datas(log, first, first + typed_n)
        hash_s, typed_hashes = timed(lambda: leaf_hashes(stored))
        res.at_size["`RegionLog.record_many` of typed entries, batches of 1,000"] = Rates(
            entries=typed_n, append_s=record_s, hash_s=hash_s
        )
        hashes += typed_hashes
        offset += typed_n

        size = log.size()
        res.total = size
        expected = len(before) + offset
        if size != expected:
            res.failures.append(f"{backend}: the log has {size} entries, wanted {expected}")
        ctx.log(f"{backend}: building the reference tree of {size:,} leaves in memory")
        all_hashes = [leaf_hash(d) for d in before] + hashes
        tree = MemoryTree(all_hashes)
        if log.root() != tree.root():
            res.failures.append(f"{backend}: the stored root differs from the reference root")
        ctx.log(f"{backend}: proofs at {size:,} entries")
        res.proofs = measure_proofs(ctx, log, tree, size, proofs, backend)
        for p in res.proofs:
            res.failures += p.failures
        floor.drop(store._engine)  # so the size below is the log's own
        res.db_mb = database_mb(store._engine)
        return res
    finally:
        platform.close()


def database_mb(engine: Any) -> float:
    """The region database's size in use: SQLite's pages not on the free list, or
    `pg_database_size`."""
    from sqlalchemy import text

    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            pages = conn.execute(text("PRAGMA page_count")).scalar_one()
            free = conn.execute(text("PRAGMA freelist_count")).scalar_one()
            size = (pages - free) * conn.execute(text("PRAGMA page_size")).scalar_one()
        else:
            size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    return int(size) / 2**20


# ---- Cedar -----------------------------------------------------------------------------------


@dataclass
class CedarResult:
    decisions: int
    decide_s: float
    text_s: float
    baseline_s: float
    allowed: int
    failures: list[str]


def cedar_requests() -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    us = {"region": "us", "region_operator": "usds", "region_location": "US"}
    sg = {"region": "sg", "region_operator": "global", "region_location": "SG"}

    def ticket(op: str, region: str, *, open_: bool = True) -> dict[str, Any]:
        return {
            "purpose": "support",
            "ticket_id": f"TCK-{op}-{region}",
            "ticket_open": open_,
            "ticket_operator": op,
            "ticket_region": region,
        }

    no_ticket = {
        "purpose": "support",
        "ticket_id": "",
        "ticket_open": False,
        "ticket_operator": "",
        "ticket_region": "",
    }
    ava = {"id": "staff-ava", "operator": "usds", "mfa": True}
    mei = {"id": "staff-mei", "operator": "global", "mfa": True}
    bob = {"id": "staff-bob", "operator": "usds", "mfa": False}

    def user(i: int, region: dict[str, str], category: str = "account") -> dict[str, Any]:
        return {"id": f"{i:032x}", **region, "category": category}

    return [
        (ava, user(1, us), ticket("usds", "us")),  # allow
        (mei, user(2, us), ticket("global", "us")),  # forbid: global never reads us
        (mei, user(3, sg, "sessions"), {**ticket("global", "sg"), "purpose": "safety"}),  # allow
        (ava, user(4, us), ticket("usds", "us", open_=False)),  # deny: closed ticket
        (ava, user(5, us, "sessions"), ticket("usds", "us")),  # allow
        (ava, user(6, sg), ticket("usds", "sg")),  # deny: not sg's operator
        (bob, user(7, us), ticket("usds", "us")),  # deny: no second factor
        (ava, user(8, us), {**no_ticket, "purpose": "curiosity"}),  # deny: no ticket
    ]


def cedar_entities(staff: dict[str, Any], resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "uid": {"type": "Staff", "id": staff["id"]},
            "attrs": {k: v for k, v in staff.items() if k != "id"},
            "parents": [],
        },
        {
            "uid": {"type": "UserData", "id": resource["id"]},
            "attrs": {k: v for k, v in resource.items() if k != "id"},
            "parents": [],
        },
    ]


def cedar_request(staff: dict[str, Any], resource: dict[str, Any], ctx: dict[str, Any]) -> Any:
    return {
        "principal": {"type": "Staff", "id": staff["id"]},
        "action": {"type": "Action", "id": "read"},
        "resource": {"type": "UserData", "id": resource["id"]},
        "context": ctx,
    }


def measure_cedar(ctx: Context, seconds: float) -> CedarResult:
    import cedarpy

    from reelm.residency.policy import BUILTIN_POLICIES
    from reelm.staff.access import SCHEMA, decide, load_staff_policies

    policies = load_staff_policies(BUILTIN_POLICIES / "staff-access.cedar")
    mix = cedar_requests()
    prepared = [(cedar_request(s, r, c), cedar_entities(s, r)) for s, r, c in mix]
    policy_set = cedarpy.PolicySet.from_str(policies.text)
    schema = cedarpy.Schema.from_str(SCHEMA)
    failures: list[str] = []
    expected = [decide(policies, staff=s, resource=r, context=c) for s, r, c in mix]
    allowed = sum(d.allowed for d in expected)
    for (req, ents), want in zip(prepared, expected, strict=True):
        got = cedarpy.is_authorized(req, policy_set, ents, schema=schema)
        reasons = sorted(policies.ids.get(x, x) for x in got.diagnostics.reasons)
        if (bool(got.allowed), reasons) != (want.allowed, want.policy_ids):
            failures.append(f"Cedar: decide and cedarpy disagree on {req}")
    if allowed != 3:
        failures.append(f"Cedar: the mix should allow 3 of 8 requests, decide allowed {allowed}")

    def loop(step: Callable[[int], Any], budget: float) -> tuple[int, float]:
        n, t0 = 0, time.perf_counter()
        while True:
            for i in range(200):
                step(i % len(mix))
            n += 200
            elapsed = time.perf_counter() - t0
            if elapsed >= budget:
                return n, elapsed

    def by_decide(i: int) -> Any:
        s, r, c = mix[i]
        return decide(policies, staff=s, resource=r, context=c)

    def by_text(i: int) -> Any:
        req, ents = prepared[i]
        return cedarpy.is_authorized(req, policies.text, ents, schema=SCHEMA)

    def by_handles(i: int) -> Any:
        req, ents = prepared[i]
        return cedarpy.is_authorized(req, policy_set, ents, schema=schema)

    # many short interleaved rounds, so load changes fall on all three alike
    totals = {"decide": [0, 0.0], "text": [0, 0.0], "handles": [0, 0.0]}
    steps = {"decide": by_decide, "text": by_text, "handles": by_handles}
    rounds = 15
    for _ in range(rounds):
        for key, fn in steps.items():
            n, s = loop(fn, seconds / (3 * rounds))
            totals[key][0] += n
            totals[key][1] += s
    ctx.log("Cedar: " + ", ".join(f"{k} {v[0] / v[1]:,.0f}/s" for k, v in totals.items()))
    d, t, h = totals["decide"], totals["text"], totals["handles"]
    return CedarResult(
        decisions=int(d[0]),
        decide_s=d[1] / d[0],
        text_s=t[1] / t[0],
        baseline_s=h[1] / h[0],
        allowed=allowed,
        failures=failures,
    )


# ---- the section -----------------------------------------------------------------------------


def run(ctx: Context) -> Outcome:
    n = 100_000 if ctx.quick else 1_000_000
    extra = {1_000: 20_000, 100: 5_000} if ctx.quick else {1_000: 100_000, 100: 20_000}
    proofs = 2_000 if ctx.quick else 20_000
    results = [measure(ctx, backend, n, extra, proofs) for backend in ("sqlite", "postgresql")]
    cedar = measure_cedar(ctx, 3.0 if ctx.quick else 15.0)
    return report(results, cedar, n)


def _label(backend: str) -> str:
    return "SQLite" if backend == "sqlite" else "PostgreSQL"


def _per_s(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("nan")


def report(results: list[Result], cedar: CedarResult, n: int) -> Outcome:
    failures = [f for r in results for f in r.failures] + cedar.failures
    head, appends, proofs = [], [], []
    for r in results:
        f = r.fill
        hash_rate = _per_s(f.entries, f.hash_s)
        rate = _per_s(f.entries, f.append_s)
        ratio = rate / hash_rate
        met = ratio >= APPEND_TARGET
        if not met:
            failures.append(
                f"{_label(r.backend)}: batched appends at {ratio:.1%} of the hashing ceiling, "
                f"below the {APPEND_TARGET:.0%} target"
            )
        inc = next(p for p in r.proofs if p.label == "inclusion")
        con = next(p for p in r.proofs if p.label == "consistency")
        worst_p50 = max(median(inc.latencies), median(con.latencies))
        if worst_p50 > PROOF_TARGET_S:
            failures.append(
                f"{_label(r.backend)}: a proof takes {worst_p50 * 1000:.2f} ms (p50), above 1 ms"
            )
        head.append(
            [_label(r.backend), f"{r.total:,}", fmt_rate(rate), fmt_rate(hash_rate),
             f"**{fmt_ratio(ratio)}**", ("met" if met else "**missed**") + " (≥ 0.25)",
             fmt_ms(median(inc.latencies)), fmt_ms(percentile(inc.latencies, 99)),
             fmt_ms(median(con.latencies)), fmt_ms(percentile(con.latencies, 99)),
             "met" if worst_p50 <= PROOF_TARGET_S else "**missed**"]
        )  # fmt: skip
        rows = [("fill 0 → 1M: `append_leaves`, batches of 10,000", f)]
        rows += list(r.at_size.items())
        for what, x in rows:
            h = _per_s(x.entries, x.hash_s)
            a = _per_s(x.entries, x.append_s)
            appends.append(
                [_label(r.backend), what, f"{x.entries:,}", fmt_rate(a), fmt_rate(h),
                 fmt_ratio(a / h),
                 fmt_rate(_per_s(x.entries, x.tree_s)) if x.tree_s else "–",
                 fmt_rate(_per_s(x.entries, x.floor_s)) if x.floor_s else "–",
                 fmt_ratio(a / _per_s(x.entries, x.floor_s)) if x.floor_s else "–"]
            )  # fmt: skip
        for p in r.proofs:
            proofs.append(
                [_label(r.backend), p.label, f"{len(p.latencies):,}", fmt_rate(p.rate),
                 fmt_ms(median(p.latencies)), fmt_ms(percentile(p.latencies, 99)),
                 fmt_ms(max(p.latencies)) if p.latencies else "–",
                 fmt_rate(p.verify_rate) if p.verified else "–"]
            )  # fmt: skip
    head_table = md_table(
        ["backend", "entries", "appends/s", "leaf hashes/s", "÷ hashing", "target",
         "inclusion p50 ms", "p99", "consistency p50 ms", "p99", "target ≤ 1 ms"],
        head,
    )  # fmt: skip
    append_table = md_table(
        ["backend", "what", "entries", "appends/s", "leaf hashes/s (ceiling)", "÷ hashing",
         "tree in memory/s", "entry rows alone/s (floor)", "÷ floor"],
        appends,
        align="llrrrrrrr",
    )  # fmt: skip
    proof_table = md_table(
        ["backend", "proof", "proofs", "generated/s", "p50 ms", "p99 ms", "max ms",
         "verified/s"],
        proofs,
        align="llrrrrrr",
    )  # fmt: skip
    cedar_table = md_table(
        ["Cedar", "decisions/s", "µs each", "÷ pre-parsed baseline"],
        [
            ["**`staff.access.decide`** (demo policy)", fmt_rate(1 / cedar.decide_s),
             f"{cedar.decide_s * 1e6:.0f}", fmt_ratio(cedar.baseline_s / cedar.decide_s)],
            ["`cedarpy.is_authorized`, policy text and schema string per call",
             fmt_rate(1 / cedar.text_s), f"{cedar.text_s * 1e6:.0f}",
             fmt_ratio(cedar.baseline_s / cedar.text_s)],
            ["baseline: `cedarpy.is_authorized`, `PolicySet` and `Schema` parsed once",
             fmt_rate(1 / cedar.baseline_s), f"{cedar.baseline_s * 1e6:.0f}", "1"],
        ],
    )  # fmt: skip
    gap_parts = []
    for r in results:
        f = r.fill
        floor_share = f.hash_s / f.floor_s if f.floor_s else float("nan")
        tree_share = f.floor_s / f.append_s if f.append_s else float("nan")
        gap_parts.append(
            f"{_label(r.backend)}: entry rows alone {floor_share:.0%} of the ceiling, appends "
            f"{tree_share:.0%} of the entry rows alone"
        )
    gap = "; ".join(gap_parts)
    sizes = "; ".join(f"{_label(r.backend)} {r.db_mb:,.0f} MiB" for r in results)
    setup = "; ".join(f"{_label(r.backend)} {r.setup_s:.0f} s" for r in results)
    versions = ", ".join(r.version for r in results)
    md = f"""
**Batched appends against the hashing ceiling, and proof latency, at {n:,} entries** (rates are
entries/s; "÷ hashing" is appends/s divided by leaf hashes/s of the same entries in the same
run):

{head_table}

**Appends** (each rate summed over segments of {SEGMENT:,} entries, each segment's references
measured right before it is appended; the rows after the fill append to the 1M-entry log):

{append_table}

**Why the 25% target is out of reach:** writing the entry rows alone, with no tree at all, is
already close to or below a quarter of the hashing ceiling ({gap}, in the fill). One row of about
300 bytes per entry costs several times a SHA-256 of it in SQLite (or in COPY and PostgreSQL's
heap and index), before the write-ahead log and its checkpoint write each page twice, with the
`fsync`s a durable commit needs. The tree then adds the level-0 copy of every leaf hash (kept
apart from the entries so that a changed entry fails verification even with a matching
`leaf_hash`) and a third of a row per entry for the even levels above.

"tree in memory" hashes each segment's leaves and all its nodes (`merkle.root_from_leaf_hashes`)
without storing anything; "entry rows alone" writes the same rows, in the same batches and
transactions, with the same bulk insert as `append_leaves`, into a scratch table of
`audit_entries`' shape in the same database, with no tree: what storing the entries costs before
the tree's nodes. `RegionLog.record_many` also builds each entry's canonical JSON from a pydantic
model.

**Proofs** at the final size (random indices and sizes, uniform over the whole tree): generated
with `prove_inclusion` / `prove_consistency` in one read session, and through `RegionLog` (a
session per proof, base64: what the HTTP endpoints and the CLI serve); verified with
`verify_inclusion` / `verify_consistency`:

{proof_table}

**Cedar staff-access decisions** ({cedar.decisions:,} decisions by `decide`, interleaved with
the others; a round-robin mix of 8 requests, {cedar.allowed} allowed and {8 - cedar.allowed}
denied):

{cedar_table}

Checks: the entry bytes equal `StaffAccess.to_bytes()` (sampled); the log's size is the entries
appended plus the policy activation `do_init` logged; its root equals the root of a `MemoryTree`
of every leaf hash; every generated proof came with the reference tree's root(s) and verified,
and proofs with a flipped bit were refused; `RegionLog` served the same inclusion proofs;
`decide` and cedarpy with pre-parsed handles gave the same decision and policy ids for every
request of the mix. Region databases at the end (scratch table dropped): {sizes}. Building the entries took {setup}.
{versions}; SQLite with reelm's settings (WAL, `synchronous=NORMAL`), PostgreSQL started by
`pgserver` with its default settings.
"""
    return Outcome(md, failures)
