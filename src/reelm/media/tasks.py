"""Media jobs: thin wrappers that take ids and call a plain function in media/service.py.

Each region queue's task is bound to the Platform of the process that opened that queue (the web
app in immediate mode, or `reelm worker`): a queue lives in one region's work folder, so a
process that hosts several platforms (the test suite) never runs one platform's job against
another's stores. The job itself carries only `(region, video_id)`.
"""

from __future__ import annotations

import logging
from typing import Any

from reelm.config import Settings
from reelm.media import jobs
from reelm.residency.store import Platform

log = logging.getLogger(__name__)


def task_for(platform: Platform, settings: Settings, region: str) -> Any:
    """The region queue's `process_video(region, video_id)` task, run against `platform`."""
    from reelm.media.service import do_process_video

    def process_video(region: str, video_id: str) -> None:
        do_process_video(platform, settings, region=region, video_id=video_id)

    store = platform.region(region)
    return jobs.transcode_task(
        store.work_dir, region, process_video, immediate=settings.jobs_immediate
    )


def enqueue_process_video(
    platform: Platform, settings: Settings, *, region: str, video_id: str
) -> None:
    """Queue the processing of a video (call after the commit that created it)."""
    task_for(platform, settings, region)(region, video_id)
