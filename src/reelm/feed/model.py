"""The For You model of one region, and that region's candidate pools.

The residency rule for ranking: a model that learns from viewers' behaviour is trained per region,
on that region's records only. `train_region` reads the likes, saves, shares and completed watch
events in one region's database — and keeps only rows whose owner's home, in the Directory, is
that region — fits implicit's ALS on them, and writes the artefact into that region's work folder.
Global signals come only from public aggregates: the catalogue's counts. The region's own
aggregates (trending, completion rates) are non-personal numbers computed from its own events.

The artefact holds item factors, item-item neighbours and pools, no per-user row: a viewer's
vector is folded in at request time from their own recent records, so a user who moves region or
deletes their account leaves nothing behind here that the next training does not remove.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from sqlalchemy import case, func, select

from reelm.db import utcnow
from reelm.feed.ranking import engagement_prior
from reelm.media.models import PublishedVideo, VideoTag
from reelm.residency.store import Platform, RegionStore
from reelm.social.models import Like, Save, Share, WatchEvent

log = logging.getLogger(__name__)

MODEL_DIR = "model"
MODEL_FILE = "foryou.npz"

# ALS hyper-parameters (chosen on the offline simulator, bench/recsys.py)
FACTORS = 48
ITERATIONS = 12
REGULARIZATION = 0.05
NEIGHBOURS = 20
NEIGHBOUR_TARGETS = 20_000
# Confidence of a (user, video) pair is 1 + the sum of its event weights (completions count up to
# three times).
EVENT_WEIGHTS = {"like": 4.0, "save": 4.0, "share": 6.0, "complete": 2.0}
MAX_COMPLETIONS = 3

TRENDING_HOURS = 48
TRENDING_SIZE = 500
EXPLORE_DAYS = 14
EXPLORE_SIZE = 500
POOL_SIZE = 50  # videos kept per hashtag and per sound
PER_CREATOR = 20  # newest videos kept per creator (the Following source of For You)
MAX_POOLED_TAGS = 5000

Float32s = npt.NDArray[np.float32]


@dataclass
class Interactions:
    """One region's training records: users × videos, summed event weights."""

    user_ids: list[str]
    item_ids: list[str]
    users: npt.NDArray[np.int64]
    items: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float64]

    @property
    def size(self) -> int:
        return len(self.weights)

    def matrix(self) -> Any:
        from scipy.sparse import csr_matrix

        return csr_matrix(
            (1.0 + self.weights, (self.users, self.items)),
            shape=(len(self.user_ids), len(self.item_ids)),
            dtype=np.float32,
        )


def interactions_from(rows: Iterable[tuple[str, str, float]]) -> Interactions:
    """(user, video, weight) rows → summed, indexed arrays."""
    user_index: dict[str, int] = {}
    item_index: dict[str, int] = {}
    sums: dict[tuple[int, int], float] = defaultdict(float)
    for user, item, weight in rows:
        u = user_index.setdefault(user, len(user_index))
        i = item_index.setdefault(item, len(item_index))
        sums[(u, i)] += weight
    keys = np.array(list(sums), dtype=np.int64).reshape(-1, 2)
    return Interactions(
        user_ids=list(user_index),
        item_ids=list(item_index),
        users=keys[:, 0],
        items=keys[:, 1],
        weights=np.fromiter(sums.values(), dtype=np.float64, count=len(sums)),
    )


def read_interactions(store: RegionStore) -> Interactions:
    """The positive records of one region's users, read from that region's database only.

    Rows whose owner's Directory home is another region (a carve-out in flight) are left out: the
    model of a region learns from its own users."""
    w = EVENT_WEIGHTS
    with store.session() as s:
        rows: list[tuple[str, str, float]] = []
        rows += [(o, v, w["like"]) for o, v in s.execute(select(Like.owner_id, Like.video_id))]
        rows += [(o, v, w["save"]) for o, v in s.execute(select(Save.owner_id, Save.video_id))]
        rows += [
            (o, v, w["share"])
            for o, v in s.execute(select(Share.owner_id, Share.video_id).distinct())
        ]
        completions = s.execute(
            select(WatchEvent.owner_id, WatchEvent.video_id, func.count())
            .where(WatchEvent.completed.is_(True))
            .group_by(WatchEvent.owner_id, WatchEvent.video_id)
        )
        rows += [(o, v, w["complete"] * min(n, MAX_COMPLETIONS)) for o, v, n in completions]
    owners = {o for o, _, _ in rows}
    homes = store.directory.homes(owners)
    here = {o for o in owners if o in homes and homes[o].region == store.name}
    return interactions_from(r for r in rows if r[0] in here)


