"""Likes and comments over HTTP before and after the outbox, and the dispatcher's effects/s.

Issue 11: an action commits once in the actor's region with its effects in that region's
outbox, and the dispatcher applies them right after the commit (DESIGN rule 6). What does that
cost a request? "Before" is commit 8ba6790, whose services wrote the catalog's counters and the
recipient's notification in separate transactions after the actor's commit; "after" is the
code of this checkout. Both are measured in the same run, against the same server's bare
endpoint, on SQLite files and on a real PostgreSQL.

**HTTP.** For each backend, two deployments: "before" is served from `git archive 8ba6790 src`
unpacked under the scratch folder (its `reelm init` and its uvicorn run with PYTHONPATH on that
`src/`, so they import the old code, with this virtualenv's packages); "after" from this
checkout's `src/`. Each is seeded in this process with the same shape: users signed up through
`check_sign_up` (argon2 at test cost, half with jurisdiction US → region us, half DE → region
sg, real session tokens), the first of each region creators of published videos (region rows
and catalog rows). Both servers run at once (one idle while the other is driven); 16 keep-alive
clients (`bench/_http.py`) drive blocks of `GET /api/v1/ping`, `POST
/api/v1/videos/{id}/like`, ping, `POST /api/v1/videos/{id}/comments`, ping — before, after,
then after, before (ABBA, against drift). Every like is a new (user, video) pair and every
like and comment crosses regions (a user of us on a video of a creator of sg and the other way
round), so each one writes the like or comment, two counters or the published comment with its
count, and a notification in the other region. A phase's "÷ bare" is its rate over the mean of
the ping phases right before and after it; a version's figure is the mean of its blocks', and
"after ÷ before" divides those (the target: the outbox costs at most 10%, ≥ 0.90).

**Where the cost goes.** After the HTTP phases, `bench/_effects_probe.py` runs in-process
calls of `do_like` and `do_comment` for each version in its own process (the version's code on
the path, sessions resolved first, one call at a time): wall and CPU ms per call and SQL
statements and commits per database; for "after" also split into the action's commit (the
dispatch held back) and the inline dispatch of its effects.

**Dispatcher.** In this process, on the "after" deployment: N effects of a like/comment mix
(three likes to one comment; a like emits two `CountChange` and a `NotificationRecord` for the
other region, a comment a `PublicCommentRecord` and its notification) are emitted through
`Outbox(session, owner_id)` inside region us transactions (100 actions per transaction), not
dispatched; then `dispatch_all(platform, "us")` is timed. The baseline, run before and after it
on an identical workload, writes the same records with `egress()` directly, in the same
transactions the dispatcher uses (per batch of 500, one catalog transaction and one in the
recipients' region) but with no outbox to read or delete and no applied keys. Checks: every
effect applied, the outbox empty, and the catalog counters, published comments, notifications
and applied keys moved by exactly what was emitted.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from bench import _pg
from bench._common import (
    BENCH,
    REPO,
    Context,
    Outcome,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    md_table,
    nproc,
    percentile,
    reelm_command,
    reelm_env,
)
from bench._http import AuthCall, Call, Phase, Server, drive, ping, serve

TITLE = "Effects: likes and comments over HTTP before and after the outbox; dispatcher effects/s"

BEFORE = "8ba6790"
VERSIONS = ("before", "after")
BACKENDS = ("sqlite", "postgresql")
CLIENTS = 16
REGIONS = {"us": "US", "sg": "DE"}  # region → a jurisdiction it serves under the demo policy
TARGET = 0.90
TEST_COST = {"argon2_time_cost": 1, "argon2_memory_kib": 64, "argon2_parallelism": 1}


@dataclass
class Scale:
    users_per_region: int
    creators_per_region: int
    videos_per_creator: int
    seconds: float
    ping_seconds: float
    rounds: int
    effects: int
    probe: int


FULL = Scale(200, 40, 3, 12.0, 4.0, 2, 10_000, 200)
QUICK = Scale(60, 10, 3, 3.0, 1.5, 1, 2_000, 60)


# ---- the two versions ------------------------------------------------------------------------


def unpack_before(ctx: Context) -> Path:
    """`git archive BEFORE src` unpacked under the scratch folder; returns its `src/`."""
    dest = ctx.subdir("before-src")
    archive = subprocess.Popen(
        ["git", "-C", str(REPO), "archive", "--format=tar", BEFORE, "src"], stdout=subprocess.PIPE
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    assert archive.stdout is not None
    archive.stdout.close()
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {BEFORE} failed")
    return dest / "src"


def imported_from(python: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [python, "-c", "import reelm, pathlib; print(pathlib.Path(reelm.__file__).parent)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


# ---- seeding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    id: str
    handle: str
    region: str
    token: str


@dataclass(frozen=True)
class Video:
    id: str
    creator: User


@dataclass
class Deployment:
    backend: str
    version: str
    data_dir: Path
    env: dict[str, str]  # REELM_* settings and PYTHONPATH
    src: Path
    users: list[User] = field(default_factory=list)
    videos: list[Video] = field(default_factory=list)
    seed_seconds: float = 0.0

    def settings(self) -> Any:
        from reelm.config import Settings

        kwargs: dict[str, Any] = {"data_dir": self.data_dir, **TEST_COST}
        if "REELM_GLOBAL_DATABASE_URL" in self.env:
            kwargs["global_database_url"] = self.env["REELM_GLOBAL_DATABASE_URL"]
            kwargs["region_database_urls"] = json.loads(self.env["REELM_REGION_DATABASE_URLS"])
        return Settings(**kwargs)


def init(d: Deployment) -> None:
    """`reelm init` of the deployment's own version (its migrations)."""
    env = reelm_env(REELM_DATA_DIR=str(d.data_dir), **d.env)
    done = subprocess.run(
        [*reelm_command(), "init"], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"reelm init ({d.version}) failed:\n{done.stdout}\n{done.stderr}")


