"""The For You feed: candidates from several sources, ranked by predicted engagement, served in
pages with 20% exploration, the diversity rule, and the viewer's blocks, mutes, "not interested",
finished videos and visibility checked afresh on every page.

A session's ranked list is built once (on its first page) and cached in process memory for a short
time under (viewer, seed); the cursor carries the seed, the page number and a digest of every
video the session has served, so a later page never repeats one even when another web process,
which rebuilt the list from the cursor, serves it. See docs/feed.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import threading
import time
import weakref
from collections import ChainMap, OrderedDict, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select

from reelm.accounts.service import CurrentUser
from reelm.config import Settings
from reelm.db import utcnow
from reelm.errors import InvalidInput
from reelm.feed import candidates, ranking, reads
from reelm.feed.model import ForYouModel, ItemModel, Pools, compute_pools, load_model
from reelm.feed.ranking import Candidate, Queue
from reelm.feed.schemas import FeedItem, FeedPage, Interest, decode_cursor, encode_cursor
from reelm.media.models import PublishedVideo, VideoTag
from reelm.media.schemas import PublicVideoRead
from reelm.media.service import media_urls
from reelm.residency.store import Platform
from reelm.social.service import Person
from reelm.sql import chunks, qmarks, read_rows

MAX_PAGE = 50
FINISHED_DAYS = 7
SESSION_SECONDS = 15 * 60  # how long a session's ranked list is kept
MAX_SESSIONS = 20_000  # per process; the least recently used go first
SEEN_BYTES = 3  # a served video's digest in the cursor
SEEN_MAX = 200  # the most recent served videos a cursor remembers (a cursor of ~1 kB)
UNTRAINED_POOL_SECONDS = 30.0
MAIN_SIZE = 300
EXPLORE_SIZE = 100
POSITIVES = 200  # the viewer's most recent positive records read to build a session
# how many candidates each source contributes to a session (a session serves ~50 items; these
# bound the cost of building one, about 250 candidates)
TOP_TAGS, PER_TAG, TOP_SOUNDS, PER_SOUND = 6, 15, 2, 12
NEIGHBOUR_SEEDS, NEIGHBOURS_EACH = 20, 6
TRENDING_TAKE, FOLLOWING_TAKE, FRESH_TAKE, EXPLORE_TAKE = 60, 40, 30, 50
KIND_WEIGHT = {"share": 3.0, "like": 2.0, "save": 2.0, "complete": 1.0}
KIND_VERB = {"share": "shared", "like": "liked", "save": "saved", "complete": "watched"}
INTEREST_WEIGHT = 1.5
AFFINITY_HALF_LIFE_DAYS = 14.0
FRESH_HALF_LIFE_HOURS = 48.0

VIDEO_COLUMNS = (
    PublishedVideo.id, PublishedVideo.creator_id, PublishedVideo.creator_handle,
    PublishedVideo.region, PublishedVideo.caption, PublishedVideo.visibility,
    PublishedVideo.allow_comments, PublishedVideo.sound_id, PublishedVideo.duration_s,
    PublishedVideo.width, PublishedVideo.height, PublishedVideo.published_at,
    PublishedVideo.like_count, PublishedVideo.comment_count, PublishedVideo.share_count,
    PublishedVideo.view_count,
)  # fmt: skip


VideoRow = Any  # a result row of VIDEO_COLUMNS (attributes named like PublishedVideo's)


# ---- what is read about the viewer, in their own region ---------------------------------------


@dataclass
class ViewerState:
    """The viewer's own records that every page must respect, read fresh for each page."""

    follows: set[str] = field(default_factory=set)  # active follows only
    hidden: set[str] = field(default_factory=set)  # blocked, muted, or blocking the viewer
    not_interested: set[str] = field(default_factory=set)
    finished: set[str] = field(default_factory=set)  # completed in the last 7 days
    interests: list[str] = field(default_factory=list)


VIEWER_STATE_SQL = """
SELECT 'f', followee_id FROM follows WHERE owner_id = ? AND state = 'active'
UNION ALL SELECT 'h', target_id FROM blocks WHERE owner_id = ?
UNION ALL SELECT 'h', owner_id FROM blocks WHERE target_id = ?
UNION ALL SELECT 'h', target_id FROM mutes WHERE owner_id = ?
UNION ALL SELECT 'n', video_id FROM not_interested WHERE owner_id = ?
UNION ALL SELECT 'c', video_id FROM watch_events
    WHERE owner_id = ? AND completed AND created_at >= ?
UNION ALL SELECT 'i', interests FROM accounts WHERE id = ?
"""
BLOCKED_BY_SQL = "SELECT owner_id FROM blocks WHERE target_id = ?"
POSITIVES_SQL = f"""
SELECT video_id, kind, created_at FROM (
    SELECT video_id, 'like' AS kind, created_at FROM likes WHERE owner_id = ?
    UNION ALL SELECT video_id, 'save', created_at FROM saves WHERE owner_id = ?
    UNION ALL SELECT video_id, 'share', created_at FROM shares WHERE owner_id = ?
    UNION ALL SELECT video_id, 'complete', created_at FROM watch_events
        WHERE owner_id = ? AND completed
) AS records ORDER BY created_at DESC LIMIT {POSITIVES}
"""


