"""Media jobs: thin wrappers that take ids and call a plain function in media/service.py.

The process that hosts a region's queue (the web app in immediate mode, or `reelm worker`) binds
its Platform and Settings here once; the job itself carries only `(region, video_id)`.
"""

from __future__ import annotations

import logging
from typing import Any

from reelm.config import Settings
from reelm.media import jobs
from reelm.residency.store import Platform

log = logging.getLogger(__name__)
_BOUND: dict[str, Any] = {}


def bind(platform: Platform, settings: Settings) -> None:
    _BOUND["platform"], _BOUND["settings"] = platform, settings


def process_video(region: str, video_id: str) -> None:
    from reelm.media.service import do_process_video

    platform: Platform = _BOUND["platform"]
    settings: Settings = _BOUND["settings"]
    do_process_video(platform, settings, region=region, video_id=video_id)


def task_for(platform: Platform, settings: Settings, region: str) -> Any:
    store = platform.region(region)
    return jobs.transcode_task(
        store.work_dir, region, process_video, immediate=settings.jobs_immediate
    )


def enqueue_process_video(
    platform: Platform, settings: Settings, *, region: str, video_id: str
) -> None:
    """Queue the processing of a video (call after the commit that created it)."""
    if "platform" not in _BOUND:
        bind(platform, settings)
    task_for(platform, settings, region)(region, video_id)