def seed(d: Deployment, scale: Scale) -> None:
    """Users with sessions and published videos, written in this process with this checkout's
    code; only tables both versions share are written (the outbox came later)."""
    from reelm.accounts.schemas import SignUp
    from reelm.accounts.service import check_sign_up
    from reelm.db import utcnow
    from reelm.media.models import PublishedVideo, Upload
    from reelm.media.models import Video as RegionVideo
    from reelm.residency.service import open_platform
    from reelm.social.models import PublicCounts

    t0 = time.perf_counter()
    settings = d.settings()
    platform = open_platform(settings)
    try:
        for i in range(scale.users_per_region):
            for region, jurisdiction in REGIONS.items():
                handle = f"{region}{i:04d}"
                signed = check_sign_up(
                    platform,
                    settings,
                    SignUp(
                        handle=handle,
                        password="bench-password-0123",
                        email=f"{handle}@bench.example.org",
                        birth_date=date(1990, 4, 1),
                        jurisdiction=jurisdiction,
                    ),
                )
                assert signed.account.region == region, (handle, signed.account.region)
                d.users.append(User(signed.account.id, handle, region, signed.token))
        now = utcnow()
        for region in REGIONS:
            creators = [u for u in d.users if u.region == region][: scale.creators_per_region]
            made: list[Video] = []
            with platform.region(region).transaction() as s:
                for c in creators:
                    for k in range(scale.videos_per_creator):
                        upload = Upload(owner_id=c.id, declared_size=1, received=1, state="ready")
                        s.add(upload)
                        s.flush()
                        video = RegionVideo(
                            owner_id=c.id, upload_id=upload.id, edit="{}",
                            caption=f"clip {k} #bench", visibility="public", state="ready",
                            progress=100, duration_s=10.0, width=720, height=1280,
                            published_at=now,
                        )  # fmt: skip
                        s.add(video)
                        s.flush()
                        made.append(Video(video.id, c))
            with platform.global_store.transaction() as g:
                for c in creators:
                    g.add(PublicCounts(user_id=c.id, videos=scale.videos_per_creator))
                for v in made:
                    g.add(
                        PublishedVideo(
                            id=v.id, creator_id=v.creator.id, creator_handle=v.creator.handle,
                            region=region, caption="clip #bench", visibility="public",
                            duration_s=10.0, width=720, height=1280, published_at=now,
                        )
                    )  # fmt: skip
            d.videos += made
    finally:
        platform.close()
    d.seed_seconds = time.perf_counter() - t0


# ---- driving ---------------------------------------------------------------------------------


class Actions:
    """Cross-region (user, video) pairs, each used once: likes and comments of one deployment.
    Counts what the server answered with success, for the checks afterwards."""

    def __init__(self, d: Deployment, seed_value: int = 11) -> None:
        pairs = [(u, v) for u in d.users for v in d.videos if v.creator.region != u.region]
        random.Random(seed_value).shuffle(pairs)
        self.like_pairs = iter(pairs)
        self.comment_pairs = itertools.cycle(pairs)
        self.likes = 0
        self.comments = 0
        self.exhausted = False
        self.turn = itertools.count()

    def next_like(self) -> tuple[User, Video]:
        try:
            return next(self.like_pairs)
        except StopIteration:
            self.exhausted = True
            raise

    def like(self, _client: int, _n: int) -> Call:
        u, v = self.next_like()
        return AuthCall("POST", f"/api/v1/videos/{v.id}/like", {}, expect=200, token=u.token)

    def comment(self, _client: int, _n: int) -> Call:
        u, v = next(self.comment_pairs)
        body = {"text": f"nice one {next(self.turn)}"}
        return AuthCall("POST", f"/api/v1/videos/{v.id}/comments", body, expect=201,
                        token=u.token)  # fmt: skip

    def liked(self, _call: Call, _body: bytes) -> None:
        self.likes += 1

    def commented(self, _call: Call, _body: bytes) -> None:
        self.comments += 1


@dataclass
class Block:
    """ping, like, ping, comment, ping of one version."""

    version: str
    phases: dict[str, Phase] = field(default_factory=dict)

    def bare(self, label: str) -> float:
        names = list(self.phases)
        i = names.index(label)
        around = [self.phases[n].rate for n in (names[i - 1], names[i + 1])]
        return sum(around) / len(around)