def viewer_state(platform: Platform, me: Person) -> ViewerState:
    """One query in the viewer's region, and one per other region for who blocked the viewer
    (those regions answer with ids only)."""
    v = me.user_id
    store = platform.region(me.region)
    since = reads.when(store.dialect, utcnow() - timedelta(days=FINISHED_DAYS))
    state = ViewerState()
    sets = {"f": state.follows, "h": state.hidden, "n": state.not_interested, "c": state.finished}
    with store.unchecked_connection(reason="For You: the viewer's own state (read)") as conn:
        rows = read_rows(conn, VIEWER_STATE_SQL, (v, v, v, v, v, v, since, v))
    for kind, value in rows:
        if kind == "i":
            state.interests = json.loads(value) if value else []
        else:
            sets[kind].add(value)
    for name, other in platform.regions.items():
        if name != me.region:
            with other.unchecked_connection(reason="For You: who blocked the viewer") as conn:
                state.hidden.update(r[0] for r in read_rows(conn, BLOCKED_BY_SQL, (v,)))
    return state


def viewer_positives(platform: Platform, me: Person) -> list[tuple[str, str, datetime]]:
    """(video, kind, when) of the viewer's most recent likes, saves, shares and completions."""
    v = me.user_id
    store = platform.region(me.region)
    with store.unchecked_connection(reason="For You: the viewer's positives (read)") as conn:
        rows = read_rows(conn, POSITIVES_SQL, (v, v, v, v))
    return [(vid, kind, reads.timestamp(at)) for vid, kind, at in rows]


# ---- what is read from the PublicCatalog ------------------------------------------------------


def fetch_videos(platform: Platform, ids: Iterable[str]) -> dict[str, VideoRow]:
    wanted = list(dict.fromkeys(ids))
    out: dict[str, VideoRow] = {}
    engine = platform.global_store.engine
    for chunk in chunks(wanted, 500):
        sql = (
            f"SELECT {reads.CATALOG_COLUMNS} FROM catalog_videos WHERE id IN ({qmarks(len(chunk))})"
        )
        for row in reads.catalog_rows(read_rows(engine, sql, chunk)):
            out[row.id] = row
    return out


