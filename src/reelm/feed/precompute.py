"""Precomputing For You candidate sets: after each training, the region's worker ranks a session
for every recently active user of the region and stores it in their home region
(`feed/candidates.py`), so the first page of a session starts from it instead of gathering and
scoring ~250 candidates while the viewer waits.

It runs in the region, on the region's records and model only, like the training. Resumable: a
user whose set was already ranked with the current model is skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from reelm.accounts.models import LoginSession
from reelm.config import Settings
from reelm.db import utcnow
from reelm.feed import candidates, ranking
from reelm.feed.candidates import CandidateSet
from reelm.feed.foryou import DbCatalog, rank_parts, viewer_positives, viewer_state
from reelm.feed.model import ForYouModel, Pools, load_model
from reelm.residency.models import ACTIVE
from reelm.residency.store import Platform
from reelm.social.service import Person
from reelm.sql import chunks

log = logging.getLogger(__name__)

BATCH = 200  # users per transaction
SEED = 0  # the sets are ranked with this seed's jitter, then stored without it

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class PrecomputeReport:
    users: int = 0  # active users of the region
    built: int = 0
    skipped: int = 0  # already ranked with this model
    seconds: float = 0.0


def active_users(platform: Platform, region: str, *, days: int) -> list[str]:
    """Users at home in `region` with a live session seen in the last `days` days."""
    now = utcnow()
    with platform.region(region).session() as s:
        ids = list(
            s.scalars(
                select(LoginSession.account_id)
                .where(
                    LoginSession.revoked_at.is_(None),
                    LoginSession.expires_at > now,
                    LoginSession.last_seen_at >= now - timedelta(days=days),
                )
                .distinct()
            )
        )
    homes = platform.directory.homes(ids)
    return sorted(
        u for u in ids if u in homes and homes[u].region == region and homes[u].state == ACTIVE
    )


def do_precompute_candidates(
    platform: Platform, settings: Settings, region: str, *, progress: Progress | None = None
) -> PrecomputeReport:
    """Rank and store the candidate set of each active user of `region` with its current model."""
    t0 = time.perf_counter()
    report = PrecomputeReport()
    store = platform.region(region)
    model = load_model(store)
    if model is None or settings.feed_candidates_days == 0:
        return report
    users = active_users(platform, region, days=settings.feed_candidates_days)
    report.users = len(users)
    done = candidates.built_for(store, users)
    todo = [u for u in users if done.get(u) != model.trained_at]
    report.skipped = len(users) - len(todo)
    if progress:
        progress(report.skipped, len(users))
    loaded: list[tuple[ForYouModel | None, Pools]] = [(model, model.pools)]
    w = ranking.WEIGHTS.jitter
    for batch in chunks(todo, BATCH):
        sets: dict[str, CandidateSet] = {}
        for uid in batch:
            me = Person(uid, "", region)
            state = viewer_state(platform, me)
            now = utcnow()
            main, explore, taste = rank_parts(
                DbCatalog(platform, [model.pools], [model.trained_at]),
                loaded,
                positives=viewer_positives(platform, me),
                state=state,
                viewer_id=uid,
                seed=SEED,
                now=now,
            )
            sets[uid] = CandidateSet(
                region=region,
                built_at=now,
                model_trained_at=model.trained_at,
                main=[
                    (c.video_id, c.source, c.reason, c.score - w * ranking.jitter(SEED, c.video_id))
                    for c in main
                ],
                explore=[
                    (
                        c.video_id,
                        c.reason,
                        c.score - ranking.EXPLORE_JITTER * ranking.jitter(SEED, c.video_id),
                    )
                    for c in explore
                ],  # fmt: skip
                seen=taste.seen,
                follows=set(state.follows),
                tag_weight=dict(taste.tag_weight),
                sound_weight=dict(taste.sound_weight),
                user_vector=taste.user_vector.tolist() if taste.user_vector is not None else None,
            )
        candidates.save(store, sets, seed=SEED)
        report.built += len(sets)
        if progress:
            progress(report.skipped + report.built, len(users))
    report.seconds = time.perf_counter() - t0
    log.info("region %s: %d For You candidate sets in %.1f s", region, report.built, report.seconds)
    return report