@dataclass
class Checks:
    likes: int = 0
    comments: int = 0
    like_count: int = -1
    likes_received: int = -1
    comment_count: int = -1
    public_comments: int = -1
    notifications: int = -1
    outbox: int = -1  # pending effects left (after only)


@dataclass
class BackendRun:
    backend: str
    deployments: dict[str, Deployment] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)
    checks: dict[str, Checks] = field(default_factory=dict)
    probe: dict[str, dict[str, Any]] = field(default_factory=dict)
    dispatcher: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def of(self, version: str) -> list[Block]:
        return [b for b in self.blocks if b.version == version]

    def ratio(self, version: str, label: str) -> float:
        ratios = [b.phases[label].rate / b.bare(label) for b in self.of(version)]
        return sum(ratios) / len(ratios) if ratios else float("nan")


def _merged(blocks: list[Block], label: str) -> tuple[float, float, float, int, int]:
    """Rate (all requests over all seconds), p50, p99, requests, errors of one phase kind."""
    phases = [b.phases[label] for b in blocks]
    ok = sum(p.ok for p in phases)
    seconds = sum(p.seconds for p in phases)
    latencies = [x for p in phases for x in p.latencies]
    return (
        ok / seconds if seconds else float("nan"),
        percentile(latencies, 50),
        percentile(latencies, 99),
        ok,
        sum(p.errors for p in phases),
    )


def _cpu_per_request(blocks: list[Block], label: str) -> float:
    phases = [b.phases[label] for b in blocks]
    if any(p.server_cpu is None for p in phases):
        return float("nan")
    ok = sum(p.ok for p in phases)
    return sum(p.server_cpu or 0.0 for p in phases) / ok if ok else float("nan")


def _drive_block(
    ctx: Context, run: BackendRun, version: str, server: Server, actions: Actions, scale: Scale
) -> None:
    db_cpu = _pg.cpu_seconds if run.backend == "postgresql" else None
    block = Block(version)
    steps: list[tuple[str, Any, Any, float]] = [
        ("ping 1", ping, None, scale.ping_seconds),
        ("like", actions.like, actions.liked, scale.seconds),
        ("ping 2", ping, None, scale.ping_seconds),
        ("comment", actions.comment, actions.commented, scale.seconds),
        ("ping 3", ping, None, scale.ping_seconds),
    ]
    for label, make, on_ok, seconds in steps:
        p = drive(server, f"{version} {label}", make, clients=CLIENTS, seconds=seconds,
                  on_ok=on_ok, db_cpu=db_cpu)  # fmt: skip
        block.phases[label] = p
        ctx.log(
            f"  {version:6} {label:8} {fmt_rate(p.rate):>7} req/s  p50 {fmt_ms(p.p50)} ms  "
            f"p99 {fmt_ms(p.p99)} ms  errors {p.errors} {dict(p.error_kinds.most_common(3))}"
        )
    run.blocks.append(block)


def _warm_up(server: Server, actions: Actions) -> None:
    drive(server, "warm-up", ping, clients=CLIENTS, seconds=1)
    drive(server, "warm-up", actions.like, clients=CLIENTS, seconds=1, on_ok=actions.liked)
    drive(server, "warm-up", actions.comment, clients=CLIENTS, seconds=1,
          on_ok=actions.commented)  # fmt: skip


@contextmanager
def _deployments(ctx: Context, backend: str, srcs: dict[str, Path]) -> Iterator[BackendRun]:
    run = BackendRun(backend)
    with ExitStack() as stack:
        for version in VERSIONS:
            env = {"PYTHONPATH": str(srcs[version])}
            if backend == "postgresql":
                urls = stack.enter_context(
                    _pg.databases(f"reelm_bench_effects_{version}", ["global", *REGIONS])
                )
                env["REELM_GLOBAL_DATABASE_URL"] = urls["global"]
                env["REELM_REGION_DATABASE_URLS"] = json.dumps({r: urls[r] for r in REGIONS})
            run.deployments[version] = Deployment(
                backend, version, ctx.subdir(f"{backend}-{version}"), env, srcs[version]
            )
        yield run