def fetch_tags(platform: Platform, ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    if not ids:
        return out
    with platform.global_store.session() as g:
        for chunk in chunks(ids, 500):
            rows = g.execute(
                select(VideoTag.video_id, VideoTag.value).where(
                    VideoTag.kind == "hashtag", VideoTag.video_id.in_(chunk)
                )
            )
            for vid, tag in rows:
                out[vid].append(tag)
    return out


def followed_videos(platform: Platform, follows: set[str]) -> list[VideoRow]:
    creators = list(follows)[:5000]
    sql = (
        f"SELECT {reads.CATALOG_COLUMNS} FROM catalog_videos "
        f"WHERE creator_id IN ({qmarks(len(creators))}) "
        f"ORDER BY published_at DESC LIMIT {FOLLOWING_TAKE}"
    )
    return list(reads.catalog_rows(read_rows(platform.global_store.engine, sql, creators)))


def followed_since(platform: Platform, follows: set[str], after: datetime) -> list[VideoRow]:
    engine = platform.global_store.engine
    creators = list(follows)[:5000]
    sql = (
        f"SELECT {reads.CATALOG_COLUMNS} FROM catalog_videos "
        f"WHERE published_at > ? AND creator_id IN ({qmarks(len(creators))}) "
        f"ORDER BY published_at DESC LIMIT {FOLLOWING_TAKE}"
    )
    params = [reads.when(engine.dialect, after), *creators]
    return list(reads.catalog_rows(read_rows(engine, sql, params)))


def fresh_public_videos(platform: Platform, after: datetime) -> list[VideoRow]:
    """Public videos published after the last training, so they can be discovered at once."""
    engine = platform.global_store.engine
    sql = (
        f"SELECT {reads.CATALOG_COLUMNS} FROM catalog_videos "
        "WHERE visibility = 'public' AND published_at > ? "
        f"ORDER BY published_at DESC LIMIT {FRESH_TAKE}"
    )
    return list(reads.catalog_rows(read_rows(engine, sql, (reads.when(engine.dialect, after),))))


def visible(row: VideoRow | None, state: ViewerState | None, viewer_id: str | None) -> bool:
    """May this catalogue row be shown to the viewer? Private videos are never in the catalogue;
    followers-only ones only to active followers; nothing of a hidden creator."""
    if row is None:
        return False
    if state is None:
        return bool(row.visibility == "public")
    if row.creator_id == viewer_id or row.creator_id in state.hidden:
        return False
    if row.id in state.not_interested or row.id in state.finished:
        return False
    return row.visibility == "public" or (
        row.visibility == "followers" and row.creator_id in state.follows
    )


def allowed(c: Candidate, state: ViewerState | None, viewer_id: str | None) -> bool:
    """`visible` on what the session knows of a candidate (its catalogue row is checked again,
    fresh, once the candidate is picked for a page)."""
    if state is None:
        return not c.followers_only
    if c.creator_id == viewer_id or c.creator_id in state.hidden:
        return False
    if c.video_id in state.not_interested or c.video_id in state.finished:
        return False
    return not c.followers_only or c.creator_id in state.follows


# ---- building a session's ranked list ----------------------------------------------------------


@dataclass
class Offer:
    source: int
    reason: str


@dataclass
class Build:
    """Candidates gathered for one session before they are scored."""

    main: dict[str, Offer] = field(default_factory=dict)
    explore: dict[str, Offer] = field(default_factory=dict)
    rows: dict[str, VideoRow] = field(default_factory=dict)

    def offer(self, video_id: str, source: int, reason: str) -> None:
        """A candidate for the main list. Trending does not take videos from the exploration
        pool (so exploration still has something to show on a small catalogue); a personal
        source (follows, co-engagement, hashtags, sounds) does."""
        if video_id in self.explore:
            if source == ranking.TRENDING:
                return
            del self.explore[video_id]
        o = self.main.get(video_id)
        if o is None:
            self.main[video_id] = Offer(source, reason)
        elif source < o.source:
            o.source, o.reason = source, reason


def _decay(age: timedelta, half_life_days: float) -> float:
    return math.exp(-math.log(2) * max(age.total_seconds(), 0) / 86400 / half_life_days)


def _pools(platform: Platform, region: str) -> tuple[ForYouModel | None, Pools]:
    model = load_model(platform.region(region))
    if model is not None:
        return model, model.pools
    # before the region's first training: the same pools, computed here and kept for
    # UNTRAINED_POOL_SECONDS (computing them reads the whole catalogue)
    cache = _cache(platform)
    with cache.pools_lock:
        kept = cache.pools.get(region)
        if kept is None or time.monotonic() - kept[0] > UNTRAINED_POOL_SECONDS:
            kept = cache.pools[region] = (time.monotonic(), compute_pools(platform, region))
    return None, kept[1]


class CatalogReader(Protocol):
    """The catalogue reads a session build needs: the PublicCatalog in production, an in-memory
    catalogue in the offline evaluation (bench/recsys.py), so both run the same ranking code."""

    def videos(self, ids: Iterable[str]) -> dict[str, VideoRow]: ...

    def tags(self, ids: Sequence[str]) -> dict[str, list[str]]: ...

    def followed(self, creators: set[str]) -> list[VideoRow]: ...

    def fresh(self, after: datetime) -> list[str]: ...


class DbCatalog:
    """The catalogue as the regions' pools copied it at training time, with the PublicCatalog
    itself for what they do not hold (videos newer than the training, followed creators' latest
    videos, old videos the viewer engaged with)."""

    def __init__(
        self, platform: Platform, pools: list[Pools], trained: list[datetime] | None = None
    ) -> None:
        self.platform = platform
        self.pools = pools
        self.trained = trained or []  # when each region's copy was taken (none: untrained)
        # the regions' copies, looked up in turn (not merged: they hold the whole catalogue)
        self.table: Mapping[str, Any] = (
            pools[0].videos if len(pools) == 1 else ChainMap(*(p.videos for p in pools))
        )
        self.table_tags: Mapping[str, list[str]] = (
            pools[0].video_tags if len(pools) == 1 else ChainMap(*(p.video_tags for p in pools))
        )
        self.extra: dict[str, VideoRow] = {}

    def videos(self, ids: Iterable[str]) -> dict[str, VideoRow]:
        out: dict[str, VideoRow] = {}
        missing = []
        for vid in ids:
            row = self.table.get(vid) or self.extra.get(vid)
            if row is None:
                missing.append(vid)
            else:
                out[vid] = row
        if missing:
            found = fetch_videos(self.platform, missing)
            self.extra.update(found)
            out.update(found)
        return out

    def tags(self, ids: Sequence[str]) -> dict[str, list[str]]:
        out = {vid: self.table_tags[vid] for vid in ids if vid in self.table_tags}
        missing = [vid for vid in ids if vid not in self.table]
        if missing:
            out.update(fetch_tags(self.platform, missing))
        return out

    def followed(self, creators: set[str]) -> list[VideoRow]:
        """The newest videos of followed creators: those of the training's copy, and those
        published since, read from the catalogue (an index range on `published_at`)."""
        if not self.trained:
            rows = followed_videos(self.platform, creators)
        else:
            rows = followed_since(self.platform, creators, min(self.trained))
            for c in creators:
                for p in self.pools:
                    rows += [p.videos[v] for v in p.by_creator.get(c, ()) if v in p.videos]
            rows.sort(key=lambda r: r.published_at, reverse=True)
            rows = rows[:FOLLOWING_TAKE]
        self.extra.update((r.id, r) for r in rows)
        return rows

    def fresh(self, after: datetime) -> list[str]:
        rows = fresh_public_videos(self.platform, after)
        self.extra.update((r.id, r) for r in rows)
        return [r.id for r in rows]


def build_session(
    platform: Platform,
    me: Person | None,
    state: ViewerState | None,
    seed: int,
    *,
    now: datetime,
) -> Queue:
    """Gather and rank a session's candidates: the viewer's own region's model and pools (every
    region's trending pools for an anonymous viewer). `now` is the session's clock (freshness
    and age features): a session rebuilt from its cursor by another process, or after its cache
    entry was dropped, must rank with the clock it was first built with, or near-ties reorder
    and a later page repeats a video an earlier one served."""
    regions = [me.region] if me is not None else list(platform.regions)
    loaded = [_pools(platform, r) for r in regions]
    positives = viewer_positives(platform, me) if me is not None else []
    return rank_session(
        DbCatalog(
            platform,
            [pools for _, pools in loaded],
            [m.trained_at for m, _ in loaded if m is not None]
            if all(m is not None for m, _ in loaded)
            else None,
        ),
        loaded,
        positives=positives,
        state=state,
        viewer_id=me.user_id if me is not None else None,
        seed=seed,
        now=now,
    )


def stored_session(
    platform: Platform,
    me: Person,
    state: ViewerState,
    seed: int,
    *,
    now: datetime,
    max_age: timedelta,
) -> Queue | None:
    """The session's ranked lists from the viewer's stored candidate set (feed/precompute.py),
    or None when there is none, it is older than `max_age`, or another region's model ranked it
    (then the session is built live, `build_session`).

    The stored lists get this session's jitter; what arrived after the set was built is added
    and scored like a live build scores it: videos of followed creators published since (and the
    newest ones of creators followed since), and public videos published since. Every candidate
    goes through `visible` with the viewer's state of now, and again on every page."""
    cs = candidates.load(platform.region(me.region), me.user_id)
    if cs is None or cs.region != me.region or now - cs.built_at > max_age:
        return None
    model, pools = _pools(platform, me.region)
    if model is None:
        return None
    loaded: list[tuple[ForYouModel | None, Pools]] = [(model, pools)]
    catalog = DbCatalog(platform, [pools], [cs.built_at])
    stored = {vid for vid, _, _, _ in cs.main} | {vid for vid, _, _ in cs.explore}
    b = Build()
    for vid in catalog.fresh(cs.built_at):
        b.explore.setdefault(vid, Offer(ranking.EXPLORE, "New creators to discover"))
    followed = followed_since(platform, state.follows, cs.built_at) if state.follows else []
    for creator in state.follows - cs.follows:
        followed += catalog.videos(pools.by_creator.get(creator, ())).values()
    for row in followed:
        b.rows[row.id] = row
        b.offer(row.id, ranking.FOLLOWING, f"You follow @{row.creator_handle}")
    for vid in stored:
        b.main.pop(vid, None)
        b.explore.pop(vid, None)
    new_main, new_explore = _visible_candidates(b, catalog, cs.seen, state, me.user_id)
    _features(new_main + new_explore, b.rows, _completion(loaded), now)
    taste = Taste(
        tag_weight=defaultdict(float, cs.tag_weight),
        sound_weight=defaultdict(float, cs.sound_weight),
        user_vector=(
            np.asarray(cs.user_vector, dtype=np.float64)
            if cs.user_vector is not None and cs.model_trained_at == model.trained_at
            else None
        ),
    )
    tags = catalog.tags([c.video_id for c in new_main]) if taste.tag_weight else {}
    _personal_scores(new_main, taste, tags, _trend(loaded), model, state)
    ranking.score(new_main, seed)
    ranking.explore_score(new_explore, seed)

    rows = catalog.videos(stored)
    w = ranking.WEIGHTS.jitter
    main, explore = new_main, new_explore
    follow = ranking.WEIGHTS.follow
    for vid, source, reason, base in cs.main:
        c = _stored_candidate(rows.get(vid), vid, source, reason, state, me.user_id)
        if c is None:
            continue
        followed_now, followed_then = c.creator_id in state.follows, c.creator_id in cs.follows
        if source == ranking.FOLLOWING and not followed_now:
            continue  # offered only because of a follow that has ended
        c.score = base + w * ranking.jitter(seed, vid) + follow * (followed_now - followed_then)
        main.append(c)
    for vid, reason, base in cs.explore:
        c = _stored_candidate(rows.get(vid), vid, ranking.EXPLORE, reason, state, me.user_id)
        if c is not None:
            c.score = base + ranking.EXPLORE_JITTER * ranking.jitter(seed, vid)
            explore.append(c)
    main.sort(key=lambda c: -c.score)
    explore.sort(key=lambda c: -c.score)
    return Queue(main[:MAIN_SIZE], explore[:EXPLORE_SIZE])


def _stored_candidate(
    row: VideoRow | None, vid: str, source: int, reason: str, state: ViewerState, viewer: str
) -> Candidate | None:
    if row is None or not visible(row, state, viewer):
        return None
    c = Candidate(vid, row.creator_id, row.sound_id, source, reason)
    c.followers_only = row.visibility != "public"
    return c


@dataclass
class Taste:
    """What the viewer's own records say they like, for one session (empty when anonymous)."""

    tag_weight: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    tag_reason: dict[str, tuple[float, str, int]] = field(default_factory=dict)
    sound_weight: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    user_vector: npt.NDArray[np.float64] | None = None
    seen: set[str] = field(default_factory=set)
    """Liked, saved or shared videos: not shown again (finished ones are, after 7 days)."""


def rank_session(
    catalog: CatalogReader,
    loaded: list[tuple[ForYouModel | None, Pools]],
    *,
    positives: list[tuple[str, str, datetime]],
    state: ViewerState | None,
    viewer_id: str | None,
    seed: int,
    now: datetime,
) -> Queue:
    """The ranked main and exploration queues of one session. `loaded[0]` is the viewer's own
    region (the only one whose model may score them); `state` None means anonymous."""
    main, explore, _ = rank_parts(
        catalog, loaded, positives=positives, state=state, viewer_id=viewer_id, seed=seed, now=now
    )
    return Queue(main, explore)


def rank_parts(
    catalog: CatalogReader,
    loaded: list[tuple[ForYouModel | None, Pools]],
    *,
    positives: list[tuple[str, str, datetime]],
    state: ViewerState | None,
    viewer_id: str | None,
    seed: int,
    now: datetime,
) -> tuple[list[Candidate], list[Candidate], Taste]:
    """`rank_session`'s lists, best first, and the viewer's taste they were scored with.

    Phases: offer the exploration pool, the viewer's own sources (follows, co-engagement,
    hashtags, sounds) and trending; keep the offers the viewer may see; score and sort."""
    b = Build()
    model = loaded[0][0] if state is not None else None
    _offer_exploration(b, catalog, loaded, seed=seed, now=now)
    taste = Taste()
    if state is not None:
        taste = _offer_personal(b, catalog, loaded[0][1], model, positives, state, now=now)
    trend = _offer_trending(b, loaded, anonymous=state is None)
    main, explore = _visible_candidates(b, catalog, taste.seen, state, viewer_id)
    _features(main + explore, b.rows, _completion(loaded), now)
    tags = catalog.tags([c.video_id for c in main]) if taste.tag_weight else {}
    _personal_scores(main, taste, tags, trend, model, state)
    ranking.score(main, seed)
    ranking.explore_score(explore, seed)
    main.sort(key=lambda c: -c.score)
    explore.sort(key=lambda c: -c.score)
    return main[:MAIN_SIZE], explore[:EXPLORE_SIZE], taste


def _offer_exploration(
    b: Build,
    catalog: CatalogReader,
    loaded: list[tuple[ForYouModel | None, Pools]],
    *,
    seed: int,
    now: datetime,
) -> None:
    """Videos published since the last training, and a sample of each region's exploration
    pool (a different sample in each session)."""
    trained = min(
        (m.trained_at for m, _ in loaded if m is not None), default=now - timedelta(days=7)
    )
    explore_ids = catalog.fresh(trained)
    for _, pools in loaded:
        rng = random.Random(seed)
        explore_ids += rng.sample(pools.explore, min(EXPLORE_TAKE, len(pools.explore)))
    for vid in explore_ids:
        b.explore.setdefault(vid, Offer(ranking.EXPLORE, "New creators to discover"))


def _offer_personal(
    b: Build,
    catalog: CatalogReader,
    pools: Pools,
    model: ForYouModel | None,
    positives: list[tuple[str, str, datetime]],
    state: ViewerState,
    *,
    now: datetime,
) -> Taste:
    """The viewer's own sources, read from their follows and positives: followed creators,
    videos engaged with alongside theirs (the region's model), their hashtags and sounds."""
    if state.follows:
        for followed in catalog.followed(state.follows):
            b.rows[followed.id] = followed
            b.offer(followed.id, ranking.FOLLOWING, f"You follow @{followed.creator_handle}")
    taste = Taste(seen={vid for vid, kind, _ in positives if kind != "complete"})
    pos_ids = list(dict.fromkeys(vid for vid, _, _ in positives))
    pos_rows = catalog.videos(pos_ids)
    confidence = _weigh_positives(taste, positives, pos_rows, catalog.tags(pos_ids), now=now)
    for tag in state.interests:
        taste.tag_weight[tag] += INTEREST_WEIGHT
        taste.tag_reason.setdefault(tag, (0.0, f"Because you picked #{tag}", ranking.INTEREST))
    if model is not None and model.items is not None:
        taste.user_vector = _offer_neighbours(b, model.items, pos_ids, pos_rows, confidence)
    for tag in sorted(taste.tag_weight, key=lambda t: -taste.tag_weight[t])[:TOP_TAGS]:
        _, reason, source = taste.tag_reason[tag]
        for vid in pools.hashtags.get(tag, ())[:PER_TAG]:
            b.offer(vid, source, reason)
    for sound in sorted(taste.sound_weight, key=lambda s: -taste.sound_weight[s])[:TOP_SOUNDS]:
        for vid in pools.sounds.get(sound, ())[:PER_SOUND]:
            b.offer(vid, ranking.SOUND, "Uses a sound you like")
    return taste


def _weigh_positives(
    taste: Taste,
    positives: list[tuple[str, str, datetime]],
    pos_rows: dict[str, VideoRow],
    pos_tags: dict[str, list[str]],
    *,
    now: datetime,
) -> defaultdict[str, float]:
    """Hashtag and sound weights from the viewer's positives (decayed with age), each tag's
    reason from its strongest kind; returns each video's confidence for the model."""
    confidence: defaultdict[str, float] = defaultdict(lambda: 1.0)
    for vid, kind, at in positives:
        w = KIND_WEIGHT[kind] * _decay(now - at, AFFINITY_HALF_LIFE_DAYS)
        confidence[vid] += KIND_WEIGHT[kind]
        for tag in pos_tags.get(vid, ()):
            taste.tag_weight[tag] += w
            best = taste.tag_reason.get(tag)
            if best is None or KIND_WEIGHT[kind] > best[0]:
                taste.tag_reason[tag] = (
                    KIND_WEIGHT[kind],
                    f"Because you {KIND_VERB[kind]} #{tag}",
                    ranking.HASHTAG,
                )
        pos = pos_rows.get(vid)
        if pos is not None and pos.sound_id is not None:
            taste.sound_weight[pos.sound_id] += w
    return confidence


def _offer_neighbours(
    b: Build,
    items: ItemModel,
    pos_ids: list[str],
    pos_rows: dict[str, VideoRow],
    confidence: Mapping[str, float],
) -> npt.NDArray[np.float64] | None:
    """Fold the viewer into the model; offer the neighbours of their first positives. Returns
    the viewer's vector (None when the model knows none of their videos)."""
    known = [vid for vid in pos_ids if vid in items.index]
    user_vector = items.user_vector([items.index[v] for v in known], [confidence[v] for v in known])
    for vid in known[:NEIGHBOUR_SEEDS]:
        pos = pos_rows.get(vid)
        who = f"@{pos.creator_handle}'s video" if pos is not None else "a video you liked"
        reason = f"Viewers who liked {who} also liked this"
        for j in items.neighbours[items.index[vid]][:NEIGHBOURS_EACH]:
            b.offer(items.item_ids[int(j)], ranking.NEIGHBOUR, reason)
    return user_vector


def _trend(loaded: list[tuple[ForYouModel | None, Pools]]) -> dict[str, float]:
    """Each region's top trending videos, each one's trend relative to its region's top."""
    trend: dict[str, float] = {}
    for _, pools in loaded:
        top = max(pools.trending.values(), default=1.0) or 1.0
        for vid, t in list(pools.trending.items())[:TRENDING_TAKE]:
            trend[vid] = max(trend.get(vid, 0.0), t / top)
    return trend


def _offer_trending(
    b: Build, loaded: list[tuple[ForYouModel | None, Pools]], *, anonymous: bool
) -> dict[str, float]:
    """Each region's trending videos; returns each one's trend relative to its region's top."""
    trend = _trend(loaded)
    popular = "Popular on reelm" if anonymous else "Popular in your region"
    for vid in trend:
        b.offer(vid, ranking.TRENDING, popular)
    return trend


def _visible_candidates(
    b: Build,
    catalog: CatalogReader,
    seen: set[str],
    state: ViewerState | None,
    viewer_id: str | None,
) -> tuple[list[Candidate], list[Candidate]]:
    """The main and exploration offers the viewer may see and has not engaged with, as
    candidates (their catalogue rows read now)."""
    wanted = [v for v in (*b.main, *b.explore) if v not in b.rows and v not in seen]
    b.rows.update(catalog.videos(wanted))

    def candidates(offers: dict[str, Offer]) -> list[Candidate]:
        out = []
        for vid, o in offers.items():
            row = b.rows.get(vid)
            if row is None or vid in seen or not visible(row, state, viewer_id):
                continue
            c = Candidate(vid, row.creator_id, row.sound_id, o.source, o.reason)
            c.followers_only = row.visibility != "public"
            out.append(c)
        return out

    return candidates(b.main), candidates(b.explore)


def _completion(loaded: list[tuple[ForYouModel | None, Pools]]) -> dict[str, float]:
    completion: dict[str, float] = {}
    for _, pools in loaded:
        completion.update(pools.completion)
    return completion


def _personal_scores(
    main: list[Candidate],
    taste: Taste,
    tags: dict[str, list[str]],
    trend: dict[str, float],
    model: ForYouModel | None,
    state: ViewerState | None,
) -> None:
    """Each main candidate's model, hashtag, sound, follow and trend features (0..1)."""
    top_tag = max(taste.tag_weight.values(), default=1.0) or 1.0
    top_sound = max(taste.sound_weight.values(), default=1.0) or 1.0
    model_scores: dict[str, float] = {}
    if taste.user_vector is not None and model is not None and model.items is not None:
        items = model.items
        in_model = [c.video_id for c in main if c.video_id in items.index]
        if in_model:
            s = items.scores(taste.user_vector, [items.index[v] for v in in_model])
            model_scores = dict(zip(in_model, np.clip(s, 0.0, 1.0).tolist(), strict=True))
    follows = state.follows if state is not None else set()
    for c in main:
        c.model = model_scores.get(c.video_id, 0.0)
        c.hashtag = max(
            (taste.tag_weight.get(t, 0.0) for t in tags.get(c.video_id, ())), default=0.0
        )
        c.hashtag /= top_tag
        c.sound = taste.sound_weight.get(c.sound_id, 0.0) / top_sound if c.sound_id else 0.0
        c.follow = 1.0 if c.creator_id in follows else 0.0
        c.trend = trend.get(c.video_id, 0.0)


def _features(
    cands: list[Candidate], rows: dict[str, VideoRow], completion: dict[str, float], now: datetime
) -> None:
    """Public-count prior (and the region's completion rate) as percentile ranks; freshness."""
    if not cands:
        return
    r = [rows[c.video_id] for c in cands]
    counts = np.array(
        [(x.like_count, x.comment_count, x.share_count, x.view_count) for x in r], dtype=np.float64
    )
    prior = ranking.percentile_rank(
        ranking.engagement_prior(counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3])
    )
    rates = np.array([completion.get(c.video_id, -1.0) for c in cands])
    if (rates >= 0).any():
        prior = 0.5 * prior + 0.5 * ranking.percentile_rank(rates)
    for c, x, p in zip(cands, r, prior.tolist(), strict=True):
        c.prior = p
        age_h = (now - x.published_at).total_seconds() / 3600
        c.fresh = math.exp(-math.log(2) * max(age_h, 0.0) / FRESH_HALF_LIFE_HOURS)


