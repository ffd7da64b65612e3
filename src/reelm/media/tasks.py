"""Media jobs: thin wrappers that take ids and call a plain function in media/service.py, and
the calls that queue them after the commit that recorded their video (the service never imports
this module: it records, this queues).

Each region queue's task is bound to the Platform of the process that opened that queue (the web
app in immediate mode, or `reelm worker`): a queue lives in one region's work folder, so a
process that hosts several platforms (the test suite) never runs one platform's job against
another's stores. The job itself carries only `(region, video_id)`.
"""

from __future__ import annotations

import logging
from typing import Any

from reelm.accounts.service import CurrentUser
from reelm.config import Settings
from reelm.media import jobs, service
from reelm.media.schemas import VideoCreate, VideoRead
from reelm.residency.store import Platform

log = logging.getLogger(__name__)


def task_for(platform: Platform, settings: Settings, region: str) -> Any:
    """The region queue's `process_video(region, video_id)` task, run against `platform`."""

    def process_video(region: str, video_id: str) -> None:
        service.do_process_video(platform, settings, region=region, video_id=video_id)

    return jobs.transcode_task(
        platform.region(region), process_video, immediate=settings.jobs_immediate
    )


def enqueue_process_video(
    platform: Platform, settings: Settings, *, region: str, video_id: str
) -> None:
    """Queue the processing of a video (call after the commit that created it)."""
    task_for(platform, settings, region)(region, video_id)


def create_video(
    platform: Platform, settings: Settings, user: CurrentUser, body: VideoCreate
) -> VideoRead:
    """Publish an upload with an edit: the video is recorded, then its processing queued."""
    video = service.check_create_video(platform, settings, user, body)
    enqueue_process_video(platform, settings, region=user.region, video_id=video.id)
    return service.access_video(platform, user, video.id)


def requeue_unfinished(platform: Platform, settings: Settings, region: str) -> list[str]:
    """Put the videos a dead worker left unfinished back on the region's queue."""
    ids = service.unfinished_videos(platform, region)
    for video_id in ids:
        enqueue_process_video(platform, settings, region=region, video_id=video_id)
    return ids
