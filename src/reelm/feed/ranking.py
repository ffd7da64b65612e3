"""For You ranking on plain data: the score, exploration slots and the diversity rule.

No database here: the request path (`feed/foryou.py`) and the offline evaluation
(`bench/recsys.py`) both call these functions, so the evaluation measures the ranking that serves.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

# Where a candidate came from. When one video arrives from several sources, the reason shown is
# the one of the most specific source (lowest number).
FOLLOWING, NEIGHBOUR, HASHTAG, INTEREST, SOUND, TRENDING, EXPLORE = range(7)

EXPLORE_EVERY = 5
"""Every 5th item served comes from the exploration pool: 20% exploration."""

# Engagement-rate prior: (likes + 2 shares + comments) per view, smoothed towards PRIOR_MEAN as if
# every video had PRIOR_VIEWS extra views at the platform's typical rate.
PRIOR_MEAN = 0.08
PRIOR_VIEWS = 50.0


@dataclass(frozen=True)
class Weights:
    """Weights of the linear predicted-engagement score (each feature lies in [0, 1])."""

    model: float = 1.0  # ALS preference of the viewer for the video (co-engagement)
    prior: float = 0.35  # engagement-rate prior from public counts (and region completion rate)
    hashtag: float = 0.6  # affinity of the viewer for the video's hashtags
    sound: float = 0.25  # affinity of the viewer for the video's sound
    follow: float = 0.5  # the viewer follows the creator
    trend: float = 0.3  # rank in the region's trending list
    fresh: float = 0.15  # recency, half-life of two days
    jitter: float = 0.05  # a seeded random nudge, so two sessions are not identical


WEIGHTS = Weights()


@dataclass(slots=True)
class Candidate:
    """One video a viewer might be shown, with the features the score needs."""

    video_id: str
    creator_id: str
    sound_id: str | None
    source: int
    reason: str
    model: float = 0.0
    hashtag: float = 0.0
    sound: float = 0.0
    follow: float = 0.0
    trend: float = 0.0
    prior: float = 0.0
    fresh: float = 0.0
    score: float = 0.0
    followers_only: bool = False

    def offer(self, source: int, reason: str) -> None:
        """The same video found by another source: keep the most specific reason."""
        if source < self.source:
            self.source, self.reason = source, reason


def engagement_prior(likes: Floats, comments: Floats, shares: Floats, views: Floats) -> Floats:
    """Smoothed engagement per view from the public counts."""
    return (likes + 2.0 * shares + comments + PRIOR_MEAN * PRIOR_VIEWS) / (views + PRIOR_VIEWS)


def percentile_rank(values: Floats) -> Floats:
    """Each value's rank among `values`, scaled to [0, 1]; equal values share the lower rank."""
    n = len(values)
    if n <= 1:
        return np.ones(n)
    first = np.searchsorted(np.sort(values), values, side="left")
    return first / (n - 1)


def jitter(seed: int, video_id: str) -> float:
    """A stable pseudo-random number in [0, 1) for (session seed, video): the same in every
    process, so a session rebuilt elsewhere ranks the same way."""
    return zlib.crc32(f"{seed}:{video_id}".encode()) / 2**32


def score(candidates: Sequence[Candidate], seed: int, weights: Weights = WEIGHTS) -> None:
    """Predicted engagement of each candidate, written to `candidate.score`.

    A linear blend of features in [0, 1]; the weights were chosen on the offline simulator
    (bench/recsys.py), where this blend beats both popularity and the model alone."""
    w = weights
    for c in candidates:
        c.score = (
            w.model * c.model
            + w.prior * c.prior
            + w.hashtag * c.hashtag
            + w.sound * c.sound
            + w.follow * c.follow
            + w.trend * c.trend
            + w.fresh * c.fresh
            + w.jitter * jitter(seed, c.video_id)
        )


EXPLORE_JITTER = 0.6


def explore_score(candidates: Sequence[Candidate], seed: int) -> None:
    """Exploration order: mostly chance (that is the point), nudged towards fresh, well-received
    videos so discovery does not start with the worst of the catalogue."""
    for c in candidates:
        c.score = EXPLORE_JITTER * jitter(seed, c.video_id) + 0.25 * c.prior + 0.15 * c.fresh


@dataclass
class Queue:
    """What is left to serve in one session, and where the session stands."""

    main: list[Candidate]
    explore: list[Candidate]
    position: int = 0  # items served so far
    last: tuple[str, str | None] | None = None  # (creator, sound) of the last item served
    explore_due: int = 0  # exploration slots owed (their turn came when no explore item fitted)

    @property
    def exhausted(self) -> bool:
        return not self.main and not self.explore


def _fits(c: Candidate, last: tuple[str, str | None] | None) -> bool:
    if last is None:
        return True
    creator, sound = last
    return c.creator_id != creator and (c.sound_id is None or c.sound_id != sound)


def take(
    queue: Queue,
    limit: int,
    allowed: Callable[[Candidate], bool],
    *,
    explore_every: int = EXPLORE_EVERY,
) -> list[Candidate]:
    """The next `limit` items: every `explore_every`-th from the exploration queue (when no
    exploration item fits that slot, the next slot makes up for it; the main queue fills in only
    when the exploration queue is empty), never two in a row from the same creator or with the
    same sound. Candidates `allowed` refuses are dropped for good; one that would break the
    diversity rule waits for a later slot. Stops early only when nothing left can follow the last
    item without breaking the rule."""
    out: list[Candidate] = []
    while len(out) < limit:
        if queue.position % explore_every == explore_every - 1:
            queue.explore_due += 1
        wants_explore = queue.explore_due > 0
        order = (queue.explore, queue.main) if wants_explore else (queue.main, queue.explore)
        chosen: Candidate | None = None
        for source in order:
            i = 0
            while i < len(source):
                c = source[i]
                if not allowed(c):
                    del source[i]
                    continue
                if _fits(c, queue.last):
                    chosen = source.pop(i)
                    break
                i += 1
            if chosen is not None:
                if source is queue.explore:
                    queue.explore_due = max(0, queue.explore_due - 1)
                break
        if chosen is None:
            break
        out.append(chosen)
        queue.position += 1
        queue.last = (chosen.creator_id, chosen.sound_id)
    return out