# ---- sessions and pages ----------------------------------------------------------------------


@dataclass
class FeedSession:
    queue: Queue
    served: dict[int, list[Candidate]] = field(default_factory=dict)  # by page number
    refused: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    used: float = field(default_factory=time.monotonic)


class SessionCache:
    """Sessions of one process, least recently used first out, each kept SESSION_SECONDS."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[str, int], FeedSession] = OrderedDict()
        self._lock = threading.Lock()
        self.pools: dict[str, tuple[float, Pools]] = {}  # regions without a trained model yet
        self.pools_lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> FeedSession | None:
        with self._lock:
            s = self._items.get(key)
            if s is None or time.monotonic() - s.used > SESSION_SECONDS:
                self._items.pop(key, None)
                return None
            s.used = time.monotonic()
            self._items.move_to_end(key)
            return s

    def put(self, key: tuple[str, int], session: FeedSession) -> FeedSession:
        with self._lock:
            existing = self._items.get(key)
            if existing is not None:
                return existing  # another request built it first
            self._items[key] = session
            while len(self._items) > MAX_SESSIONS:
                self._items.popitem(last=False)
            return session


_CACHES: weakref.WeakKeyDictionary[Platform, SessionCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _cache(platform: Platform) -> SessionCache:
    with _CACHES_LOCK:
        cache = _CACHES.get(platform)
        if cache is None:
            cache = _CACHES[platform] = SessionCache()
        return cache


def forget_sessions(platform: Platform) -> None:
    """Drop every cached session and untrained-region pool of this process (tests)."""
    with _CACHES_LOCK:
        _CACHES.pop(platform, None)


def _seen_digest(video_id: str) -> bytes:
    return hashlib.blake2b(video_id.encode(), digest_size=SEEN_BYTES).digest()


def _decode_seen(text: object) -> set[bytes]:
    if not isinstance(text, str):
        raise ValueError("seen")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return {raw[i : i + SEEN_BYTES] for i in range(0, len(raw), SEEN_BYTES)}


def _encode_seen(before: str, served: Iterable[Candidate]) -> str:
    """The cursor's memory of served videos: digests, oldest first, the last SEEN_MAX only."""
    raw = base64.urlsafe_b64decode(before + "=" * (-len(before) % 4)) if before else b""
    raw += b"".join(_seen_digest(c.video_id) for c in served)
    return base64.urlsafe_b64encode(raw[-SEEN_MAX * SEEN_BYTES :]).decode().rstrip("=")


