"""Feed jobs: the periodic retraining of each region's For You model, on that region's queue,
followed by its users' candidate sets (feed/precompute.py).

The worker of a region (`reelm worker --region R`) registers the job before its consumer starts,
so training runs on the region's own machines and reads only the region's database.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from reelm.config import Settings
from reelm.db import utcnow
from reelm.feed.model import load_model, train_region
from reelm.feed.precompute import do_precompute_candidates
from reelm.media import jobs
from reelm.residency.store import Platform

log = logging.getLogger(__name__)


def schedule_training(platform: Platform, settings: Settings, region: str) -> Any:
    """Retrain every `feed_train_minutes`, and once now when the model is missing or stale."""
    store = platform.region(region)

    def train_feed_model() -> None:
        report = train_region(platform, region)
        log.info("region %s: For You model written to %s", region, report.path)
        do_precompute_candidates(platform, settings, region)

    task = jobs.periodic_task(
        store,
        "train_feed_model",
        train_feed_model,
        minutes=settings.feed_train_minutes,
        immediate=settings.jobs_immediate,
    )
    model = load_model(store)
    if model is None or utcnow() - model.trained_at > timedelta(
        minutes=settings.feed_train_minutes
    ):
        task()
    return task