@dataclass
class ItemModel:
    """Item factors learned by ALS, their Gram matrix and each item's nearest neighbours."""

    item_ids: list[str]
    factors: Float32s
    neighbours: npt.NDArray[np.int32]
    neighbour_sims: Float32s
    regularization: float = REGULARIZATION
    index: dict[str, int] = field(init=False)
    gram: npt.NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {v: i for i, v in enumerate(self.item_ids)}
        f = self.factors.astype(np.float64)
        self.gram = f.T @ f

    def user_vector(
        self, items: list[int], confidence: list[float]
    ) -> npt.NDArray[np.float64] | None:
        """Fold a viewer in (one ALS half-step): the vector that best explains their positives
        given the item factors. Cost: one k×k solve, k = the number of factors."""
        if not items:
            return None
        y = self.factors[items].astype(np.float64)
        c = np.asarray(confidence, dtype=np.float64)
        a = self.gram + (y.T * (c - 1.0)) @ y + self.regularization * np.eye(y.shape[1])
        b = y.T @ c
        return np.asarray(np.linalg.solve(a, b), dtype=np.float64)

    def scores(self, vector: npt.NDArray[np.float64], items: list[int]) -> npt.NDArray[np.float64]:
        """Predicted preference (about 0..1) of the viewer for the given items only."""
        out: npt.NDArray[np.float64] = self.factors[items].astype(np.float64) @ vector
        return out


def fit_item_model(
    interactions: Interactions,
    *,
    factors: int = FACTORS,
    iterations: int = ITERATIONS,
    regularization: float = REGULARIZATION,
    neighbours: int = NEIGHBOURS,
    seed: int = 0,
) -> ItemModel:
    """ALS (implicit's CPU implementation) on the interactions, then item-item neighbours by the
    cosine of the item factors."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit runs its own threads; BLAS must not add more
        model = AlternatingLeastSquares(
            factors=factors,
            iterations=iterations,
            regularization=regularization,
            random_state=seed,
            calculate_training_loss=False,
        )
        model.fit(interactions.matrix(), show_progress=False)
    item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    # neighbours are looked for among the most engaged videos only: they are what co-engagement
    # can vouch for, and it bounds the cost (n × NEIGHBOUR_TARGETS dot products)
    engaged = np.bincount(interactions.items, minlength=len(interactions.item_ids))
    targets = np.argsort(-engaged, kind="stable")[:NEIGHBOUR_TARGETS]
    ids, sims = nearest_neighbours(item_factors, neighbours, targets=targets)
    return ItemModel(interactions.item_ids, item_factors, ids, sims, regularization)


def nearest_neighbours(
    factors: Float32s, k: int, *, targets: npt.NDArray[np.int64] | None = None
) -> tuple[npt.NDArray[np.int32], Float32s]:
    """For each item, the k others (among `targets`, default all) with the most similar factors
    (cosine), best first — implicit's multithreaded top-k, blockwise."""
    from implicit.cpu.topk import topk

    n = len(factors)
    pool = np.arange(n) if targets is None else np.asarray(targets)
    k = min(k, max(len(pool) - 1, 0))
    ids = np.zeros((n, k), dtype=np.int32)
    sims = np.zeros((n, k), dtype=np.float32)
    if k == 0:
        return ids, sims
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    unit = np.ascontiguousarray(factors / np.maximum(norms, 1e-9), dtype=np.float32)
    found, scores = topk(np.ascontiguousarray(unit[pool]), unit, k + 1, num_threads=0)
    found = pool[found]
    for row in range(n):
        keep = found[row] != row  # an item is not its own neighbour
        ids[row] = found[row][keep][:k]
        sims[row] = scores[row][keep][:k]
    return ids, sims