def _refuse_seen(session: FeedSession, seen: set[bytes]) -> None:
    """Never serve again what the cursor says earlier pages served, whichever process served
    them (this one's list may have been rebuilt from the cursor, ranked on what the viewer has
    done since)."""
    if seen:
        q = session.queue
        session.refused |= {
            c.video_id for c in (*q.main, *q.explore) if _seen_digest(c.video_id) in seen
        }


def _serve_next(
    platform: Platform,
    session: FeedSession,
    page: int,
    limit: int,
    state: ViewerState | None,
    viewer_id: str | None,
) -> list[tuple[Candidate, VideoRow]]:
    """Take the next page off the session's queues, then read the picked videos' catalogue rows
    (one query): a video withdrawn or made followers-only since the session was built is refused
    and the page picked again without it, so the rules hold on what is actually served."""
    q = session.queue

    def ok(c: Candidate) -> bool:
        return c.video_id not in session.refused and allowed(c, state, viewer_id)

    for _ in range(20):
        snapshot = (list(q.main), list(q.explore), q.position, q.last, q.explore_due)
        picked = ranking.take(q, limit, ok)
        rows = fetch_videos(platform, [c.video_id for c in picked])
        bad = {c.video_id for c in picked if not visible(rows.get(c.video_id), state, viewer_id)}
        if not bad:
            break
        session.refused |= bad
        q.main, q.explore, q.position, q.last, q.explore_due = snapshot
    else:  # the catalogue keeps changing under us: serve the valid items before the first refusal
        cut = next(i for i, c in enumerate(picked) if c.video_id in bad)
        picked = picked[:cut]
        q.position = snapshot[2] + cut
        q.last = (picked[-1].creator_id, picked[-1].sound_id) if picked else snapshot[3]
    session.served[page] = picked
    return [(c, rows[c.video_id]) for c in picked]


