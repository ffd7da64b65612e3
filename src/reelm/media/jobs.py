"""The durable job queue of each region: Huey on the region's Redis when one is configured for it
(`redis_url` in its policy entry, or `region_redis_urls`), else on a SQLite file in the region's
work folder.

One queue per region, so a region's jobs run on that region's workers and read only that region's
stores. Jobs carry ids, never objects, and are enqueued after the commit that created their record.
A worker that dies mid-job loses the queue entry; `requeue_unfinished` (run when a worker starts)
puts every video still `queued` or `processing` back, which is safe because processing is
idempotent (outputs are written aside and moved into place).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huey import Huey, RedisHuey, SqliteHuey

if TYPE_CHECKING:
    from reelm.residency.store import RegionStore

log = logging.getLogger(__name__)

_QUEUES: dict[tuple[str, str], Any] = {}
_TASKS: dict[tuple[str, str], Any] = {}
_PERIODIC: dict[tuple[str, str, str], Any] = {}
_NAMED: dict[tuple[str, str], dict[str, Any]] = {}
Runner = Callable[[str, str], None]


def _key(store: RegionStore) -> tuple[str, str]:
    """Which queue: a region's Redis (its URL) or its SQLite file (its work folder). A process
    that hosts several platforms (the test suite) keeps their queues apart either way."""
    return (store.redis_url or str(store.work_dir), store.name)


def queue(store: RegionStore, *, immediate: bool = False) -> Huey:
    """The region's queue. On Redis, Huey's list is named after the region, so regions may
    share one Redis server (in the embedded test run) without sharing jobs."""
    key = _key(store)
    if key not in _QUEUES:
        name = f"reelm-{store.name}"
        if store.redis_url:
            huey: Huey = RedisHuey(name=name, url=store.redis_url, immediate=immediate)
        else:
            work_dir: Path = store.work_dir
            work_dir.mkdir(parents=True, exist_ok=True)
            huey = SqliteHuey(name=name, filename=str(work_dir / "queue.db"), immediate=immediate)
        _QUEUES[key] = huey
    huey_: Huey = _QUEUES[key]
    return huey_


def transcode_task(store: RegionStore, runner: Runner, *, immediate: bool = False) -> Any:
    """The region queue's `process_video(region, video_id)` task, bound to `runner`."""
    key = _key(store)
    if key not in _TASKS:
        huey = queue(store, immediate=immediate)
        _TASKS[key] = huey.task(retries=2, retry_delay=5, name="process_video")(runner)
    return _TASKS[key]


def region_task(
    store: RegionStore,
    name: str,
    fn: Callable[..., None],
    *,
    retries: int,
    retry_delay: int,
    immediate: bool = False,
) -> Any:
    """Register `fn` as the region queue's task `name` (called with its `task` too, so it can
    tell its last attempt). Every process that enqueues it or runs the queue registers it."""
    tasks = _NAMED.setdefault(_key(store), {})
    if name not in tasks:
        huey = queue(store, immediate=immediate)
        tasks[name] = huey.task(retries=retries, retry_delay=retry_delay, name=name, context=True)(
            fn
        )
    return tasks[name]


def periodic_task(
    store: RegionStore,
    name: str,
    fn: Callable[[], None],
    *,
    minutes: int,
    immediate: bool = False,
) -> Any:
    """Register `fn` to run every `minutes` (1–60) on the region's queue; the consumer of
    `reelm worker --region R` runs it. Calling the returned task enqueues one run now."""
    from huey import crontab

    key = (*_key(store), name)
    if key not in _PERIODIC:
        huey = queue(store, immediate=immediate)
        every = crontab(minute=f"*/{minutes}") if minutes < 60 else crontab(minute="0")
        _PERIODIC[key] = huey.periodic_task(every, name=name)(fn)
    return _PERIODIC[key]