# ---- the region's pools: non-personal aggregates and public catalogue data -------------------


class VideoInfo(NamedTuple):
    """What ranking needs of a public video, copied from the PublicCatalog at training time.
    Counts may be minutes old (they only feed priors); visibility is checked again, fresh, before
    a page is served."""

    id: str
    creator_id: str
    creator_handle: str
    sound_id: str | None
    visibility: str
    published_at: datetime
    like_count: int
    comment_count: int
    share_count: int
    view_count: int


@dataclass
class Pools:
    """Candidate pools of one region, rebuilt with each training."""

    trending: dict[str, float]  # video → score from the region's last 48 h of events, best first
    completion: dict[str, float]  # video → smoothed completion rate among the region's viewers
    explore: list[str]  # fresh, little-seen public videos
    hashtags: dict[str, list[str]]  # hashtag → its best public videos
    sounds: dict[str, list[str]]  # sound → its best public videos
    videos: dict[str, VideoInfo] = field(default_factory=dict)  # the catalogue, copied
    video_tags: dict[str, list[str]] = field(default_factory=dict)  # video → its hashtags
    by_creator: dict[str, list[str]] = field(default_factory=dict)  # creator → newest videos


def region_aggregates(
    store: RegionStore, now: datetime
) -> tuple[dict[str, float], dict[str, float]]:
    """Trending scores and completion rates from the region's own events: per-video counts only."""
    since = now - timedelta(hours=TRENDING_HOURS)
    month = now - timedelta(days=30)
    trend: dict[str, float] = defaultdict(float)
    completion: dict[str, float] = {}
    with store.session() as s:
        recent = s.execute(
            select(
                WatchEvent.video_id,
                func.count(),
                func.sum(case((WatchEvent.completed.is_(True), 1), else_=0)),
            )
            .where(WatchEvent.created_at >= since)
            .group_by(WatchEvent.video_id)
        )
        for video, views, completed in recent:
            trend[video] += views + 2.0 * (completed or 0)
        for model, weight in ((Like, 4.0), (Share, 6.0)):
            counts = s.execute(
                select(model.video_id, func.count())
                .where(model.created_at >= since)
                .group_by(model.video_id)
            )
            for video, n in counts:
                trend[video] += weight * n
        watched = s.execute(
            select(
                WatchEvent.video_id,
                func.count(),
                func.sum(case((WatchEvent.completed.is_(True), 1), else_=0)),
            )
            .where(WatchEvent.created_at >= month)
            .group_by(WatchEvent.video_id)
        )
        for video, views, completed in watched:
            completion[video] = ((completed or 0) + 3.0) / (views + 10.0)
    top = sorted(trend.items(), key=lambda kv: -kv[1])[:TRENDING_SIZE]
    return dict(top), completion


@dataclass
class CatalogPools:
    explore: list[str]
    hashtags: dict[str, list[str]]
    sounds: dict[str, list[str]]
    popular: dict[str, float]
    videos: dict[str, VideoInfo]
    video_tags: dict[str, list[str]]
    by_creator: dict[str, list[str]]


