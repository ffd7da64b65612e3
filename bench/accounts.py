"""Sign-ups/s and logins/s through the HTTP API, against the bare endpoint of the same server.

For each backend (SQLite files, a real PostgreSQL) and each argon2 cost (production defaults, and
the cheap test cost) a fresh reelm is initialised and served by uvicorn in its own process; the
benchmark process then keeps 16 requests in flight for a fixed time per phase, in this order:
`GET /api/v1/ping`, `POST /api/v1/accounts` (sign-up, alternating jurisdictions US → region us and
DE → region sg), ping, `POST /api/v1/sessions` (login as the users just signed up, round robin),
ping. Each endpoint's rate is divided by the mean rate of the ping phases right before and after
it, so a change in the machine's load during the run shifts both sides of the ratio alike.
Afterwards the Directory is counted per region and the residency scan must find nothing.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import _pg
from bench._common import Context, Outcome, fmt_ms, fmt_rate, fmt_ratio, md_table, nproc
from bench._http import Call, Phase, Server, drive, ping, serve

TITLE = "Accounts: sign-ups/s and logins/s over HTTP, against the bare endpoint"

CLIENTS = 16
PASSWORD = "bench-password-0123"
JURISDICTIONS = {"US": "us", "DE": "sg"}  # under the demo policy
TEST_COST = {
    "REELM_ARGON2_TIME_COST": "1",
    "REELM_ARGON2_MEMORY_KIB": "64",
    "REELM_ARGON2_PARALLELISM": "1",
}
BACKENDS = ("sqlite", "postgresql")


def production_cost() -> tuple[int, int, int]:
    from reelm.config import Settings

    fields = Settings.model_fields
    return (
        int(fields["argon2_time_cost"].default),
        int(fields["argon2_memory_kib"].default),
        int(fields["argon2_parallelism"].default),
    )


def cost_label(env: dict[str, str]) -> str:
    if not env:
        t, m, p = production_cost()
        return f"production (t={t}, {m // 1024} MiB, p={p})"
    return (
        f"test cost (t={env['REELM_ARGON2_TIME_COST']}, {env['REELM_ARGON2_MEMORY_KIB']} KiB, "
        f"p={env['REELM_ARGON2_PARALLELISM']})"
    )


@dataclass
class Run:
    backend: str
    cost: str
    phases: dict[str, Phase] = field(default_factory=dict)
    regions_from_responses: Counter[str] = field(default_factory=Counter)
    regions_in_directory: dict[str, int] = field(default_factory=dict)
    scanned_rows: int = 0
    violations: int = -1

    def bare(self, label: str) -> float:
        """The bare endpoint's rate to compare phase `label` with: the mean of the ping phases
        right before and after it (for a ping phase: the mean of all ping phases)."""
        names = list(self.phases)
        i = names.index(label)
        if label.startswith("ping"):
            around = [n for n in names if n.startswith("ping")]
        else:
            around = [n for n in (names[i - 1], names[i + 1]) if n.startswith("ping")]
        return sum(self.phases[n].rate for n in around) / len(around)


class SignUps:
    """Sign-up requests with unique handles, alternating jurisdictions across all clients."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.turn = itertools.count()
        self.handles: list[str] = []
        self.regions: Counter[str] = Counter()

    def call(self, _client: int, _n: int) -> Call:
        k = next(self.turn)
        handle = f"{self.prefix}u{k:05d}"
        jurisdiction = list(JURISDICTIONS)[k % len(JURISDICTIONS)]
        body = {
            "handle": handle,
            "password": PASSWORD,
            "email": f"{handle}@bench.example.org",
            "birth_date": "1990-04-01",
            "jurisdiction": jurisdiction,
            "display_name": "Bench User",
        }
        return Call("POST", "/api/v1/accounts", body, expect=201, tag=handle)

    def ok(self, call: Call, body: bytes) -> None:
        self.handles.append(call.tag)
        self.regions[json.loads(body)["account"]["region"]] += 1


