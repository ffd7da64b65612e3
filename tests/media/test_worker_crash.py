"""A worker killed with SIGKILL mid-transcode publishes nothing; restarted, it finishes the job.
The same on the region's queue on a SQLite file and on a real Redis server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from conftest import BACKEND
from reelm.accounts.schemas import SignUp
from reelm.accounts.service import access_session, check_sign_up
from reelm.config import Settings
from reelm.media import jobs
from reelm.media.models import PublishedVideo, Video
from reelm.media.schemas import VideoCreate
from reelm.media.service import do_complete_upload, do_create_upload
from reelm.media.synth import make_test_clip
from reelm.media.tasks import create_video
from reelm.residency.service import do_init

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite", reason="the queue, not the database: SQLite or Redis either way"
)
CHEAP = {
    "REELM_ARGON2_TIME_COST": "1",
    "REELM_ARGON2_MEMORY_KIB": "64",
    "REELM_ARGON2_PARALLELISM": "1",
}


def start_worker(data_dir: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reelm.cli",
            "--data-dir",
            str(data_dir),
            "worker",
            "--region",
            "us",
        ],
        env={**os.environ, **CHEAP, **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("queue", ["sqlite-queue", "redis"])
def test_kill_9_mid_transcode_then_restart_completes_without_half_publishing(
    tmp_path: Path, queue: str, request: pytest.FixtureRequest
) -> None:
    redis_urls = {"us": request.getfixturevalue("fresh_redis")} if queue == "redis" else {}
    env = {"REELM_REGION_REDIS_URLS": json.dumps(redis_urls)}
    settings = Settings(
        data_dir=tmp_path / "data",
        argon2_time_cost=1,
        argon2_memory_kib=64,
        argon2_parallelism=1,
        region_redis_urls=redis_urls,
    )
    platform = do_init(settings)
    signed = check_sign_up(
        platform,
        settings,
        SignUp(
            handle="ava",
            password="correct horse battery",
            email="ava@example.org",
            birth_date=date(2000, 1, 1),
            jurisdiction="US",
        ),
    )
    user = access_session(platform, signed.token)
    clip = make_test_clip(tmp_path / "clip.mp4", seconds=8.0, width=720, height=1280)
    upload = do_create_upload(platform, settings, user, size=clip.stat().st_size, filename="c.mp4")
    staging = platform.regions["us"].work_dir / "uploads" / f"{upload.id}.part"
    staging.write_bytes(clip.read_bytes())
    do_complete_upload(platform, settings, user, upload.id)
    video_id = create_video(
        platform,
        settings,
        user,
        VideoCreate(
            upload_id=upload.id, edit={"trim_start_s": 0, "trim_end_s": 8, "filter": "vivid"}
        ),
    ).id
    store = platform.regions["us"]
    huey = jobs.queue(store)
    assert type(huey.storage).__name__ == ("RedisStorage" if redis_urls else "SqliteStorage")
    assert huey.pending_count() == 1  # the job waits on that queue for a worker
    assert (store.work_dir / "queue.db").exists() is not bool(redis_urls)

    def video() -> Video:
        with store.session() as s:
            v = s.get(Video, video_id)
            assert v is not None
            return v

    def published() -> bool:
        with platform.global_store.session() as g:
            return g.get(PublishedVideo, video_id) is not None

    log = tmp_path / "worker.log"
    worker = start_worker(settings.data_dir, log, env)
    try:
        wait_for(lambda: video().progress > 5, 120, "the transcode to start")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        killed = video()
        assert killed.state == "processing"
        assert killed.progress < 100
        assert not published()

        worker = start_worker(settings.data_dir, log, env)
        wait_for(lambda: video().state in ("ready", "failed"), 240, "the requeued job")
        done = video()
        assert done.state == "ready", (done.failure, log.read_text()[-2000:])
        wait_for(published, 10, "the catalog entry")
        files = list(store.blobs.keys(f"{signed.account.id}/videos/{video_id}/"))
        assert any(f.endswith("master.m3u8") for f in files)
        assert any(f.endswith("video.mp4") for f in files)
        assert not list((store.work_dir / "jobs").glob(f"{video_id}/.transcode-*"))
    finally:
        worker.kill()
        worker.wait()
        platform.close()