def catalog_pools(platform: Platform, now: datetime, trending: dict[str, float]) -> CatalogPools:
    """Exploration pool, hashtag and sound pools, the catalogue's popular videos, each creator's
    newest videos and a copy of the catalogue's rows, all from the PublicCatalog. Pools hold
    public videos only; followers-only ones reach a feed only through the creator's newest videos,
    for viewers whose follow is active (checked afresh on every page)."""
    v = PublishedVideo
    public = v.visibility == "public"
    with platform.global_store.session() as g:
        explore = list(
            g.scalars(
                select(v.id)
                .where(public, v.published_at >= now - timedelta(days=EXPLORE_DAYS))
                .order_by(v.view_count, v.published_at.desc())
                .limit(EXPLORE_SIZE)
            )
        )
        if len(explore) < EXPLORE_SIZE:
            seen = set(explore)
            explore += [
                x
                for x in g.scalars(
                    select(v.id).where(public).order_by(v.view_count).limit(EXPLORE_SIZE)
                )
                if x not in seen
            ][: EXPLORE_SIZE - len(explore)]
        videos = {
            r[0]: VideoInfo._make(r)
            for r in g.execute(
                select(
                    v.id, v.creator_id, v.creator_handle, v.sound_id, v.visibility,
                    v.published_at, v.like_count, v.comment_count, v.share_count, v.view_count,
                )
            )
        }  # fmt: skip
        # every published video's hashtags (pools keep public videos only: see rank_pools)
        tags = g.execute(
            select(VideoTag.value, VideoTag.video_id).where(VideoTag.kind == "hashtag")
        ).all()
    video_tags: dict[str, list[str]] = defaultdict(list)
    for tag, vid in tags:
        video_tags[vid].append(tag)
    rows = [
        (x.id, x.sound_id, x.like_count, x.comment_count, x.share_count, x.view_count,
         x.published_at)
        for x in videos.values()
        if x.visibility == "public"
    ]  # fmt: skip
    hashtags, sounds, popular = rank_pools(rows, tags, trending, now)
    by_creator: dict[str, list[VideoInfo]] = defaultdict(list)
    for x in videos.values():
        by_creator[x.creator_id].append(x)
    newest = {
        c: [x.id for x in sorted(xs, key=lambda x: x.published_at, reverse=True)[:PER_CREATOR]]
        for c, xs in by_creator.items()
    }
    return CatalogPools(explore, hashtags, sounds, popular, videos, dict(video_tags), newest)


def rank_pools(
    rows: Sequence[Sequence[Any]],
    tags: Iterable[tuple[str, str]],
    trending: dict[str, float],
    now: datetime,
) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, float]]:
    """Hashtag and sound pools and the popular list from public videos
    `(id, sound_id, likes, comments, shares, views, published_at)` and `(hashtag, video)` pairs:
    each pool keeps its best videos by engagement prior, recency, the region's trending score and
    reach."""
    if not rows:
        return {}, {}, {}
    ids = [r[0] for r in rows]
    counts = np.array([r[2:6] for r in rows], dtype=np.float64)
    prior = engagement_prior(counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3])
    age_h = np.array([(now - r[6]).total_seconds() / 3600 for r in rows])
    top_trend = max(trending.values(), default=1.0)
    reach = np.log1p(counts[:, 3])
    quality = (
        prior / max(float(prior.max()), 1e-9)
        + 0.5 * np.exp(-np.maximum(age_h, 0) / 96)
        + np.array([trending.get(i, 0.0) / top_trend for i in ids])
        + 0.1 * reach / max(float(reach.max()), 1e-9)
    )
    rank = {vid: float(q) for vid, q in zip(ids, quality, strict=True)}
    by_tag: dict[str, list[str]] = defaultdict(list)
    for tag, vid in tags:
        if vid in rank:
            by_tag[tag].append(vid)
    biggest = sorted(by_tag, key=lambda t: -len(by_tag[t]))[:MAX_POOLED_TAGS]
    hashtags = {t: sorted(by_tag[t], key=lambda x: -rank[x])[:POOL_SIZE] for t in biggest}
    by_sound: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if r[1] is not None:
            by_sound[r[1]].append(r[0])
    sounds = {s: sorted(vs, key=lambda x: -rank[x])[:POOL_SIZE] for s, vs in by_sound.items()}
    popular = dict(sorted(rank.items(), key=lambda kv: -kv[1])[:TRENDING_SIZE])
    return hashtags, sounds, popular