def logins(handles: list[str], clients: int) -> Any:
    def call(client: int, n: int) -> Call:
        handle = handles[(n * clients + client) % len(handles)]
        return Call(
            "POST", "/api/v1/sessions", {"handle": handle, "password": PASSWORD}, expect=201
        )

    return call


def measure(ctx: Context, backend: str, cost_env: dict[str, str], seconds: float) -> Run:
    run = Run(backend, cost_label(cost_env))
    slug = f"{backend}-{'test' if cost_env else 'prod'}"
    data_dir = ctx.subdir(slug)
    if backend == "sqlite":
        _serve_and_drive(ctx, run, data_dir, dict(cost_env), seconds)
        return run
    with _pg.databases(
        f"reelm_bench_accounts_{slug.replace('-', '_')}", ["global", "us", "sg"]
    ) as urls:
        env = dict(cost_env)
        env["REELM_GLOBAL_DATABASE_URL"] = urls["global"]
        env["REELM_REGION_DATABASE_URLS"] = json.dumps({"us": urls["us"], "sg": urls["sg"]})
        _serve_and_drive(ctx, run, data_dir, env, seconds)
    return run


def _serve_and_drive(
    ctx: Context, run: Run, data_dir: Path, env: dict[str, str], seconds: float
) -> None:
    ping_seconds = seconds / 3
    db_cpu = _pg.cpu_seconds if run.backend == "postgresql" else None
    ctx.log(f"{run.backend}, argon2 {run.cost}: reelm init + uvicorn")
    with serve(ctx.python, data_dir, env) as server:
        _warm_up(server)

        def phase(label: str, make: Any, on_ok: Any = None, seconds: float = seconds) -> Phase:
            p = drive(
                server, label, make, clients=CLIENTS, seconds=seconds, on_ok=on_ok, db_cpu=db_cpu
            )
            ctx.log(
                f"  {label:11} {fmt_rate(p.rate):>7} req/s  p50 {fmt_ms(p.p50)} ms  "
                f"p99 {fmt_ms(p.p99)} ms  errors {p.errors}"
            )
            run.phases[label] = p
            return p

        signups = SignUps("s")
        phase("ping 1", ping, seconds=ping_seconds)
        phase("sign-up", signups.call, signups.ok)
        run.regions_from_responses = signups.regions
        phase("ping 2", ping, seconds=ping_seconds)
        if signups.handles:
            phase("login", logins(signups.handles, CLIENTS))
        phase("ping 3", ping, seconds=ping_seconds)
    _verify(run, data_dir, env)


def _warm_up(server: Server) -> None:
    """A second of pings and one sign-up + login per region: imports, pools, first queries."""
    drive(server, "warm-up", ping, clients=CLIENTS, seconds=1)
    warm = SignUps("w")
    drive(server, "warm-up", warm.call, clients=1, seconds=0.01, on_ok=warm.ok)
    drive(server, "warm-up", warm.call, clients=1, seconds=0.01, on_ok=warm.ok)
    if warm.handles:
        drive(server, "warm-up", logins(warm.handles, 1), clients=1, seconds=0.01)


def _verify(run: Run, data_dir: Path, env: dict[str, str]) -> None:
    """Count the Directory per region and run the residency scan on what the run wrote."""
    from sqlalchemy import func, select

    from reelm.config import Settings
    from reelm.residency.models import DirectoryEntry
    from reelm.residency.scan import do_scan
    from reelm.residency.service import open_platform

    kwargs: dict[str, Any] = {"data_dir": data_dir}
    if "REELM_GLOBAL_DATABASE_URL" in env:
        kwargs["global_database_url"] = env["REELM_GLOBAL_DATABASE_URL"]
        kwargs["region_database_urls"] = json.loads(env["REELM_REGION_DATABASE_URLS"])
    platform = open_platform(Settings(**kwargs))
    try:
        with platform.global_store.session() as g:
            rows = g.execute(
                select(DirectoryEntry.home_region, func.count())
                .where(DirectoryEntry.handle_key.like("s%"))
                .group_by(DirectoryEntry.home_region)
            )
            run.regions_in_directory = {region: n for region, n in rows}
        report = do_scan(platform)
        run.scanned_rows = report.rows
        run.violations = len(report.violations or [])
    finally:
        platform.close()