def measure(ctx: Context, backend: str, srcs: dict[str, Path], scale: Scale) -> BackendRun:
    with _deployments(ctx, backend, srcs) as run:
        for version, d in run.deployments.items():
            full_env = reelm_env(REELM_DATA_DIR=str(d.data_dir), **d.env)
            where = imported_from(ctx.python, full_env)
            if Path(where) != (d.src / "reelm").resolve():
                raise RuntimeError(f"{version} imports reelm from {where}, not {d.src}")
            init(d)
            seed(d, scale)
            ctx.log(f"{backend} {version}: {len(d.users)} users, {len(d.videos)} videos, seeded "
                    f"in {d.seed_seconds:.0f} s (reelm from {where})")  # fmt: skip
        actions = {v: Actions(d) for v, d in run.deployments.items()}
        with ExitStack() as stack:
            servers = {
                v: stack.enter_context(serve(ctx.python, d.data_dir, d.env))
                for v, d in run.deployments.items()
            }
            for v in VERSIONS:
                _warm_up(servers[v], actions[v])
            order = [v for r in range(scale.rounds) for v in (VERSIONS if r % 2 == 0 else
                                                                   VERSIONS[::-1])]  # fmt: skip
            for v in order:
                _drive_block(ctx, run, v, servers[v], actions[v], scale)
        for v, d in run.deployments.items():
            run.checks[v] = _count(d, actions[v])
            ctx.log(f"  {v} checks {run.checks[v]}")
        probes: dict[str, list[dict[str, Any]]] = {v: [] for v in VERSIONS}
        for v in (*VERSIONS, *VERSIONS[::-1]):  # ABBA, as the HTTP blocks
            probes[v].append(_probe(ctx, run.deployments[v], actions[v], scale))
        for v in VERSIONS:
            run.probe[v] = _mean_probe(probes[v])
            ctx.log(f"  {v} probe {json.dumps(_probe_summary(run.probe[v]))}")
            if actions[v].exhausted:
                run.failures.append(f"{backend} {v}: ran out of fresh (user, video) pairs")
        run.dispatcher = dispatcher(ctx, run.deployments["after"], scale)
    return run


def _count(d: Deployment, actions: Actions) -> Checks:
    """What the databases hold after the HTTP phases (before the probe adds more)."""
    from sqlalchemy import func, select

    from reelm.effects.service import dispatch_all, pending_count
    from reelm.media.models import PublishedVideo
    from reelm.residency.service import open_platform
    from reelm.social.models import Notification, PublicComment, PublicCounts

    platform = open_platform(d.settings())
    try:
        c = Checks(likes=actions.likes, comments=actions.comments)
        with platform.global_store.session() as g:
            c.like_count = int(g.scalar(select(func.sum(PublishedVideo.like_count))) or 0)
            c.comment_count = int(g.scalar(select(func.sum(PublishedVideo.comment_count))) or 0)
            c.likes_received = int(g.scalar(select(func.sum(PublicCounts.likes_received))) or 0)
            c.public_comments = int(g.scalar(select(func.count(PublicComment.id))) or 0)
        c.notifications = 0
        for store in platform.regions.values():
            with store.session() as s:
                c.notifications += int(s.scalar(select(func.count(Notification.id))) or 0)
        if d.version == "after":
            # the servers run without region workers: do their next pass (it crosses off the
            # effects the requests applied; nothing may be left)
            for r in REGIONS:
                dispatch_all(platform, r, due_only=False)
            c.outbox = sum(pending_count(platform, r) for r in REGIONS)
        return c
    finally:
        platform.close()


def _check(run: BackendRun) -> list[str]:
    out = list(run.failures)
    label = _label(run.backend)
    for b in run.blocks:
        for name, p in b.phases.items():
            if p.errors:
                kinds = ", ".join(f"{k} ×{n}" for k, n in p.error_kinds.most_common(4))
                out.append(f"{label} {b.version} {name}: {p.errors} errors ({kinds})")
            if not p.ok:
                out.append(f"{label} {b.version} {name}: no successful request")
    for v, c in run.checks.items():
        want = {
            "like_count": c.likes, "likes_received": c.likes, "comment_count": c.comments,
            "public_comments": c.comments, "notifications": c.likes + c.comments,
        }  # fmt: skip
        for name, n in want.items():
            if getattr(c, name) != n:
                out.append(f"{label} {v}: {name} is {getattr(c, name)}, the API answered {n}")
        if v == "after" and c.outbox != 0:
            out.append(f"{label} after: {c.outbox} effects left in the outbox")
    for v, p in run.probe.items():
        if "error" in p:
            out.append(f"{label} {v}: the in-process probe failed: {p['error']}")
        elif p.get("outbox_left"):
            out.append(f"{label} {v}: {p['outbox_left']} effects left after the probe")
    dsp = run.dispatcher
    out += [f"{label} dispatcher: {f}" for f in dsp.get("failures", [])]
    for v in VERSIONS:
        if not run.of(v):
            out.append(f"{label} {v}: not measured")
    return out


# ---- where the time goes ---------------------------------------------------------------------