def merge_trending(trending: dict[str, float], popular: dict[str, float]) -> dict[str, float]:
    """The region's trending videos first, topped up with the catalogue's popular ones (public
    aggregates) when the region has little recent activity of its own."""
    out = dict(trending)
    top = max(trending.values(), default=1.0)
    best = max(popular.values(), default=1.0)
    for vid, q in popular.items():
        if len(out) >= TRENDING_SIZE:
            break
        if vid not in out:
            out[vid] = 0.5 * top * q / best  # below the region's own trending videos
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def compute_pools(platform: Platform, region: str, now: datetime | None = None) -> Pools:
    """The pools of a region: trending from its own events, topped up with the catalogue's
    popular recent videos (public aggregates) when the region has little recent activity."""
    now = now or utcnow()
    trending, completion = region_aggregates(platform.region(region), now)
    c = catalog_pools(platform, now, trending)
    trending = merge_trending(trending, c.popular)
    return Pools(
        trending, completion, c.explore, c.hashtags, c.sounds, c.videos, c.video_tags, c.by_creator
    )


# ---- the artefact ----------------------------------------------------------------------------


@dataclass
class ForYouModel:
    """What one training run of a region produces and the request path reads."""

    region: str
    trained_at: datetime
    items: ItemModel | None
    pools: Pools
    stats: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainReport:
    model: ForYouModel
    path: Path
    user_ids: list[str]  # whose records were learned from (kept in memory only, for checks)


def model_path(store: RegionStore) -> Path:
    return store.work_dir / MODEL_DIR / MODEL_FILE


def train_region(platform: Platform, region: str) -> TrainReport:
    """Train the region's model on the region's records only and write it into its work folder."""
    store = platform.region(region)
    t0 = time.perf_counter()
    now = utcnow()
    data = read_interactions(store)
    t_read = time.perf_counter()
    items = fit_item_model(data) if data.size else None
    t_fit = time.perf_counter()
    pools = compute_pools(platform, region, now)
    t_pools = time.perf_counter()
    stats = {
        "users": float(len(data.user_ids)),
        "items": float(len(data.item_ids)),
        "interactions": float(data.size),
        "read_s": t_read - t0,
        "fit_s": t_fit - t_read,
        "pools_s": t_pools - t_fit,
    }
    model = ForYouModel(region, now, items, pools, stats)
    path = model_path(store)
    save_model(model, path)
    log.info("feed model of region %s: %s", region, json.dumps(stats))
    return TrainReport(model, path, data.user_ids)


def _flatten(pools: dict[str, list[str]]) -> tuple[list[str], npt.NDArray[np.int64], list[str]]:
    keys = list(pools)
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    values: list[str] = []
    for i, k in enumerate(keys):
        values += pools[k]
        offsets[i + 1] = len(values)
    return keys, offsets, values


def _unflatten(
    keys: list[str], offsets: npt.NDArray[np.int64], values: list[str]
) -> dict[str, list[str]]:
    return {k: values[offsets[i] : offsets[i + 1]] for i, k in enumerate(keys)}


def _strings(values: list[str]) -> npt.NDArray[np.str_]:
    return np.array(values, dtype=np.str_) if values else np.zeros(0, dtype="<U1")