def argon2_reference() -> tuple[float, float]:
    """CPU seconds of one argon2id hash and one verify at the production settings, in-process."""
    from argon2 import PasswordHasher, Type

    t, m, p = production_cost()
    hasher = PasswordHasher(time_cost=t, memory_cost=m, parallelism=p, type=Type.ID)
    hasher.hash(PASSWORD)
    start = time.process_time()
    hashes = [hasher.hash(PASSWORD) for _ in range(3)]
    hash_s = (time.process_time() - start) / 3
    start = time.process_time()
    for h in hashes:
        hasher.verify(h, PASSWORD)
    verify_s = (time.process_time() - start) / 3
    return hash_s, verify_s


def run(ctx: Context) -> Outcome:
    seconds = 3.0 if ctx.quick else 15.0
    runs: list[Run] = []
    for backend in BACKENDS:
        for cost_env in ({}, TEST_COST):
            runs.append(measure(ctx, backend, cost_env, seconds))
    hash_s, verify_s = argon2_reference()
    return report(runs, seconds, hash_s, verify_s)


def _label(backend: str) -> str:
    return "SQLite" if backend == "sqlite" else "PostgreSQL"


def _check(r: Run) -> list[str]:
    where = f"{_label(r.backend)}, argon2id {r.cost}"
    failures = []
    for label, p in r.phases.items():
        if p.errors:
            kinds = ", ".join(f"{k} ×{n}" for k, n in p.error_kinds.most_common(5))
            failures.append(f"{where}, {label}: {p.errors} errors ({kinds})")
    for label in ("sign-up", "login"):
        if label not in r.phases or not r.phases[label].ok:
            failures.append(f"{where}: no successful {label}")
    if set(r.regions_from_responses) != set(JURISDICTIONS.values()):
        failures.append(
            f"{where}: sign-ups did not reach both regions ({r.regions_from_responses})"
        )
    if r.regions_in_directory != dict(r.regions_from_responses):
        failures.append(
            f"{where}: the Directory has {r.regions_in_directory} sign-ups per region, the API "
            f"answered {dict(r.regions_from_responses)}"
        )
    if r.violations != 0:
        failures.append(f"{where}: the residency scan found {r.violations} violations")
    return failures


def _rows(r: Run) -> tuple[list[str], list[list[str]]]:
    su, li = r.phases.get("sign-up"), r.phases.get("login")
    head = [_label(r.backend), r.cost]
    for label, p in (("sign-up", su), ("login", li)):
        if p is None:
            head += ["–", "–", "–"]
        else:
            bare = r.bare(label)
            head += [fmt_rate(p.rate), fmt_rate(bare), fmt_ratio(p.rate / bare)]
    detail = []
    for label, p in r.phases.items():
        detail.append(
            [
                _label(r.backend),
                r.cost.split(" (")[0],
                label,
                fmt_rate(p.rate),
                fmt_ratio(p.rate / r.bare(label)),
                fmt_ms(p.p50),
                fmt_ms(p.p99),
                f"{p.ok:,}",
                str(p.errors),
                fmt_ms(p.per_request(p.server_cpu)),
                fmt_ms(p.per_request(p.db_cpu)) if r.backend == "postgresql" else "–",
                f"{p.server_cpu / p.seconds:.2f}" if p.server_cpu is not None else "–",
                f"{p.client_cpu / p.seconds:.2f}",
            ]
        )
    return head, detail


