"""Data-rights jobs on the region queue: building a download-my-data archive.

Thin, like the media jobs: the job carries `(region, export_id)` and calls
`rights.do_build_export`. It runs on the user's region's workers (`reelm worker --region R`, or
inside the request with `jobs_immediate`), retried twice; the last attempt that fails marks the
export `failed` with a message the settings page shows. A worker killed mid-build leaves the
export `building`; the next worker to start requeues it (`requeue_unfinished_exports`).
Jobs are queued after the commit that recorded their export (`request_export`).
"""

from __future__ import annotations

from typing import Any

from reelm.accounts import rights
from reelm.accounts.service import CurrentUser
from reelm.config import Settings
from reelm.media import jobs
from reelm.residency.store import Platform

RETRIES = 2
RETRY_DELAY = 5


def export_task_for(platform: Platform, settings: Settings, region: str) -> Any:
    """The region queue's `build_export(region, export_id)` task, run against `platform`."""

    def build_export(region: str, export_id: str, task: Any = None) -> None:
        final = settings.jobs_immediate or task is None or not task.retries
        rights.do_build_export(
            platform, settings, region=region, export_id=export_id, final_attempt=final
        )

    return jobs.region_task(
        platform.region(region),
        "build_export",
        build_export,
        retries=RETRIES,
        retry_delay=RETRY_DELAY,
        immediate=settings.jobs_immediate,
    )


def enqueue_build_export(
    platform: Platform, settings: Settings, *, region: str, export_id: str
) -> None:
    """Queue the building of an export (call after the commit that created it)."""
    export_task_for(platform, settings, region)(region, export_id)


def request_export(platform: Platform, settings: Settings, user: CurrentUser) -> str:
    """Ask for a data file: the export is recorded, then (after that commit) its job queued."""
    export_id, new = rights.do_request_export(platform, settings, user)
    if new:
        enqueue_build_export(platform, settings, region=user.region, export_id=export_id)
    return export_id


def requeue_unfinished_exports(platform: Platform, settings: Settings, region: str) -> list[str]:
    """Put exports a dead worker left unfinished back on the region queue (a starting worker
    runs this; building again is safe, see `rights.do_build_export`)."""
    ids = rights.unfinished_exports(platform, region)
    for export_id in ids:
        enqueue_build_export(platform, settings, region=region, export_id=export_id)
    return ids
