"""Offline evaluation of the For You ranking on a seeded simulator, against popularity and random.

The simulator (everything drawn from one seeded numpy generator; the assumptions are listed in the
section it writes):

- **Topics and regions.** 16 topics. Two regions ("north", "south") with their own taste: each
  region ranks the topics by a Zipf law in its own (seeded) order, so a topic big in one region
  can be niche in the other.
- **Creators and videos.** Creators have a home topic; 85% of their videos are on it. A video has
  a topic, the hashtags `#t<topic>` and `#t<topic>s<k>` (one of four sub-topics), a sound (60% a
  sound of its topic, 20% any sound, 20% none), a quality q ~ Beta(2, 3), a virality
  v ~ LogNormal(0, 1) and a publication time spread over the 30 days before the split and the
  3.5 days after it.
- **Users.** Interests θ ~ Dirichlet(0.25) over the topics, mixed 70/30 with their region's taste;
  an activity level that sets 20–300 impressions over the 17.5 days around the split.
- **Exposure (the platform before this ranking).** Per one-day bucket, each impression is drawn
  40% by popularity (v·q, decayed with the video's age, half-life 5 days), 40% from one of the
  user's topics (drawn from θ; within it by v, decayed the same) and 20% uniformly among
  published videos.
- **Watch time.** Affinity a = θ[topic] / max θ. The watched fraction is drawn from a Beta with
  mean σ(3.2 (0.6 a + 0.4 q) − 1.6) and concentration 4; ≥ 0.9 of the video is a completion. A
  completion is followed by a like with probability 0.6 (0.5 a + 0.5 q), a like by a share with
  0.15; a user follows a creator after liking two of their videos.
- **Split.** Global and temporal: events before the split train, positive events (completion,
  like, share) after it on videos published before it, not seen by that user in training, are
  held out.

Methods, each giving 10 videos per evaluated user (never one the user interacted with in
training):

- **For You**: the production code path — `reelm.feed.model.fit_item_model` (implicit ALS) trained
  per region on that region's users only, `reelm.feed.model.rank_pools` for the pools,
  `reelm.feed.foryou.rank_session` over an in-memory catalogue, then `reelm.feed.ranking.take`
  (diversity rule and 20% exploration) for the first page of 10.
- **For You without exploration**: the same ranking with the exploration slots off (what the 20%
  of discovery costs on this metric).
- **ALS alone**: the region's model's top 10 over every video (no rules, no exploration).
- **Popularity (region)** and **popularity (global)**: most positive events in training, in the
  user's region / everywhere. **Random**: uniform among published videos.

Metrics: recall@10 = hits / min(10, held-out videos) and NDCG@10 with binary relevance, averaged
over users with at least one training positive and one held-out positive.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np

from bench._common import Context, Outcome, md_table

TITLE = "Recommendations: For You on a seeded simulator, recall@10 and NDCG@10 vs baselines"

TOPICS = 16
REGIONS = ("north", "south")
NOW = datetime(2026, 6, 1, tzinfo=UTC)
DAY = timedelta(days=1)
K = 10


class SimVideo(NamedTuple):
    """A catalogue row with the attributes the ranking reads (like the PublicCatalog's)."""

    id: str
    creator_id: str
    creator_handle: str
    region: str
    sound_id: str | None
    visibility: str
    like_count: int
    comment_count: int
    share_count: int
    view_count: int
    published_at: datetime


@dataclass
class World:
    n_users: int
    n_videos: int
    seed: int
    video_topic: Any = None
    video_creator: Any = None
    video_sound: Any = None
    video_sub: Any = None
    quality: Any = None
    virality: Any = None
    published: Any = None  # days relative to NOW (negative: before the split)
    theta: Any = None
    user_region: Any = None
    events: list[tuple[int, int, str, float]] = field(default_factory=list)  # user, video, kind, t
    impressions: Any = None  # per video, before the split


def simulate(n_users: int, n_videos: int, seed: int) -> World:
    rng = np.random.default_rng(seed)
    w = World(n_users, n_videos, seed)
    n_creators = max(20, n_videos // 10)
    n_sounds = 60
    creator_topic = rng.integers(0, TOPICS, n_creators)
    sound_topic = rng.integers(0, TOPICS, n_sounds)
    w.video_creator = rng.integers(0, n_creators, n_videos)
    on_topic = rng.random(n_videos) < 0.85
    w.video_topic = np.where(
        on_topic, creator_topic[w.video_creator], rng.integers(0, TOPICS, n_videos)
    )
    w.video_sub = rng.integers(0, 4, n_videos)
    sounds_by_topic = [np.flatnonzero(sound_topic == t) for t in range(TOPICS)]
    kind = rng.random(n_videos)
    w.video_sound = np.full(n_videos, -1)
    for j in range(n_videos):
        same = sounds_by_topic[w.video_topic[j]]
        if kind[j] < 0.6 and len(same):
            w.video_sound[j] = rng.choice(same)
        elif kind[j] < 0.8:
            w.video_sound[j] = rng.integers(0, n_sounds)
    w.quality = rng.beta(2, 3, n_videos)
    w.virality = rng.lognormal(0, 1, n_videos)
    w.published = rng.uniform(-30, 3.5, n_videos)

    zipf = 1.0 / np.arange(1, TOPICS + 1) ** 1.1
    region_taste = []
    for _ in REGIONS:
        taste = np.empty(TOPICS)
        taste[rng.permutation(TOPICS)] = zipf
        region_taste.append(taste / taste.sum())
    w.user_region = rng.integers(0, len(REGIONS), n_users)
    personal = rng.dirichlet(np.full(TOPICS, 0.25), n_users)
    w.theta = 0.7 * personal + 0.3 * np.array(region_taste)[w.user_region]
    activity = np.clip(rng.lognormal(4.2, 0.7, n_users), 20, 300).astype(int)

    # impressions in one-day buckets from 14 days before the split to 3.5 days after
    start, end = -14.0, 3.5
    user_of = np.repeat(np.arange(n_users), activity)
    when = rng.uniform(start, end, len(user_of))
    order = np.argsort(when, kind="stable")
    user_of, when = user_of[order], when[order]
    by_topic = [np.flatnonzero(w.video_topic == t) for t in range(TOPICS)]
    cum_theta = w.theta.cumsum(axis=1)
    w.impressions = np.zeros(n_videos)
    shown = np.zeros(len(user_of), dtype=np.int64)
    for day in np.arange(math.floor(start), math.ceil(end)):
        sel = np.flatnonzero((when >= day) & (when < day + 1))
        if not len(sel):
            continue
        age = day + 0.5 - w.published
        live = age > 0
        decay = np.where(live, np.exp(-np.maximum(age, 0) * math.log(2) / 5), 0.0)
        pop = w.virality * w.quality * decay
        mode = rng.random(len(sel))
        by_pop, by_interest = sel[mode < 0.4], sel[(mode >= 0.4) & (mode < 0.8)]
        by_chance = sel[mode >= 0.8]
        shown[by_pop] = rng.choice(n_videos, len(by_pop), p=pop / pop.sum())
        live_ids = np.flatnonzero(live)
        shown[by_chance] = rng.choice(live_ids, len(by_chance))
        draws = rng.random(len(by_interest))[:, None]
        topics = (draws > cum_theta[user_of[by_interest]]).sum(axis=1).clip(0, TOPICS - 1)
        for t in range(TOPICS):
            mine = by_interest[topics == t]
            if not len(mine):
                continue
            weights = w.virality[by_topic[t]] * decay[by_topic[t]]
            if weights.sum() > 0:
                pick = rng.choice(len(weights), len(mine), p=weights / weights.sum())
                shown[mine] = by_topic[t][pick]
            else:
                shown[mine] = rng.choice(live_ids, len(mine))
    np.add.at(w.impressions, shown[when < 0], 1)
    # watch behaviour, vectorised over all impressions
    affinity = w.theta[user_of, w.video_topic[shown]] / w.theta.max(axis=1)[user_of]
    q = w.quality[shown]
    mean = 1 / (1 + np.exp(-(3.2 * (0.6 * affinity + 0.4 * q) - 1.6)))
    frac = rng.beta(np.maximum(mean * 4, 1e-3), np.maximum((1 - mean) * 4, 1e-3))
    completed = frac >= 0.9
    liked = completed & (rng.random(len(shown)) < 0.6 * (0.5 * affinity + 0.5 * q))
    shared = liked & (rng.random(len(shown)) < 0.15)
    liked_creator: dict[tuple[int, int], int] = defaultdict(int)
    for i in np.flatnonzero(completed):
        u, j, t = int(user_of[i]), int(shown[i]), float(when[i])
        w.events.append((u, j, "complete", t))
        if liked[i]:
            w.events.append((u, j, "like", t))
            creator = int(w.video_creator[j])
            liked_creator[(u, creator)] += 1
            if liked_creator[(u, creator)] == 2:
                w.events.append((u, creator, "follow", t))
        if shared[i]:
            w.events.append((u, j, "share", t))
    return w


# ---- the catalogue, models and pools seen at the split -------------------------------------


def vid(j: int) -> str:
    return f"v{j:06d}"


class SimCatalog:
    """`reelm.feed.foryou.CatalogReader` over the simulated catalogue as it stands at the split."""

    def __init__(self, w: World, counts: dict[int, tuple[int, int, int]]) -> None:
        self.rows: dict[str, SimVideo] = {}
        self.tag_map: dict[str, list[str]] = {}
        self.by_creator: dict[str, list[str]] = defaultdict(list)
        for j in range(w.n_videos):
            if w.published[j] > 0:
                continue  # not published yet at the split
            likes, shares, completions = counts.get(j, (0, 0, 0))
            row = SimVideo(
                vid(j), f"c{w.video_creator[j]}", f"creator{w.video_creator[j]}", "sim",
                f"s{w.video_sound[j]}" if w.video_sound[j] >= 0 else None, "public",
                likes, 0, shares, int(w.impressions[j]), NOW + timedelta(days=float(w.published[j])),
            )  # fmt: skip
            self.rows[row.id] = row
            topic = int(w.video_topic[j])
            self.tag_map[row.id] = [f"t{topic}", f"t{topic}s{int(w.video_sub[j])}"]
            self.by_creator[row.creator_id].append(row.id)
        for ids in self.by_creator.values():
            ids.sort(key=lambda i: self.rows[i].published_at, reverse=True)

    def videos(self, ids: Any) -> dict[str, Any]:
        return {i: self.rows[i] for i in ids if i in self.rows}

    def tags(self, ids: Any) -> dict[str, list[str]]:
        return {i: self.tag_map[i] for i in ids if i in self.tag_map}

    def followed(self, creators: set[str]) -> list[Any]:
        rows = [self.rows[i] for c in creators for i in self.by_creator.get(c, [])[:20]]
        rows.sort(key=lambda r: r.published_at, reverse=True)
        return rows[:100]

    def fresh(self, after: datetime) -> list[str]:
        return [i for i, r in self.rows.items() if r.published_at > after][:100]


@dataclass
class Split:
    train: list[tuple[int, int, str, float]]
    held_out: dict[int, set[int]]
    seen: dict[int, set[int]]
    follows: dict[int, set[int]]


def split(w: World) -> Split:
    train = [e for e in w.events if e[3] < 0]
    seen: dict[int, set[int]] = defaultdict(set)
    follows: dict[int, set[int]] = defaultdict(set)
    for u, j, kind, _ in train:
        if kind == "follow":
            follows[u].add(j)
        else:
            seen[u].add(j)
    held: dict[int, set[int]] = defaultdict(set)
    for u, j, kind, t in w.events:
        if t >= 0 and kind != "follow" and w.published[j] <= 0 and j not in seen[u]:
            held[u].add(j)
    return Split(train, dict(held), dict(seen), dict(follows))


def evaluate(ctx: Context, w: World, seed: int) -> list[list[str]]:
    from reelm.feed.foryou import ViewerState, rank_session
    from reelm.feed.model import (
        EVENT_WEIGHTS,
        ForYouModel,
        Pools,
        fit_item_model,
        interactions_from,
        merge_trending,
        rank_pools,
    )
    from reelm.feed.ranking import Queue, take

    s = split(w)
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    region_pop: list[dict[int, int]] = [defaultdict(int) for _ in REGIONS]
    for u, j, kind, _ in s.train:
        if kind == "follow":
            continue
        c = counts[j]
        c[{"like": 0, "share": 1, "complete": 2}[kind]] += 1
        region_pop[w.user_region[u]][j] += 1
    catalog = SimCatalog(w, {j: (c[0], c[1], c[2]) for j, c in counts.items()})
    published = [j for j in range(w.n_videos) if w.published[j] <= 0]

    # per-region model and pools, from that region's users' records only (public counts global)
    rows = [
        (r.id, r.sound_id, r.like_count, r.comment_count, r.share_count, r.view_count,
         r.published_at)
        for r in catalog.rows.values()
    ]  # fmt: skip
    tag_pairs = [(t, i) for i, ts in catalog.tag_map.items() for t in ts]
    explore = sorted(
        (r for r in catalog.rows.values() if r.published_at >= NOW - 14 * DAY),
        key=lambda r: (r.view_count, -r.published_at.timestamp()),
    )[:500]
    loaded: dict[int, tuple[ForYouModel, Pools]] = {}
    t0 = time.perf_counter()
    for r, name in enumerate(REGIONS):
        train_rows = [
            (f"u{u}", vid(j), EVENT_WEIGHTS[kind])
            for u, j, kind, _ in s.train
            if kind != "follow" and w.user_region[u] == r
        ]
        items = fit_item_model(interactions_from(train_rows), seed=seed)
        trend: dict[str, float] = defaultdict(float)
        for u, j, kind, t in s.train:
            if w.user_region[u] != r or kind == "follow":
                continue
            if t >= -2:
                trend[vid(j)] += {"complete": 2.0, "like": 4.0, "share": 6.0}[kind]
        top = dict(sorted(trend.items(), key=lambda kv: -kv[1])[:500])
        hashtags, sounds, popular = rank_pools(rows, tag_pairs, top, NOW)
        pools = Pools(merge_trending(top, popular), {}, [x.id for x in explore], hashtags, sounds)
        loaded[r] = (ForYouModel(name, NOW, items, pools), pools)
    fit_s = time.perf_counter() - t0

    by_user: dict[int, list[tuple[str, str, datetime]]] = defaultdict(list)
    for u, j, kind, t in s.train:
        if kind != "follow":
            by_user[u].append((vid(j), kind, NOW + timedelta(days=t)))
    for mine in by_user.values():
        mine.sort(key=lambda p: p[2], reverse=True)
    users = [u for u in s.held_out if s.seen.get(u)]
    rng = np.random.default_rng(seed + 1)
    if len(users) > 1500:
        users = sorted(rng.choice(users, 1500, replace=False).tolist())
    pop_global = sorted(counts, key=lambda j: -sum(counts[j]))
    pop_region = [sorted(p, key=lambda j: -p[j]) for p in region_pop]
    index = {vid(j): j for j in range(w.n_videos)}

    methods = [
        "For You",
        "For You without exploration",
        "ALS alone",
        "Popularity (region)",
        "Popularity (global)",
        "Random",
    ]
    recall: dict[str, list[float]] = {m: [] for m in methods}
    ndcg: dict[str, list[float]] = {m: [] for m in methods}
    t_rank = 0.0
    for n, u in enumerate(users):
        r = int(w.user_region[u])
        model, pools = loaded[r]
        seen = s.seen.get(u, set())
        positives = by_user.get(u, [])[:200]
        state = ViewerState(
            follows={f"c{c}" for c in s.follows.get(u, set())},
            finished={vid(j) for j in seen},
        )
        t1 = time.perf_counter()
        queue = rank_session(
            catalog, [(model, pools)], positives=positives, state=state,
            viewer_id=f"u{u}", seed=seed + n, now=NOW,
        )  # fmt: skip
        no_explore = Queue(list(queue.main), [])
        foryou = [index[c.video_id] for c in take(queue, K, lambda c: True)]
        t_rank += time.perf_counter() - t1
        plain = [index[c.video_id] for c in take(no_explore, K, lambda c: True)]
        als = _als_top(model, positives, seen, index)
        lists = {
            "For You": foryou,
            "For You without exploration": plain,
            "ALS alone": als,
            "Popularity (region)": [j for j in pop_region[r] if j not in seen][:K],
            "Popularity (global)": [j for j in pop_global if j not in seen][:K],
            "Random": _random_unseen(rng, published, seen),
        }
        held = s.held_out[u]
        for m, ranked in lists.items():
            rc, nd = _metrics(ranked, held)
            recall[m].append(rc)
            ndcg[m].append(nd)
    ctx.log(
        f"  {len(users)} users evaluated; ALS fits {fit_s:.1f} s; For You ranking "
        f"{t_rank / max(len(users), 1) * 1000:.1f} ms per session"
    )
    out = []
    for m in methods:
        out.append([m, f"{np.mean(recall[m]):.4f}", f"{np.mean(ndcg[m]):.4f}"])
    return out


def _als_top(model: Any, positives: list[Any], seen: set[int], index: dict[str, int]) -> list[int]:
    items = model.items
    known = [p[0] for p in positives if p[0] in items.index]
    conf: dict[str, float] = defaultdict(lambda: 1.0)
    for v, kind, _ in positives:
        conf[v] += {"share": 3.0, "like": 2.0, "save": 2.0, "complete": 1.0}[kind]
    known = list(dict.fromkeys(known))
    vector = items.user_vector([items.index[v] for v in known], [conf[v] for v in known])
    if vector is None:
        return []
    scores = items.factors.astype(np.float64) @ vector
    out = []
    for i in np.argsort(-scores):
        j = index[items.item_ids[int(i)]]
        if j not in seen:
            out.append(j)
            if len(out) == K:
                break
    return out


def _random_unseen(rng: np.random.Generator, published: list[int], seen: set[int]) -> list[int]:
    out: list[int] = []
    while len(out) < K:
        j = published[int(rng.integers(0, len(published)))]
        if j not in seen and j not in out:
            out.append(j)
    return out


def _metrics(ranked: list[int], held: set[int]) -> tuple[float, float]:
    hits = [1.0 if j in held else 0.0 for j in ranked[:K]]
    ideal = min(K, len(held))
    recall = sum(hits) / ideal
    dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
    idcg = sum(1 / math.log2(i + 2) for i in range(ideal))
    return recall, dcg / idcg


def run(ctx: Context) -> Outcome:
    seed = 20260601
    n_users, n_videos = (1500, 800) if ctx.quick else (6000, 3000)
    ctx.log(f"simulating {n_users} users, {n_videos} videos (seed {seed}) …")
    t0 = time.perf_counter()
    w = simulate(n_users, n_videos, seed)
    sim_s = time.perf_counter() - t0
    s = split(w)
    kinds: dict[str, int] = defaultdict(int)
    for _, _, kind, t in w.events:
        kinds[("train " if t < 0 else "held-out ") + kind] += 1
    ctx.log(f"  {len(w.events):,} events in {sim_s:.0f} s: {dict(kinds)}")
    table = evaluate(ctx, w, seed)
    scores = {row[0]: (float(row[1]), float(row[2])) for row in table}
    fy, pop = scores["For You"], scores["Popularity (region)"]
    pop_g = scores["Popularity (global)"]
    failures = []
    if not (fy[0] > max(pop[0], pop_g[0]) and fy[1] > max(pop[1], pop_g[1])):
        failures.append(
            f"For You (recall@10 {fy[0]:.4f}, NDCG@10 {fy[1]:.4f}) does not beat popularity "
            f"(region {pop[0]:.4f}/{pop[1]:.4f}, global {pop_g[0]:.4f}/{pop_g[1]:.4f})"
        )
    users_eval = sum(1 for u in s.held_out if s.seen.get(u))
    events_md = md_table(
        ["events", "before the split (train)", "after (held out if new to the user)"],
        [
            [k, f"{kinds.get('train ' + k, 0):,}", f"{kinds.get('held-out ' + k, 0):,}"]
            for k in ("complete", "like", "share", "follow")
        ],
    )
    md = f"""
**Recall@10 and NDCG@10 on held-out interactions** ({n_users:,} simulated users in two regions,
{n_videos:,} videos, seed {seed}; {min(users_eval, 1500):,} users evaluated — those with a training
positive and a held-out one, at most 1,500):

{md_table(["method", "recall@10", "NDCG@10"], table)}

For You {"beats" if not failures else "does NOT beat"} both popularity baselines on both metrics
(target: beat popularity). Its first page spends 2 of its 10 slots on exploration (fresh,
little-seen videos) by design; the row without exploration shows what those slots cost here.

{events_md}

**The simulator's assumptions** (the module docstring of `bench/recsys.py` has the details):
16 topics; two regions whose topic tastes follow a Zipf law in different orders; creators with a
home topic (85% of their videos on it); videos with two hashtags (topic and sub-topic), a sound
(mostly of their topic), quality ~ Beta(2, 3), virality ~ LogNormal(0, 1) and a publication date;
users with Dirichlet(0.25) interests mixed 70/30 with their region's taste and 20–300 impressions;
the existing platform shows 40% popular, 40% on-interest and 20% random videos, all with a 5-day
half-life of novelty; the watched fraction grows with interest and quality (≥ 90% is a
completion), likes follow completions, shares follow likes, two liked videos of a creator make a
follow. The split is temporal: 14 days of training events, the next 3.5 days held out.

How: the For You row runs the production functions (`fit_item_model`, `rank_pools`,
`rank_session`, `take`) with one ALS model per region trained only on that region's users, the
public counts of the whole catalogue as priors, and the region's last two days as its trending
list. Baselines and For You exclude every video the user interacted with in training.
"""
    return Outcome(md, failures)