def save_model(model: ForYouModel, path: Path) -> None:
    """Write the artefact atomically (a reader sees the old file or the new one)."""
    p = model.pools
    tag_keys, tag_offsets, tag_values = _flatten(p.hashtags)
    sound_keys, sound_offsets, sound_values = _flatten(p.sounds)
    items = model.items
    vids = list(p.videos.values())
    vt_keys, vt_offsets, vt_values = _flatten({x.id: p.video_tags.get(x.id, []) for x in vids})
    creator_keys, creator_offsets, creator_values = _flatten(p.by_creator)
    arrays: dict[str, Any] = {
        "meta": np.array(
            json.dumps(
                {
                    "region": model.region,
                    "trained_at": model.trained_at.isoformat(),
                    "stats": model.stats,
                    "regularization": items.regularization if items else REGULARIZATION,
                }
            )
        ),
        "item_ids": _strings(items.item_ids if items else []),
        "item_factors": items.factors if items else np.zeros((0, FACTORS), np.float32),
        "neighbours": items.neighbours if items else np.zeros((0, 0), np.int32),
        "neighbour_sims": items.neighbour_sims if items else np.zeros((0, 0), np.float32),
        "trend_ids": _strings(list(p.trending)),
        "trend_scores": np.array(list(p.trending.values()), dtype=np.float64),
        "completion_ids": _strings(list(p.completion)),
        "completion_rates": np.array(list(p.completion.values()), dtype=np.float64),
        "explore_ids": _strings(p.explore),
        "tag_keys": _strings(tag_keys),
        "tag_offsets": tag_offsets,
        "tag_values": _strings(tag_values),
        "sound_keys": _strings(sound_keys),
        "sound_offsets": sound_offsets,
        "sound_values": _strings(sound_values),
        "v_ids": _strings([x.id for x in vids]),
        "v_creators": _strings([x.creator_id for x in vids]),
        "v_handles": _strings([x.creator_handle for x in vids]),
        "v_sounds": _strings([x.sound_id or "" for x in vids]),
        "v_followers": np.array([x.visibility == "followers" for x in vids], dtype=np.bool_),
        "v_published": np.array([x.published_at.timestamp() for x in vids], dtype=np.float64),
        "v_counts": np.array(
            [(x.like_count, x.comment_count, x.share_count, x.view_count) for x in vids],
            dtype=np.int64,
        ).reshape(-1, 4),
        "v_tag_offsets": vt_offsets,
        "v_tag_values": _strings(vt_values),
        "creator_keys": _strings(creator_keys),
        "creator_offsets": creator_offsets,
        "creator_values": _strings(creator_values),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)


def read_model(path: Path) -> ForYouModel:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        item_ids: list[str] = z["item_ids"].tolist()
        items = (
            ItemModel(
                item_ids,
                np.ascontiguousarray(z["item_factors"], dtype=np.float32),
                z["neighbours"].astype(np.int32),
                z["neighbour_sims"].astype(np.float32),
                float(meta["regularization"]),
            )
            if item_ids
            else None
        )
        pools = Pools(
            trending=dict(zip(z["trend_ids"].tolist(), z["trend_scores"].tolist(), strict=True)),
            completion=dict(
                zip(z["completion_ids"].tolist(), z["completion_rates"].tolist(), strict=True)
            ),
            explore=z["explore_ids"].tolist(),
            hashtags=_unflatten(z["tag_keys"].tolist(), z["tag_offsets"], z["tag_values"].tolist()),
            sounds=_unflatten(
                z["sound_keys"].tolist(), z["sound_offsets"], z["sound_values"].tolist()
            ),
        )
        v_ids: list[str] = z["v_ids"].tolist()
        published = [datetime.fromtimestamp(t, UTC) for t in z["v_published"].tolist()]
        pools.videos = {
            vid: VideoInfo(vid, creator, handle, sound or None,
                           "followers" if followers else "public", at, *counts)
            for vid, creator, handle, sound, followers, at, counts in zip(
                v_ids, z["v_creators"].tolist(), z["v_handles"].tolist(),
                z["v_sounds"].tolist(), z["v_followers"].tolist(), published,
                z["v_counts"].tolist(), strict=True,
            )
        }  # fmt: skip
        pools.video_tags = _unflatten(v_ids, z["v_tag_offsets"], z["v_tag_values"].tolist())
        pools.by_creator = _unflatten(
            z["creator_keys"].tolist(), z["creator_offsets"], z["creator_values"].tolist()
        )
    trained_at = datetime.fromisoformat(meta["trained_at"]).astimezone(UTC)
    return ForYouModel(meta["region"], trained_at, items, pools, meta["stats"])


_LOADED: dict[Path, tuple[int, ForYouModel]] = {}
_LOAD_LOCK = threading.Lock()


def load_model(store: RegionStore) -> ForYouModel | None:
    """The region's latest artefact, read once per change of the file (mtime) and cached in the
    process; None before the first training."""
    path = model_path(store)
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    cached = _LOADED.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    with _LOAD_LOCK:
        cached = _LOADED.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        model = read_model(path)
        if model.region != store.name:
            raise RuntimeError(f"{path} holds the model of region {model.region!r}")
        _LOADED[path] = (mtime, model)
        return model