def _replay(
    platform: Platform,
    session: FeedSession,
    page: int,
    state: ViewerState | None,
    viewer_id: str | None,
) -> list[tuple[Candidate, VideoRow]]:
    """A page that was served before (a retry): the same items, rules applied afresh."""
    picked = session.served[page]
    rows = fetch_videos(platform, [c.video_id for c in picked])
    return [
        (c, rows[c.video_id]) for c in picked if visible(rows.get(c.video_id), state, viewer_id)
    ]


def for_you_feed(
    platform: Platform,
    settings: Settings,
    viewer: CurrentUser | None,
    *,
    cursor: str | None,
    limit: int,
) -> FeedPage:
    """One page of the viewer's For You feed (anonymous viewers: trending and exploration)."""
    limit = max(1, min(limit, MAX_PAGE))
    c = decode_cursor(cursor)
    try:
        seed = int(c["s"]) if c else random.getrandbits(48)
        started = int(c.get("t", time.time())) if c else int(time.time())
        page = int(c.get("p", 0)) if c else 0
        seen_text = c.get("x", "") if c else ""
        seen = _decode_seen(seen_text)
    except (TypeError, ValueError):
        raise InvalidInput("That page cursor is not valid.", code="bad_cursor") from None
    if page < 0 or page > 1000:
        raise InvalidInput("That page cursor is not valid.", code="bad_cursor")
    me = Person(viewer.user_id, viewer.handle, viewer.region) if viewer else None
    state = viewer_state(platform, me) if me is not None else None
    viewer_id = me.user_id if me is not None else None
    cache = _cache(platform)
    key = (viewer_id or "", seed)
    session = cache.get(key)
    if session is None:
        now = datetime.fromtimestamp(started, UTC)
        queue = None
        if me is not None and state is not None:
            max_age = timedelta(minutes=settings.feed_candidates_max_age_minutes)
            queue = stored_session(platform, me, state, seed, now=now, max_age=max_age)
        if queue is None:
            queue = build_session(platform, me, state, seed, now=now)
        session = cache.put(key, FeedSession(queue))
    with session.lock:
        if page in session.served:  # a retry of a page this process served: the same items
            items = _replay(platform, session, page, state, viewer_id)
        else:
            _refuse_seen(session, seen)
            items = _serve_next(platform, session, page, limit, state, viewer_id)
        more = not session.queue.exhausted and bool(items)
    return FeedPage.model_construct(
        items=[
            FeedItem.model_construct(video=_video_read(row), reason=cand.reason)
            for cand, row in items
        ],
        next_cursor=(
            encode_cursor(
                {
                    "s": seed,
                    "t": started,
                    "p": page + 1,
                    "x": _encode_seen(seen_text, (cand for cand, _ in items)),
                }
            )
            if more
            else None
        ),
    )


_READ_FIELDS = [f for f in PublicVideoRead.model_fields if f in reads.CatalogRow._fields]


def _video_read(row: VideoRow) -> PublicVideoRead:
    """The public view of a catalogue row. Built without re-validation: every value comes from
    a typed catalogue column (this was a tenth of a page's cost)."""
    fields = {f: getattr(row, f) for f in _READ_FIELDS}
    return PublicVideoRead.model_construct(**fields, urls=media_urls(row.id, row.published_at))


def popular_interests(platform: Platform, *, limit: int = 30) -> list[Interest]:
    """Hashtags with the most public videos, for a new user to pick from at sign-up."""
    with platform.global_store.session() as g:
        rows = g.execute(
            select(VideoTag.value, func.count())
            .join(PublishedVideo, PublishedVideo.id == VideoTag.video_id)
            .where(VideoTag.kind == "hashtag", PublishedVideo.visibility == "public")
            .group_by(VideoTag.value)
            .order_by(func.count().desc(), VideoTag.value)
            .limit(limit)
        )
        return [Interest(tag=tag, videos=n) for tag, n in rows]