def _probe(ctx: Context, d: Deployment, actions: Actions, scale: Scale) -> dict[str, Any]:
    """Run `bench/_effects_probe.py` with the deployment's own code on fresh pairs."""
    n = scale.probe
    try:
        likes = [[u.token, v.id] for u, v in (actions.next_like() for _ in range(n))]
    except StopIteration:
        return {"error": "no fresh pairs left"}
    comments = [[u.token, v.id] for u, v in (next(actions.comment_pairs) for _ in range(n // 2))]
    job = d.data_dir / "probe.json"
    out = d.data_dir / "probe-out.json"
    job.write_text(json.dumps({"likes": likes, "comments": comments, "out": str(out),
                               "split": d.version == "after"}))  # fmt: skip
    env = reelm_env(REELM_DATA_DIR=str(d.data_dir), **d.env)
    done = subprocess.run(
        [ctx.python, str(BENCH / "_effects_probe.py"), str(job)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "crashed"}
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _mean_probe(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of the probe's runs of one version, measure by measure (statements and commits
    are the same in every run; times vary with the machine's load)."""
    failed = [r for r in runs if "error" in r]
    if failed:
        return failed[0]
    out: dict[str, Any] = {"outbox_left": max(r.get("outbox_left", 0) for r in runs)}
    for key, first in runs[0].items():
        if not (isinstance(first, dict) and "wall_ms" in first):
            continue
        m = [r[key] for r in runs]
        out[key] = {
            "n": sum(x["n"] for x in m),
            "wall_ms": sum(x["wall_ms"] for x in m) / len(m),
            "cpu_ms": sum(x["cpu_ms"] for x in m) / len(m),
            "statements": first["statements"],
            "commits": first["commits"],
        }
    return out


def _probe_summary(p: dict[str, Any]) -> dict[str, Any]:
    return {
        k: {"ms": round(v["wall_ms"], 2), "stmts": round(sum(v["statements"].values()), 1)}
        for k, v in p.items()
        if isinstance(v, dict) and "wall_ms" in v
    }


# ---- the dispatcher --------------------------------------------------------------------------


def _workload(d: Deployment, n_effects: int, origin: str = "us") -> tuple[list[Any], Counter]:
    """Actions of `origin`'s users on the other region's videos, three likes to a comment, until
    `n_effects` effects: [(actor, [records])], and what they add up to."""
    from reelm.db import new_id, utcnow
    from reelm.social.schemas import (
        CountChange,
        CounterKind,
        NotificationRecord,
        PublicCommentRecord,
    )

    actors = [u for u in d.users if u.region == origin]
    videos = [v for v in d.videos if v.creator.region != origin]
    out: list[tuple[User, list[Any]]] = []
    total: Counter = Counter()
    now = utcnow()
    for k in itertools.count():
        if total["effects"] >= n_effects:
            break
        actor, video = actors[k % len(actors)], videos[(k // len(actors) + k) % len(videos)]
        if k % 4 == 3:
            cid = new_id()
            text = f"nice one {k}"
            records: list[Any] = [
                PublicCommentRecord(id=cid, video_id=video.id, author_id=actor.id,
                                    author_handle=actor.handle, parent_id=None, text=text,
                                    created_at=now),
                NotificationRecord(recipient_id=video.creator.id, kind="comment",
                                   actor_id=actor.id, actor_handle=actor.handle,
                                   video_id=video.id, comment_id=cid, snippet=text),
            ]  # fmt: skip
            total["comments"] += 1
        else:
            records = [
                CountChange(target="video", id=video.id, field=CounterKind.LIKE_COUNT, delta=1),
                CountChange(target="user", id=video.creator.id,
                            field=CounterKind.LIKES_RECEIVED, delta=1),
                NotificationRecord(recipient_id=video.creator.id, kind="like", actor_id=actor.id,
                                   actor_handle=actor.handle, video_id=video.id),
            ]  # fmt: skip
            total["likes"] += 1
        out.append((actor, records))
        total["effects"] += len(records)
    total["catalog"] = total["likes"] * 2 + total["comments"]
    total["notifications"] = total["likes"] + total["comments"]
    return out, total



def _state(platform: Any) -> Counter:
    from sqlalchemy import func, select

    from reelm.effects.models import AppliedEffect, Effect, ReceivedEffect
    from reelm.media.models import PublishedVideo
    from reelm.social.models import Notification, PublicComment, PublicCounts

    c: Counter = Counter()
    with platform.global_store.session() as g:
        c["like_count"] = int(g.scalar(select(func.sum(PublishedVideo.like_count))) or 0)
        c["comment_count"] = int(g.scalar(select(func.sum(PublishedVideo.comment_count))) or 0)
        c["likes_received"] = int(g.scalar(select(func.sum(PublicCounts.likes_received))) or 0)
        c["public_comments"] = int(g.scalar(select(func.count(PublicComment.id))) or 0)
        c["applied_keys"] = int(g.scalar(select(func.count(AppliedEffect.id))) or 0)
    for store in platform.regions.values():
        with store.session() as s:
            c["notifications"] += int(s.scalar(select(func.count(Notification.id))) or 0)
            c["received_keys"] += int(s.scalar(select(func.count(ReceivedEffect.id))) or 0)
            c["outbox"] += int(s.scalar(select(func.count(Effect.id))) or 0)
    return c


def _expected(total: Counter, *, keys: bool) -> dict[str, int]:
    return {
        "like_count": total["likes"],
        "likes_received": total["likes"],
        "comment_count": total["comments"],
        "public_comments": total["comments"],
        "notifications": total["notifications"],
        "applied_keys": total["catalog"] if keys else 0,
        "received_keys": total["notifications"] if keys else 0,
    }


def _diff(before: Counter, after: Counter, want: dict[str, int], what: str) -> list[str]:
    return [
        f"{what}: {k} moved by {after[k] - before[k]:,}, {n:,} emitted"
        for k, n in want.items()
        if after[k] - before[k] != n
    ]


@contextmanager
def _counting(platform: Any) -> Iterator[Counter]:
    """SQL statements run on any of the platform's databases while the block runs."""
    from sqlalchemy import event

    seen: Counter = Counter()

    def on_execute(*_a: Any, **_k: Any) -> None:
        seen["statements"] += 1

    engines = [platform.global_store.engine, *(r._engine for r in platform.regions.values())]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", on_execute)


@dataclass
class Timed:
    """Wall seconds, CPU seconds (this process, and PostgreSQL's) and statements of a step."""

    effects: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    db_cpu: float | None = None
    statements: int = 0

    @property
    def rate(self) -> float:
        return self.effects / self.wall if self.wall else float("nan")

    @property
    def cpu_per_effect(self) -> float:
        return (self.cpu + (self.db_cpu or 0.0)) / self.effects if self.effects else float("nan")


@contextmanager
def _timed(platform: Any, backend: str, effects: int) -> Iterator[Timed]:
    t = Timed(effects)
    db0 = _pg.cpu_seconds() if backend == "postgresql" else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with _counting(platform) as seen:
        yield t
    t.wall, t.cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    db1 = _pg.cpu_seconds() if backend == "postgresql" else None
    t.db_cpu = db1 - db0 if db0 is not None and db1 is not None else None
    t.statements = seen["statements"]


def _raw(platform: Any, work: list[Any], homes: dict[str, str]) -> float:
    """The baseline: the same records through `egress()` in the dispatcher's transactions (per
    batch of 500 effects: one in the catalog, one per recipients' region), no keys, no outbox."""
    from reelm.effects.service import BATCH
    from reelm.residency.egress import destination, egress

    flat = [r for _, records in work for r in records]
    t0 = time.perf_counter()
    for i in range(0, len(flat), BATCH):
        catalog: list[Any] = []
        regions: dict[str, list[Any]] = {}
        for r in flat[i : i + BATCH]:
            field_name = destination(r).recipient
            if field_name is None:
                catalog.append(r)
            else:
                regions.setdefault(homes[getattr(r, field_name)], []).append(r)
        with platform.global_store.transaction() as g:
            for r in catalog:
                egress(g, r)
        for region, records in regions.items():
            with platform.region(region).transaction() as s:
                for r in records:
                    egress(s, r)
    return time.perf_counter() - t0


def _fill(platform: Any, work: list[Any], region: str, per_transaction: int = 100) -> float:
    from reelm.effects.outbox import Outbox

    t0 = time.perf_counter()
    for i in range(0, len(work), per_transaction):
        with platform.region(region).transaction() as s:
            for actor, records in work[i : i + per_transaction]:
                outbox = Outbox(s, actor.id)
                for r in records:
                    outbox.emit(r)
    return time.perf_counter() - t0


def dispatcher(ctx: Context, d: Deployment, scale: Scale) -> dict[str, Any]:
    from reelm.effects.service import dispatch_all, pending_count
    from reelm.residency.service import open_platform

    out: dict[str, Any] = {"failures": [], "raw": []}
    homes = {u.id: u.region for u in d.users}
    platform = open_platform(d.settings())
    try:
        for r in REGIONS:  # the HTTP phases' effects, crossed off as a worker would
            dispatch_all(platform, r, due_only=False)
        for step in ("raw", "dispatch", "raw"):
            work, total = _workload(d, scale.effects)
            n = total["effects"]
            out["effects"], out["totals"] = n, dict(total)
            if step == "raw":
                s0 = _state(platform)
                with _timed(platform, d.backend, n) as t:
                    _raw(platform, work, homes)
                out["raw"].append(t)
                out["failures"] += _diff(s0, _state(platform), _expected(total, keys=False),
                                         "baseline")  # fmt: skip
                ctx.log(f"  dispatcher baseline (egress direct): {n:,} effects in {t.wall:.1f} s, "
                        f"{t.statements / n:.2f} statements per effect")  # fmt: skip
                continue
            with _timed(platform, d.backend, n) as fill:
                _fill(platform, work, "us")
            out["fill"] = fill
            if pending_count(platform, "us") != n:
                out["failures"].append(
                    f"{pending_count(platform, 'us'):,} pending after emitting {n:,}"
                )
            s0 = _state(platform)
            with _timed(platform, d.backend, n) as t:
                report = dispatch_all(platform, "us")
            out["dispatch"] = t
            s1 = _state(platform)
            out["applied"] = report.applied
            out["left"] = s1["outbox"]
            out["failures"] += _diff(s0, s1, _expected(total, keys=True), "dispatch")
            if report.applied != n:
                out["failures"].append(f"applied {report.applied:,} of {n:,}")
            if s1["outbox"]:
                out["failures"].append(f"{s1['outbox']:,} effects left in the outbox")
            if report.errors:
                out["failures"].append(f"errors: {report.errors[:3]}")
            ctx.log(f"  dispatcher: emitted {n:,} in {fill.wall:.1f} s, dispatch_all "
                    f"{t.wall:.1f} s ({t.statements / n:.2f} statements per effect), applied "
                    f"{report.applied:,}, left {s1['outbox']}")  # fmt: skip
    finally:
        platform.close()
    return out


DISPATCH = """What the dispatcher adds to writing the same records: per pass of 500 effects
it reads them back from the outbox and validates each payload, looks up the recipients' homes
(one Directory query per pass), reads the applied keys of the batch and inserts one key per
effect (in the catalog, and in the recipients' region, whose residency check reads the Directory
once per transaction), and deletes the batch from the outbox (a `SELECT DISTINCT owner_id` and
a Directory read for the residency check, then the DELETE), in a transaction of its own."""

COST = """**Where the outbox's cost goes.** The probe's statement counts show it. Before, a like
ran 10 SQL statements on SQLite in 4 commits: the like; each of the two counters in its own
catalog transaction; the notification in the creator's region. The first outbox version ran 21
in 4 commits and measured 0.37-0.65 of before's rate. Now a like runs 13 on SQLite (14 on
PostgreSQL) in 3 commits: the action's own transaction (the like and its outbox rows, one
residency check and one write fence for the whole transaction), then the dispatch right after
it, which works from the records in memory: in the catalog the applied keys are inserted
without a look first (a duplicate fails the insert and the group is applied again, looking),
the counters in one statement each (a user's with an upsert); in the recipient's region, whose
home the action already read, the received key and the notification. The applied rows stay in
the outbox for the region worker's next pass, which finds their keys and crosses them off many
at a time (the servers here run without workers, so the checks run that pass before counting:
nothing may be left). What remains is the price of exactly once: one outbox row and one key per
effect."""


# ---- report ----------------------------------------------------------------------------------


def _label(backend: str) -> str:
    return "SQLite" if backend == "sqlite" else "PostgreSQL"


def run(ctx: Context) -> Outcome:
    scale = QUICK if ctx.quick else FULL
    srcs = {"before": unpack_before(ctx), "after": REPO / "src"}
    runs = [measure(ctx, backend, srcs, scale) for backend in BACKENDS]
    return report(runs, scale)


def report(runs: list[BackendRun], scale: Scale) -> Outcome:
    failures: list[str] = []
    head: list[list[str]] = []
    detail: list[list[str]] = []
    probe_rows: list[list[str]] = []
    dispatch_rows: list[list[str]] = []
    for r in runs:
        failures += _check(r)
        lab = _label(r.backend)
        for action in ("like", "comment"):
            ratios = {v: r.ratio(v, action) for v in VERSIONS}
            change = ratios["after"] / ratios["before"]
            row = [lab, action]
            for v in VERSIONS:
                rate, p50, p99, _, _ = _merged(r.of(v), action)
                row += [fmt_rate(rate), fmt_ms(p50), fmt_ms(p99), fmt_ratio(ratios[v])]
            met = change >= TARGET
            cpu = " → ".join(fmt_ms(_cpu_per_request(r.of(v), action)) for v in VERSIONS)
            head.append([*row, f"{change:.3f}", "yes" if met else "**no**", cpu])
            if not met:
                failures.append(
                    f"{lab} {action}s: after ÷ before = {change:.3f} of the bare-endpoint ratio "
                    f"(target ≥ {TARGET:.2f})"
                )
        for i, b in enumerate(r.blocks):
            for name, p in b.phases.items():
                detail.append(
                    [lab, str(i + 1), b.version, name, fmt_rate(p.rate),
                     fmt_ratio(p.rate / b.bare(name)) if not name.startswith("ping") else "",
                     fmt_ms(p.p50), fmt_ms(p.p99), f"{p.ok:,}", str(p.errors),
                     fmt_ms(p.per_request(p.server_cpu)),
                     fmt_ms(p.per_request(p.db_cpu)) if r.backend == "postgresql" else "–"]
                )  # fmt: skip
        for v in VERSIONS:
            p = r.probe.get(v, {})
            for key in ("like", "like commit only", "like dispatch", "comment",
                        "comment commit only", "comment dispatch"):  # fmt: skip
                m = p.get(key)
                if not isinstance(m, dict):
                    continue
                st, cm = m["statements"], m["commits"]
                probe_rows.append(
                    [lab, v, key, f"{m['wall_ms']:.2f}", f"{m['cpu_ms']:.2f}",
                     f"{sum(st.values()):.1f}", f"{sum(cm.values()):.1f}",
                     " / ".join(f"{st.get(k, 0):.1f}" for k in ("catalog", "us", "sg")),
                     " / ".join(f"{cm.get(k, 0):.1f}" for k in ("catalog", "us", "sg"))]
                )  # fmt: skip
        dsp = r.dispatcher
        if "dispatch" in dsp:
            n, t, raws = dsp["effects"], dsp["dispatch"], dsp["raw"]
            raw_rate = sum(x.rate for x in raws) / len(raws)
            raw_cpu = sum(x.cpu_per_effect for x in raws) / len(raws)
            raw_st = sum(x.statements for x in raws) / len(raws) / n
            dispatch_rows.append(
                [lab, f"{n:,}", f"{dsp['fill'].rate:,.0f}", f"{t.rate:,.0f}",
                 " / ".join(f"{x.rate:,.0f}" for x in raws), fmt_ratio(t.rate / raw_rate),
                 f"{t.cpu_per_effect * 1000:.2f} / {raw_cpu * 1000:.2f}",
                 fmt_ratio(raw_cpu / t.cpu_per_effect),
                 f"{t.statements / n:.2f} / {raw_st:.2f}",
                 f"{dsp['fill'].statements / n:.2f}", f"{dsp['applied']:,}", str(dsp["left"])]
            )  # fmt: skip
    seed_line = "; ".join(
        f"{_label(r.backend)} {v} {len(d.users)} users, {len(d.videos)} videos, "
        f"{d.seed_seconds:.0f} s"
        for r in runs
        for v, d in r.deployments.items()
    )
    checks = "\n".join(
        f"- {_label(r.backend)} {v}: {c.likes:,} likes and {c.comments:,} comments answered "
        f"with success; catalog like counts {c.like_count:,}, likes received {c.likes_received:,}, "
        f"comment counts {c.comment_count:,}, published comments {c.public_comments:,}; "
        f"notifications {c.notifications:,}"
        + (f"; outbox left {c.outbox}" if v == "after" else "")
        for r in runs
        for v, c in r.checks.items()
    )
    pg = _pg.version() if any(r.backend == "postgresql" for r in runs) else "PostgreSQL"
    md = f"""
**Likes/s and comments/s over HTTP, before (`{BEFORE}`, separate transactions after the commit)
and after (the outbox, this checkout), each divided by the bare endpoint (`GET /api/v1/ping`) of
the same server right before and after it.** {CLIENTS} clients, {scale.seconds:.0f} s per phase,
{scale.rounds} blocks per version in ABBA order; rates and percentiles over all blocks of a
version, "÷ bare" the mean of the blocks' ratios. Target: after ÷ before ≥ {TARGET:.2f} (the
outbox costs at most 10% of today's requests/s).

{md_table(
        ["backend", "action", "before req/s", "p50 ms", "p99 ms", "÷ bare", "after req/s",
         "p50 ms", "p99 ms", "÷ bare", "after ÷ before", "target met",
         "server CPU ms/req before → after"],
        head, align="llrrrrrrrrrrr",
    )}

**Dispatcher throughput** (in-process, region us's outbox filled with {scale.effects:,}
effects of the like/comment mix and not dispatched, then `dispatch_all`; the baseline writes
identical workloads with `egress()` directly in the same transactions, no outbox, no keys, run
before and after the dispatch; effects/s over wall-clock time, the baseline's the mean of its
two runs; CPU is this process's plus, on PostgreSQL, the server's; statements on all three
databases):

{md_table(
        ["backend", "effects", "emitted into the outbox /s", "dispatch_all /s",
         "baseline /s (before / after)", "÷ baseline", "CPU ms/effect dispatch / baseline",
         "÷ baseline (CPU)", "statements/effect dispatch / baseline",
         "statements/effect emitting", "applied", "left in outbox"],
        dispatch_rows, align="lrrrrrrrrrrr",
    )}

{DISPATCH}

**Where a request's time goes** (`bench/_effects_probe.py`: in-process calls of the service,
one at a time, no HTTP, sessions resolved first; ms per call and SQL statements and commits per
call, split per database catalog / us / sg — the Directory's reads count under catalog, its
database; "commit only" is the action's transaction with the dispatch held back, "dispatch" the
inline dispatch of its effects, as `action` runs it; each version probed twice in ABBA order
with {scale.probe} likes and {scale.probe // 2} comments a time, the times the mean):

{md_table(
        ["backend", "version", "call", "wall ms", "CPU ms", "statements", "commits",
         "statements catalog / us / sg", "commits catalog / us / sg"],
        probe_rows, align="lllrrrrrr",
    )}

{COST}

**Every phase, in the order run** (CPU per successful request; PostgreSQL CPU of all its
processes):

{md_table(
        ["backend", "block", "version", "phase", "req/s", "÷ bare", "p50 ms", "p99 ms",
         "requests", "errors", "server CPU ms/req", "PostgreSQL CPU ms/req"],
        detail, align="lrllrrrrrrrr",
    )}

How: for each backend, a deployment per version, each initialised by its own `reelm init` and
seeded with {scale.users_per_region} users per region (us, sg) and
{scale.creators_per_region * scale.videos_per_creator} videos per region ({seed_line}). "before"
is `git archive {BEFORE} src` served with PYTHONPATH on it (checked: its server imports reelm
from there). Both servers are `python -m uvicorn --factory reelm.web.app:create_app --workers 1`
on 127.0.0.1, as in the accounts benchmark; the load generator is `bench/_http.py`. Each like is
a new (user, video) pair and all actions cross regions, so each one writes a notification in
the other region. PostgreSQL: {pg}, started by `pgserver` with default settings, fresh
databases. Reelm, the load generator and PostgreSQL share the machine's {nproc()} cores.

Checks after the HTTP phases (the database compared with what the API answered):

{checks}
"""
    return Outcome(md, failures)
