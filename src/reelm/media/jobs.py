"""The durable job queue of each region: Huey on a SQLite file in the region's work folder.

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
from typing import Any

from huey import SqliteHuey

log = logging.getLogger(__name__)

_QUEUES: dict[tuple[str, str], Any] = {}
_TASKS: dict[tuple[str, str], Any] = {}
_PERIODIC: dict[tuple[str, str, str], Any] = {}
_NAMED: dict[tuple[str, str], dict[str, Any]] = {}
Runner = Callable[[str, str], None]


def queue(work_dir: Path, region: str, *, immediate: bool = False) -> SqliteHuey:
    key = (str(work_dir), region)
    if key not in _QUEUES:
        work_dir.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey(
            name=f"reelm-{region}", filename=str(work_dir / "queue.db"), immediate=immediate
        )
        _QUEUES[key] = huey
    huey_: SqliteHuey = _QUEUES[key]
    return huey_


def transcode_task(work_dir: Path, region: str, runner: Runner, *, immediate: bool = False) -> Any:
    """The region queue's `process_video(region, video_id)` task, bound to `runner`."""
    key = (str(work_dir), region)
    if key not in _TASKS:
        huey = queue(work_dir, region, immediate=immediate)
        _TASKS[key] = huey.task(retries=2, retry_delay=5, name="process_video")(runner)
    return _TASKS[key]


def region_task(
    work_dir: Path,
    region: str,
    name: str,
    fn: Callable[..., None],
    *,
    retries: int,
    retry_delay: int,
    immediate: bool = False,
) -> Any:
    """Register `fn` as the region queue's task `name` (called with its `task` too, so it can
    tell its last attempt). Every process that enqueues it or runs the queue registers it."""
    key = (str(work_dir), region)
    tasks = _NAMED.setdefault(key, {})
    if name not in tasks:
        huey = queue(work_dir, region, immediate=immediate)
        tasks[name] = huey.task(retries=retries, retry_delay=retry_delay, name=name, context=True)(
            fn
        )
    return tasks[name]


def periodic_task(
    work_dir: Path,
    region: str,
    name: str,
    fn: Callable[[], None],
    *,
    minutes: int,
    immediate: bool = False,
) -> Any:
    """Register `fn` to run every `minutes` (1–60) on the region's queue; the consumer of
    `reelm worker --region R` runs it. Calling the returned task enqueues one run now."""
    from huey import crontab

    key = (str(work_dir), region, name)
    if key not in _PERIODIC:
        huey = queue(work_dir, region, immediate=immediate)
        every = crontab(minute=f"*/{minutes}") if minutes < 60 else crontab(minute="0")
        _PERIODIC[key] = huey.periodic_task(every, name=name)(fn)
    return _PERIODIC[key]
