"""For You and Following under load, against the bare endpoint of the same server.

For each backend (SQLite files, a real PostgreSQL) a fresh deployment is initialised (`reelm
init`) and seeded directly with bulk writes (executemany on SQLite, COPY on PostgreSQL, through
`bench/scan.py`'s generic writer; every protected row in its owner's home region):

- 100,000 users alternating between regions us and sg (Directory and accounts); 10% of them are
  creators, whose 50,000 published videos (PublicCatalog, 95% public and 5% followers-only, two
  hashtags each from 16 topics × 4 sub-topics, 80% with one of 300 sounds, published over 30
  days) are drawn with a Zipf law over creators;
- 2,000,000 interactions, each in its actor's region: completed and partial watch events, likes,
  saves, shares and follows, drawn per user from two favourite topics (70%) and popularity (30%)
  over the last 14 days, plus a few blocks, mutes and "not interested"; the catalogue's public
  counts are the sums of these.

Then each region's For You model is trained (`train_region`, what `reelm feed train` and the
periodic job run), 4,000 viewers (2,000 per region, all with some history, most following
someone) get real session tokens (`<region>.<random>`, stored hashed in their region as a login
does), and reelm is served by uvicorn in its own process. From this process, on loopback, 32
keep-alive clients drive, in order: `GET /api/v1/ping`, `GET /api/v1/feed/for-you`, ping, `GET
/api/v1/feed/following`, ping. A For You client scrolls like a person: the first page of a viewer
(no cursor, a new session), then the next pages through `next_cursor` (5 pages of 10 in all), then
the next viewer; Following clients read two pages per viewer. Each endpoint's rate is compared
with the mean of the ping phases right before and after it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench import _pg
from bench._common import (
    Context,
    Outcome,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    md_table,
    reelm_command,
    reelm_env,
)
from bench._http import AuthCall, Call, Phase, Server, drive, ping, serve

TITLE = "Feed: For You and Following under load, against the bare endpoint"

CLIENTS = 32
REGIONS = ("us", "sg")
TOPICS, SUBTOPICS, SOUNDS = 16, 4, 300
PAGES_PER_VIEWER = 5
VIEWERS_PER_REGION = 2000
P99_TARGET = 0.150  # seconds
RATIO_TARGET = 0.30
BACKENDS = ("sqlite", "postgresql")
PG_PREFIX = "reelm_bench_feed"


@dataclass
class Scale:
    users: int
    videos: int
    interactions: int
    seconds: float
    ping_seconds: float


FULL = Scale(100_000, 50_000, 2_000_000, 60.0, 15.0)
QUICK = Scale(10_000, 5_000, 200_000, 5.0, 3.0)


# ---- seeding -------------------------------------------------------------------------------


@dataclass
class Seeded:
    users: int = 0
    videos: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    viewers: list[tuple[str, str, bool]] = field(default_factory=list)  # token, region, follows
    seconds: float = 0.0

    @property
    def interactions(self) -> int:
        return sum(
            n
            for t, n in self.rows.items()
            if t in ("watch_events", "likes", "saves", "shares", "follows", "blocks", "mutes")
            or t == "not_interested"
        )


def _hex_ids(rng: np.random.Generator, n: int) -> list[str]:
    return [f"{x:032x}" for x in (int.from_bytes(rng.bytes(16), "big") for _ in range(n))]


def _ts(backend: str, dt: datetime) -> Any:
    """A timestamp as the writer's backend wants it (SQLAlchemy's SQLite text format there)."""
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f") if backend == "sqlite" else dt


def seed(ctx: Context, platform: Any, scale: Scale, seed_value: int = 7) -> Seeded:
    """Users, videos and interactions straight into the databases (see the module docstring)."""
    import reelm.all_models  # noqa: F401  (every table in the metadata)
    from bench.scan import Writer, layout, rows
    from reelm.accounts.security import new_session_token, token_hash
    from reelm.db import RegionModel
    from reelm.media.models import PublishedVideo, VideoTag
    from reelm.residency.models import DirectoryEntry

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed_value)
    now = datetime.now(UTC)
    out = Seeded(users=scale.users, videos=scale.videos)

    # users
    user_ids = _hex_ids(rng, scale.users)
    user_region = np.arange(scale.users) % len(REGIONS)
    g = Writer(platform.global_store.engine)
    gb = g.backend
    directory = layout(
        DirectoryEntry.__table__,
        ["user_id", "handle", "handle_key", "home_region", "state", "created_at"],
        g.process,
    )
    created = _ts(gb, now - timedelta(days=60))
    out.rows["directory"] = g.write(
        directory,
        rows(
            directory,
            (
                {"user_id": u, "handle": f"u{i}", "handle_key": f"u{i}",
                 "home_region": REGIONS[user_region[i]], "state": "active", "created_at": created}
                for i, u in enumerate(user_ids)
            ),
        ),
    )  # fmt: skip
    ctx.log(f"  {scale.users:,} users in the Directory")

    # videos
    n_creators = scale.users // 10
    creators = rng.choice(scale.users, n_creators, replace=False)
    zipf = 1.0 / np.arange(1, n_creators + 1) ** 0.9
    video_creator = creators[rng.choice(n_creators, scale.videos, p=zipf / zipf.sum())]
    creator_topic = {int(c): int(rng.integers(0, TOPICS)) for c in creators}
    video_topic = np.array(
        [
            creator_topic[int(c)] if r < 0.85 else int(t)
            for c, r, t in zip(
                video_creator,
                rng.random(scale.videos),
                rng.integers(0, TOPICS, scale.videos),
                strict=True,
            )
        ]
    )
    video_sub = rng.integers(0, SUBTOPICS, scale.videos)
    video_sound = np.where(
        rng.random(scale.videos) < 0.8, rng.integers(0, SOUNDS, scale.videos), -1
    )
    followers_only = rng.random(scale.videos) < 0.05
    published = [now - timedelta(days=float(d)) for d in rng.uniform(0, 30, scale.videos)]
    virality = rng.lognormal(0, 1, scale.videos)
    video_ids = _hex_ids(rng, scale.videos)

    # interactions: per user, from two favourite topics (70%) and popularity (30%)
    per_user = rng.lognormal(0, 1, scale.users)
    per_user = np.maximum(1, np.round(per_user / per_user.sum() * scale.interactions)).astype(int)
    actor = np.repeat(np.arange(scale.users), per_user)
    n = len(actor)
    fav = rng.integers(0, TOPICS, (scale.users, 2))
    by_topic = [np.flatnonzero(video_topic == t) for t in range(TOPICS)]
    pop_p = virality / virality.sum()
    target = rng.choice(scale.videos, n, p=pop_p)
    on_topic = np.flatnonzero(rng.random(n) < 0.7)
    topics = fav[actor[on_topic], rng.integers(0, 2, len(on_topic))]
    for t in range(TOPICS):
        mine = on_topic[topics == t]
        if len(mine) and len(by_topic[t]):
            w = virality[by_topic[t]]
            target[mine] = by_topic[t][rng.choice(len(w), len(mine), p=w / w.sum())]
    kind = rng.choice(
        ["complete", "partial", "like", "save", "share", "follow", "block", "mute", "not"],
        n,
        p=[0.45, 0.15, 0.25, 0.04, 0.03, 0.075, 0.001, 0.002, 0.002],
    )
    age_s = rng.uniform(0, 14 * 86400, n)

    like_count = np.zeros(scale.videos, dtype=np.int64)
    share_count = np.zeros(scale.videos, dtype=np.int64)
    view_count = np.zeros(scale.videos, dtype=np.int64)

    for region_index, region in enumerate(REGIONS):
        store = platform.regions[region]
        w_ = Writer(store._engine)
        b = w_.backend
        here = user_region[actor] == region_index
        mine_users = np.flatnonzero(user_region == region_index)
        accounts = layout(RegionModel.metadata.tables["accounts"], ["id", "owner_id", "handle"],
                          w_.process)  # fmt: skip
        out.rows["accounts"] += w_.write(
            accounts,
            rows(
                accounts,
                ({"id": user_ids[u], "owner_id": user_ids[u], "handle": f"u{u}"}
                 for u in mine_users),
            ),
        )  # fmt: skip

        def pick(k: str, here: np.ndarray = here) -> np.ndarray:
            return np.flatnonzero(here & (kind == k))

        # watch events: completed and partial
        watch = np.concatenate([pick("complete"), pick("partial")])
        table = RegionModel.metadata.tables["watch_events"]
        lay = layout(table, ["owner_id", "video_id", "watched_ms", "completed", "created_at"],
                     w_.process)  # fmt: skip
        np.add.at(view_count, target[watch], 1)
        out.rows["watch_events"] += w_.write(
            lay,
            rows(
                lay,
                (
                    {"owner_id": user_ids[actor[i]], "video_id": video_ids[target[i]],
                     "watched_ms": 15000 if kind[i] == "complete" else 4000,
                     "completed": bool(kind[i] == "complete"),
                     "created_at": _ts(b, now - timedelta(seconds=float(age_s[i])))}
                    for i in watch
                ),
            ),
        )  # fmt: skip
        # likes, saves: one per (user, video)
        for k, name, counter in (("like", "likes", like_count), ("save", "saves", None)):
            idx = pick(k)
            _, first = np.unique(actor[idx] * scale.videos + target[idx], return_index=True)
            idx = idx[first]
            if counter is not None:
                np.add.at(counter, target[idx], 1)
            lay = layout(RegionModel.metadata.tables[name], ["owner_id", "video_id", "created_at"],
                         w_.process)  # fmt: skip
            out.rows[name] += w_.write(
                lay,
                rows(
                    lay,
                    ({"owner_id": user_ids[actor[i]], "video_id": video_ids[target[i]],
                      "created_at": _ts(b, now - timedelta(seconds=float(age_s[i])))}
                     for i in idx),
                ),
            )  # fmt: skip
        idx = pick("share")
        np.add.at(share_count, target[idx], 1)
        lay = layout(RegionModel.metadata.tables["shares"], ["owner_id", "video_id", "created_at"],
                     w_.process)  # fmt: skip
        out.rows["shares"] += w_.write(
            lay,
            rows(
                lay,
                ({"owner_id": user_ids[actor[i]], "video_id": video_ids[target[i]],
                  "created_at": _ts(b, now - timedelta(seconds=float(age_s[i])))} for i in idx),
            ),
        )  # fmt: skip
        # follows, blocks, mutes of the target video's creator; not interested in the video
        for k, name, col in (
            ("follow", "follows", "followee_id"),
            ("block", "blocks", "target_id"),
            ("mute", "mutes", "target_id"),
        ):
            idx = pick(k)
            who = video_creator[target[idx]]
            keep = who != actor[idx]
            idx, who = idx[keep], who[keep]
            _, first = np.unique(actor[idx] * scale.users + who, return_index=True)
            idx, who = idx[first], who[first]
            given = ["owner_id", col, "created_at"] + (["state"] if k == "follow" else [])
            lay = layout(RegionModel.metadata.tables[name], given, w_.process)
            out.rows[name] += w_.write(
                lay,
                rows(
                    lay,
                    (
                        {"owner_id": user_ids[actor[i]], col: user_ids[c],
                         "created_at": _ts(b, now - timedelta(seconds=float(age_s[i]))),
                         **({"state": "active"} if k == "follow" else {})}
                        for i, c in zip(idx, who, strict=True)
                    ),
                ),
            )  # fmt: skip
        idx = pick("not")
        _, first = np.unique(actor[idx] * scale.videos + target[idx], return_index=True)
        idx = idx[first]
        lay = layout(RegionModel.metadata.tables["not_interested"],
                     ["owner_id", "video_id", "created_at"], w_.process)  # fmt: skip
        out.rows["not_interested"] += w_.write(
            lay,
            rows(
                lay,
                ({"owner_id": user_ids[actor[i]], "video_id": video_ids[target[i]],
                  "created_at": _ts(b, now)} for i in idx),
            ),
        )  # fmt: skip

        # viewers with real session tokens: users with some history, most following someone
        history = np.bincount(actor[here], minlength=scale.users)
        follows = np.bincount(actor[np.flatnonzero(here & (kind == "follow"))],
                              minlength=scale.users)  # fmt: skip
        active = mine_users[history[mine_users] >= 3]
        chosen = rng.choice(active, min(VIEWERS_PER_REGION, len(active)), replace=False)
        sessions = layout(
            RegionModel.metadata.tables["sessions"],
            ["owner_id", "account_id", "token_hash", "created_at", "last_seen_at", "expires_at"],
            w_.process,
        )
        tokens = [(new_session_token(region), int(u)) for u in chosen]
        w_.write(
            sessions,
            rows(
                sessions,
                ({"owner_id": user_ids[u], "account_id": user_ids[u], "token_hash": token_hash(t),
                  "created_at": _ts(b, now), "last_seen_at": _ts(b, now),
                  "expires_at": _ts(b, now + timedelta(days=30))} for t, u in tokens),
            ),
        )  # fmt: skip
        out.viewers += [(t, region, bool(follows[u] > 0)) for t, u in tokens]
        ctx.log(f"  region {region}: {int(here.sum()):,} interactions, {len(tokens):,} sessions")

    # the catalogue: videos with the public sums of the interactions, and their hashtags
    v_lay = layout(
        PublishedVideo.__table__,
        ["id", "creator_id", "creator_handle", "region", "caption", "visibility", "sound_id",
         "duration_s", "width", "height", "published_at", "like_count", "comment_count",
         "share_count", "view_count"],
        g.process,
    )  # fmt: skip
    out.rows["catalog_videos"] = g.write(
        v_lay,
        rows(
            v_lay,
            (
                {"id": video_ids[j], "creator_id": user_ids[c], "creator_handle": f"u{c}",
                 "region": REGIONS[user_region[c]],
                 "caption": f"clip {j} #t{video_topic[j]} #t{video_topic[j]}s{video_sub[j]}",
                 "visibility": "followers" if followers_only[j] else "public",
                 "sound_id": f"snd{video_sound[j]}" if video_sound[j] >= 0 else None,
                 "duration_s": 15.0, "width": 720, "height": 1280,
                 "published_at": _ts(gb, published[j]), "like_count": int(like_count[j]),
                 "comment_count": 0, "share_count": int(share_count[j]),
                 "view_count": int(view_count[j])}
                for j, c in enumerate(video_creator)
            ),
        ),
    )  # fmt: skip
    t_lay = layout(VideoTag.__table__, ["video_id", "kind", "value"], g.process)
    out.rows["catalog_video_tags"] = g.write(
        t_lay,
        rows(
            t_lay,
            (
                {"video_id": video_ids[j], "kind": "hashtag", "value": tag}
                for j in range(scale.videos)
                for tag in (f"t{video_topic[j]}", f"t{video_topic[j]}s{video_sub[j]}")
            ),
        ),
    )
    _analyze(platform)
    out.seconds = time.perf_counter() - t0
    return out


def _analyze(platform: Any) -> None:
    """Fresh planner statistics after the bulk load (what autovacuum / a DBA would do)."""
    with platform.global_store.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    for store in platform.regions.values():
        with store.unchecked_connection(reason="bench: ANALYZE after the bulk load") as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()


# ---- driving -------------------------------------------------------------------------------


class Scrolling:
    """For You clients: each scrolls one viewer's feed for a few pages through `next_cursor`,
    then moves to the next viewer (viewers are dealt round-robin across clients)."""

    def __init__(self, viewers: list[tuple[str, str, bool]], clients: int, pages: int) -> None:
        self.viewers, self.clients, self.pages = viewers, clients, pages
        self.state = [
            {"viewer": i, "cursor": None, "page": 0, "waiting": False} for i in range(clients)
        ]
        self.items = 0
        self.empty = 0

    def call(self, client: int, _n: int) -> Call:
        st = self.state[client]
        if st["waiting"] or st["page"] >= self.pages or (st["page"] and st["cursor"] is None):
            st["viewer"] = (st["viewer"] + self.clients) % len(self.viewers)
            st["cursor"], st["page"] = None, 0
        token = self.viewers[st["viewer"]][0]
        path = "/api/v1/feed/for-you?limit=10"
        if st["cursor"]:
            path += f"&cursor={st['cursor']}"
        st["waiting"] = True
        return AuthCall("GET", path, tag=client, token=token, cookies=True)

    def ok(self, call: Call, body: bytes) -> None:
        st = self.state[call.tag]
        page = json.loads(body)
        st["cursor"], st["page"], st["waiting"] = page["next_cursor"], st["page"] + 1, False
        self.items += len(page["items"])
        self.empty += not page["items"]


def following_calls(viewers: list[tuple[str, str, bool]], clients: int) -> Any:
    followers = [v for v in viewers if v[2]] or viewers

    def call(client: int, n: int) -> Call:
        token = followers[((n // 2) * clients + client) % len(followers)][0]
        return AuthCall("GET", "/api/v1/feed/following?limit=10", token=token, cookies=True)

    return call


@dataclass
class Run:
    backend: str
    seeded: Seeded
    train: dict[str, dict[str, float]] = field(default_factory=dict)
    phases: dict[str, Phase] = field(default_factory=dict)
    items_per_page: float = 0.0
    empty_pages: int = 0
    breakdown: dict[str, float] = field(default_factory=dict)
    cached: bool = False  # the seeded data came from the DatasetCache

    def bare(self, label: str) -> float:
        names = list(self.phases)
        i = names.index(label)
        if label.startswith("ping"):
            around = [n for n in names if n.startswith("ping")]
        else:
            around = [n for n in (names[i - 1], names[i + 1]) if n.startswith("ping")]
        return sum(self.phases[n].rate for n in around) / len(around)


def measure(ctx: Context, backend: str, scale: Scale) -> Run:
    data_dir = ctx.subdir(backend)
    cache = DatasetCache(backend, scale)
    if backend == "sqlite":
        return _measure(ctx, backend, scale, data_dir, {}, cache)
    names = ["global", *REGIONS]
    templates = cache.pg_names(names) if cache.ready() else None
    with _pg.databases(PG_PREFIX, names, templates=templates) as urls:
        env = {
            "REELM_GLOBAL_DATABASE_URL": urls["global"],
            "REELM_REGION_DATABASE_URLS": json.dumps({r: urls[r] for r in REGIONS}),
        }
        return _measure(ctx, backend, scale, data_dir, env, cache)


class DatasetCache:
    """The seeded data of one backend and scale, kept between runs (seeding takes minutes):
    the data folder (keys, SQLite files) under REELM_BENCH_CACHE (default
    /tmp/reelm-bench-cache) and, on PostgreSQL, template databases in the benchmark's server.
    Keyed by the scale and both migration heads; older than MAX_AGE it is built again (the
    interactions are dated relative to the day they were seeded)."""

    MAX_AGE = 12 * 3600
    VERSION = 1  # bump when `seed` changes what it writes

    def __init__(self, backend: str, scale: Scale) -> None:
        import os

        from bench._common import REPO

        heads = [
            max(p.name.split("_")[0] for p in (REPO / "src/reelm/migrations" / kind / "versions")
                .glob("[gr]0*.py"))
            for kind in ("global", "region")
        ]  # fmt: skip
        self.key = f"v{self.VERSION}_{scale.users}_{scale.interactions}_{'_'.join(heads)}"
        root = Path(os.environ.get("REELM_BENCH_CACHE", "/tmp/reelm-bench-cache"))
        self.dir = root / f"feed-{backend}-{self.key}"
        self.backend = backend

    def pg_names(self, names: list[str]) -> dict[str, str]:
        return {n: f"reelm_bench_feedcache_{self.key}_{n}" for n in names}

    def ready(self) -> bool:
        done = self.dir / "seeded.json"
        if not done.exists() or time.time() - done.stat().st_mtime > self.MAX_AGE:
            return False
        if self.backend == "postgresql":
            return all(_pg.exists(db) for db in self.pg_names(["global", *REGIONS]).values())
        return True

    def load(self, data_dir: Path) -> Seeded:
        import shutil

        shutil.copytree(self.dir / "data", data_dir, dirs_exist_ok=True)
        raw = json.loads((self.dir / "seeded.json").read_text())
        return Seeded(
            users=raw["users"], videos=raw["videos"], rows=Counter(raw["rows"]),
            viewers=[tuple(v) for v in raw["viewers"]], seconds=raw["seconds"],
        )  # fmt: skip

    def store(self, data_dir: Path, seeded: Seeded) -> None:
        """Called with every connection to the seeded databases closed."""
        import shutil

        if self.dir.exists():
            shutil.rmtree(self.dir)
        shutil.copytree(data_dir, self.dir / "data")
        if self.backend == "postgresql":
            for name, template in self.pg_names(["global", *REGIONS]).items():
                _pg.copy_database(f"{PG_PREFIX}_{name}", template)
        (self.dir / "seeded.json").write_text(
            json.dumps({"users": seeded.users, "videos": seeded.videos, "rows": seeded.rows,
                        "viewers": seeded.viewers, "seconds": seeded.seconds})
        )  # fmt: skip


def _measure(
    ctx: Context, backend: str, scale: Scale, data_dir: Path, env: dict[str, str],
    cache: DatasetCache,
) -> Run:  # fmt: skip
    import subprocess

    from reelm.config import Settings
    from reelm.feed.model import train_region
    from reelm.feed.precompute import do_precompute_candidates
    from reelm.residency.service import open_platform

    cached = cache.ready()
    seeded = cache.load(data_dir) if cached else None
    full_env = reelm_env(REELM_DATA_DIR=str(data_dir), **env)
    init = subprocess.run(
        [*reelm_command(), "init"], env=full_env, capture_output=True, text=True, check=False
    )
    if init.returncode != 0:
        raise RuntimeError(f"reelm init failed:\n{init.stdout}\n{init.stderr}")
    kwargs: dict[str, Any] = {"data_dir": data_dir}
    if env:
        kwargs["global_database_url"] = env["REELM_GLOBAL_DATABASE_URL"]
        kwargs["region_database_urls"] = json.loads(env["REELM_REGION_DATABASE_URLS"])
    if seeded is None:
        ctx.log(f"{backend}: seeding {scale.users:,} users, {scale.videos:,} videos, "
                f"{scale.interactions:,} interactions")  # fmt: skip
        platform = open_platform(Settings(**kwargs))
        try:
            seeded = seed(ctx, platform, scale)
        finally:
            platform.close()
        cache.store(data_dir, seeded)
        ctx.log(f"  seeded in {seeded.seconds:.0f} s (kept in {cache.dir})")
    else:
        ctx.log(f"{backend}: the seeded data of {seeded.seconds:.0f} s, from {cache.dir}")
    run = Run(backend, seeded, cached=cached)
    platform = open_platform(Settings(**kwargs))
    try:
        ctx.log("  training the For You models")
        for region in REGIONS:
            t0 = time.perf_counter()
            report = train_region(platform, region)
            stats = dict(report.model.stats)
            stats["total_s"] = time.perf_counter() - t0
            pre = do_precompute_candidates(platform, Settings(**kwargs), region)
            stats["sets"], stats["sets_s"] = float(pre.built), pre.seconds
            run.train[region] = stats
            ctx.log(f"  region {region}: {json.dumps({k: round(v, 1) for k, v in stats.items()})}")
    finally:
        platform.close()
    with serve(ctx.python, data_dir, env) as server:
        _drive_all(ctx, run, server, scale)
    platform = open_platform(Settings(**kwargs))
    try:
        run.breakdown = breakdown(platform, seeded.viewers)
        ctx.log(f"  in-process CPU ms per call: {json.dumps(run.breakdown)}")
    finally:
        platform.close()
    return run


def breakdown(
    platform: Any, viewers: list[tuple[str, str, bool]], n: int = 200
) -> dict[str, float]:
    """CPU milliseconds per call of the pieces of a request, in this process on the same data
    (no HTTP, no other request competing): where a For You request's time goes."""
    from reelm.accounts.service import access_session
    from reelm.config import Settings
    from reelm.feed.foryou import for_you_feed
    from reelm.feed.service import following_feed
    from reelm.web.security import SessionPass, issue_pass, read_pass

    settings = Settings()
    live = settings.model_copy(update={"feed_candidates_max_age_minutes": -1})  # never stored
    chosen = viewers[:: max(1, len(viewers) // n)][:n]
    users = [access_session(platform, t) for t, _, _ in chosen]
    passes = [
        issue_pass(settings, t, SessionPass(u.user_id, u.handle, u.region, u.session_id, 2**40))
        for (t, _, _), u in zip(chosen, users, strict=True)
    ]

    def with_pass(i: int) -> None:
        p = read_pass(settings, chosen[i][0], passes[i], now=time.time())
        assert p is not None
        platform.directory.home(p.user_id)

    def cpu(fn: Any) -> float:
        for i in range(5):
            fn(i)
        t0 = time.process_time()
        for i in range(len(users)):
            fn(i)
        return round((time.process_time() - t0) / len(users) * 1000, 3)

    cursors: dict[int, str | None] = {}

    def first(i: int) -> None:
        cursors[i] = for_you_feed(platform, settings, users[i], cursor=None, limit=10).next_cursor

    def first_live(i: int) -> None:
        for_you_feed(platform, live, users[i], cursor=None, limit=10)

    def later(i: int) -> None:
        for_you_feed(platform, settings, users[i], cursor=cursors.get(i), limit=10)

    return {
        AUTH_LOOKUP: cpu(lambda i: access_session(platform, chosen[i][0])),
        AUTH_PASS: cpu(with_pass),
        FIRST_LIVE: cpu(first_live),
        FIRST_STORED: cpu(first),
        LATER: cpu(later),
        "Following, first page": cpu(lambda i: following_feed(platform, users[i], cursor=None)),
    }


AUTH_LOOKUP = "auth, session lookup (access_session)"
AUTH_PASS = "auth, with a session pass"
FIRST_LIVE = "For You, first page built live"
FIRST_STORED = "For You, first page from the stored set"
LATER = "For You, a later page"


def _drive_all(ctx: Context, run: Run, server: Server, scale: Scale) -> None:
    db_cpu = _pg.cpu_seconds if run.backend == "postgresql" else None
    viewers = run.seeded.viewers
    viewers = [v for pair in zip(viewers[0::2], viewers[1::2], strict=False) for v in pair]

    def phase(label: str, make: Any, on_ok: Any = None, seconds: float = scale.seconds) -> Phase:
        p = drive(server, label, make, clients=CLIENTS, seconds=seconds, on_ok=on_ok,
                  db_cpu=db_cpu)  # fmt: skip
        ctx.log(
            f"  {label:10} {fmt_rate(p.rate):>7} req/s  p50 {fmt_ms(p.p50)} ms  "
            f"p99 {fmt_ms(p.p99)} ms  errors {p.errors} {dict(p.error_kinds.most_common(3))}"
        )
        run.phases[label] = p
        return p

    # warm-up: imports, pools, the models loaded by the server, first queries
    drive(server, "warm-up", ping, clients=CLIENTS, seconds=1)
    warm = Scrolling(viewers[-64:], CLIENTS, PAGES_PER_VIEWER)
    drive(server, "warm-up", warm.call, clients=CLIENTS, seconds=3, on_ok=warm.ok)

    phase("ping 1", ping, seconds=scale.ping_seconds)
    scroll = Scrolling(viewers[:-64], CLIENTS, PAGES_PER_VIEWER)
    fy = phase("for-you", scroll.call, scroll.ok)
    run.items_per_page = scroll.items / max(fy.ok, 1)
    run.empty_pages = scroll.empty
    phase("ping 2", ping, seconds=scale.ping_seconds)
    phase("following", following_calls(viewers, CLIENTS))
    phase("ping 3", ping, seconds=scale.ping_seconds)


# ---- report --------------------------------------------------------------------------------


def _average(r: Run, auth: str, first: str) -> float:
    b = r.breakdown
    return b[auth] + (b[first] + (PAGES_PER_VIEWER - 1) * b[LATER]) / PAGES_PER_VIEWER


def gap(runs: list[Run]) -> str:
    """Where the distance to the targets comes from, in this run's own numbers."""
    lines = []
    for r in runs:
        if not r.breakdown:
            continue
        fy, ping_ = r.phases["for-you"], r.phases["ping 2"]
        cpu_fy, cpu_ping = fy.per_request(fy.server_cpu), ping_.per_request(ping_.server_cpu)
        before = _average(r, AUTH_LOOKUP, FIRST_LIVE)
        now = _average(r, AUTH_PASS, FIRST_STORED)
        rest = cpu_fy - now - cpu_ping
        lines.append(
            f"- {_label(r.backend)}: the server spent {cpu_fy:.2f} ms of CPU per For You request "
            f"and {cpu_ping:.2f} ms per bare request. Of the For You request, reelm's own work "
            f"measured in-process is {now:.2f} ms (it was {before:.2f} ms with a session lookup "
            f"per request and every session built live); the remaining {rest:.2f} ms is spent "
            "around the handler, on top of what the bare endpoint costs."
        )
    return (
        "\n".join(lines)
        + """

The remainder is not in the feed code: the For You route and its user dependency are plain
functions, which FastAPI runs in its thread pool (32 requests in flight: 32 threads taking turns
on one interpreter, each hand-off a queue put and a condition wake-up); the SQLite pool
(5 + 10 overflow connections) opens and closes a connection, with its four PRAGMAs, whenever more
than 15 requests read at once; and the carve-out's redirect middleware is a Starlette
`BaseHTTPMiddleware`, which wraps every response in a streamed one. The bare endpoint is an
`async` route and skips the first two. p99 follows from the rate: with 32 requests in flight the
mean latency is 32 ÷ requests/s, so p99 ≤ 150 ms needs well over 200 For You requests/s."""
    )


def _label(backend: str) -> str:
    return "SQLite" if backend == "sqlite" else "PostgreSQL"


def run(ctx: Context) -> Outcome:
    scale = QUICK if ctx.quick else FULL
    import os

    chosen = os.environ.get("REELM_BENCH_FEED_BACKENDS", ",".join(BACKENDS)).split(",")
    runs = [measure(ctx, backend, scale) for backend in BACKENDS if backend in chosen]
    return report(runs, scale)


def report(runs: list[Run], scale: Scale) -> Outcome:
    failures: list[str] = []
    head, detail, train_rows, seed_rows = [], [], [], []
    for r in runs:
        fy = r.phases["for-you"]
        bare = r.bare("for-you")
        ratio = fy.rate / bare
        met = fy.p99 <= P99_TARGET and fy.errors == 0 and ratio >= RATIO_TARGET
        head.append(
            [_label(r.backend), fmt_rate(fy.rate), fmt_ms(fy.p50), fmt_ms(fy.p99), str(fy.errors),
             fmt_rate(bare), fmt_ratio(ratio), "yes" if met else "**no**"]
        )  # fmt: skip
        if fy.errors:
            failures.append(f"{_label(r.backend)}: For You had {fy.errors} errors "
                            f"({dict(fy.error_kinds.most_common(3))})")  # fmt: skip
        if fy.p99 > P99_TARGET:
            failures.append(
                f"{_label(r.backend)}: For You p99 {fmt_ms(fy.p99)} ms > {P99_TARGET * 1000:.0f} ms"
            )
        if ratio < RATIO_TARGET:
            failures.append(
                f"{_label(r.backend)}: For You at {ratio:.1%} of the bare endpoint's rate "
                f"(target ≥ {RATIO_TARGET:.0%})"
            )
        if r.items_per_page < 9:
            failures.append(f"{_label(r.backend)}: only {r.items_per_page:.1f} items per page")
        for label, p in r.phases.items():
            if label == "following" and p.errors:
                failures.append(f"{_label(r.backend)}: Following had {p.errors} errors")
            detail.append(
                [_label(r.backend), label, fmt_rate(p.rate), fmt_ratio(p.rate / r.bare(label)),
                 fmt_ms(p.p50), fmt_ms(p.p99), f"{p.ok:,}", str(p.errors),
                 fmt_ms(p.per_request(p.server_cpu)),
                 fmt_ms(p.per_request(p.db_cpu)) if r.backend == "postgresql" else "–",
                 f"{p.client_cpu / p.seconds:.2f}"]
            )  # fmt: skip
        for region, s in r.train.items():
            train_rows.append(
                [_label(r.backend), region, f"{int(s['users']):,}", f"{int(s['items']):,}",
                 f"{int(s['interactions']):,}", f"{s['read_s']:.1f}", f"{s['fit_s']:.1f}",
                 f"{s['pools_s']:.1f}", f"{s['total_s']:.1f}", f"{int(s['sets']):,}",
                 f"{s['sets_s']:.1f}"]
            )  # fmt: skip
        rows = r.seeded.rows
        seed_rows.append(
            [_label(r.backend), f"{r.seeded.users:,}", f"{r.seeded.videos:,}",
             f"{r.seeded.interactions:,}", f"{rows['watch_events']:,}", f"{rows['likes']:,}",
             f"{rows['follows']:,}", f"{rows['saves'] + rows['shares']:,}",
             f"{len(r.seeded.viewers):,}", f"{r.seeded.seconds:.0f}"]
        )  # fmt: skip
        if r.seeded.interactions < scale.interactions * 0.95:
            failures.append(
                f"{_label(r.backend)}: seeded only {r.seeded.interactions:,} interactions"
            )
    md = f"""
**For You under load** ({CLIENTS} concurrent clients for {scale.seconds:.0f} s, mixed viewers of
both regions, real session tokens; the bare endpoint `GET /api/v1/ping` of the same server right
before and after). Targets: p99 ≤ {P99_TARGET * 1000:.0f} ms, zero errors, ≥ {RATIO_TARGET:.0%} of
the bare endpoint's requests/s.

{
        md_table(
            [
                "backend",
                "For You req/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "bare req/s",
                "÷ bare",
                "targets met",
            ],
            head,
        )
    }

**Every phase, in the order run** (CPU per successful request; "load-gen cores" = the load
generator's CPU seconds per second, on the same 2 cores):

{
        md_table(
            [
                "backend",
                "endpoint",
                "req/s",
                "÷ bare",
                "p50 ms",
                "p99 ms",
                "requests",
                "errors",
                "server CPU ms/req",
                "PostgreSQL CPU ms/req",
                "load-gen cores",
            ],
            detail,
            align="llrrrrrrrrr",
        )
    }

For You pages carried {", ".join(f"{r.items_per_page:.1f}" for r in runs)} items on average
(SQLite, PostgreSQL; 10 asked); a client reads {PAGES_PER_VIEWER} pages of a viewer, so one request
in {PAGES_PER_VIEWER} starts a new session (candidates gathered and ranked) and the others take
the next items of the session's ranked list, with the viewer's blocks, mutes, "not interested",
finished videos and follows read afresh and the page's catalogue rows re-read.

**Where a request's time goes** (CPU ms per call measured in the benchmark process on the same
data after the HTTP phases: no HTTP, no competing request; a 5-page scroll costs on average one
auth + (first page + 4 later pages) / 5 per request; "before" = session lookup and a live build,
"now" = a session pass and the stored set):

{
        md_table(
            ["backend", *runs[0].breakdown, "5-page average before", "5-page average now"],
            [
                [
                    _label(r.backend),
                    *(f"{v:.2f}" for v in r.breakdown.values()),
                    f"{_average(r, AUTH_LOOKUP, FIRST_LIVE):.2f}",
                    f"{_average(r, AUTH_PASS, FIRST_STORED):.2f}",
                ]
                for r in runs
                if r.breakdown
            ],
        )
    }

{gap(runs)}

**Seeded data** (bulk writes, each protected row in its owner's region):

{
        md_table(
            [
                "backend",
                "users",
                "videos",
                "interactions",
                "watch events",
                "likes",
                "follows",
                "saves + shares",
                "viewers with sessions",
                "seconds",
            ],
            seed_rows,
        )
    }

**Training** (`train_region` per region: read the region's records, ALS fit with implicit,
neighbours, pools; then `do_precompute_candidates`, what the region's worker runs after it: one
ranked candidate set per user with a session seen in the last 7 days; seconds):

{
        md_table(
            [
                "backend",
                "region",
                "users",
                "videos",
                "interactions",
                "read",
                "fit",
                "pools",
                "total",
                "candidate sets",
                "sets s",
            ],
            train_rows,
        )
    }

How: a fresh data folder under /tmp, `reelm init`, the seed above, training, then `python -m
uvicorn --factory reelm.web.app:create_app --workers 1` on 127.0.0.1 as in the accounts
benchmark. PostgreSQL: started by `pgserver` with default settings, fresh databases, ANALYZE after
the bulk load (on SQLite too). The load generator is `bench/_http.py` (one asyncio process);
reelm, the load generator and PostgreSQL share the machine's cores.
"""
    return Outcome(md, failures)