def report(runs: list[Run], seconds: float, hash_s: float, verify_s: float) -> Outcome:
    failures = [f for r in runs for f in _check(r)]
    head_rows, detail_rows = [], []
    for r in runs:
        head, detail = _rows(r)
        head_rows.append(head)
        detail_rows += detail
    head_table = md_table(
        ["backend", "argon2id", "sign-ups/s", "bare req/s", "÷ bare", "logins/s", "bare req/s",
         "÷ bare"],
        head_rows,
        align="llrrrrrr",
    )  # fmt: skip
    detail_table = md_table(
        ["backend", "argon2id", "endpoint", "req/s", "÷ bare", "p50 ms", "p99 ms", "requests",
         "errors", "server CPU ms/req", "PostgreSQL CPU ms/req", "server cores",
         "load-gen cores"],
        detail_rows,
        align="lllrrrrrrrrrr",
    )  # fmt: skip
    checks = "\n".join(
        f"- {_label(r.backend)}, argon2id {r.cost}: sign-ups per region "
        + ", ".join(f"{k} {v}" for k, v in sorted(r.regions_in_directory.items()))
        + f"; residency scan afterwards: {r.scanned_rows:,} rows, {r.violations} violations"
        for r in runs
    )
    prod = [r for r in runs if "production" in r.cost and "login" in r.phases]
    under_load = ""
    if prod and prod[0].phases["sign-up"].server_cpu is not None:
        su, li = prod[0].phases["sign-up"], prod[0].phases["login"]
        under_load = (
            f" Under load ({_label(prod[0].backend)}, {CLIENTS} requests in flight) the server "
            f"spent {su.per_request(su.server_cpu) * 1000:.0f} ms of CPU per sign-up and "
            f"{li.per_request(li.server_cpu) * 1000:.0f} ms per login."
        )
    pg = _pg.version() if any(r.backend == "postgresql" for r in runs) else "PostgreSQL"
    cores = nproc()
    md = f"""
**Sign-ups/s and logins/s, and their ratio to the bare endpoint (`GET /api/v1/ping`) of the same
server, measured right before and right after each of them (the mean of those two ping phases):**

{head_table}

Every sign-up hashes the password once and every login verifies it once with argon2id. At the
**production settings** (the defaults; RFC 9106's second recommendation) that hash dominates the
cost by design and bounds sign-ups and logins per core: here one hash takes {hash_s * 1000:.0f} ms
of CPU and one verify {verify_s * 1000:.0f} ms (measured serially in-process), so {cores} cores
allow at most about {cores / hash_s:.0f} sign-ups/s or {cores / verify_s:.0f} logins/s whatever
the rest of the stack does.{under_load} The **test-cost** rows run the same server with
`REELM_ARGON2_TIME_COST=1 REELM_ARGON2_MEMORY_KIB=64 REELM_ARGON2_PARALLELISM=1` (what the test
suite uses; never deploy it): hashing becomes nearly free and the stack's own per-request cost —
FastAPI, the Directory and region databases, the residency check, the user's data key, Egress,
the session — is what remains.

**Every phase, in the order run** (sign-up and login {seconds:.0f} s each, ping {seconds / 3:.0f} s
each; {CLIENTS} concurrent keep-alive clients; a ping row's "÷ bare" is relative to the mean of
the three, showing the drift; CPU per successful request; "cores" = CPU seconds per wall-clock
second):

{detail_table}

How: per row group a fresh data folder under /tmp, `reelm init`, then `python -m uvicorn --factory
reelm.web.app:create_app --workers 1 --no-access-log` on 127.0.0.1 (`reelm serve` runs the same
app and server, with uvicorn's per-request access log on). PostgreSQL: {pg}, started by `pgserver`
on a Unix socket with default settings, fresh databases per row group, given to reelm as
`REELM_GLOBAL_DATABASE_URL` and `REELM_REGION_DATABASE_URLS`. The load generator
(`bench/_http.py`) is one asyncio process keeping {CLIENTS} requests in flight; reelm, the load
generator and PostgreSQL share the machine's {cores} cores. Sign-ups alternate jurisdictions US
(region us) and DE (region sg); logins cycle through the users just signed up.

Checks (the Directory counted after each run; the scan is `do_scan`, what `reelm residency scan`
runs):

{checks}
"""
    return Outcome(md, failures)
