"""The region worker's dispatcher, as `reelm worker` runs it: a like whose notification had to
wait (its recipient was being moved) reaches the recipient within seconds of the move ending,
with no one running anything by hand."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select, update

from reelm.accounts.service import CurrentUser
from reelm.config import Settings
from reelm.effects.service import pending_count
from reelm.media.models import PublishedVideo
from reelm.residency.models import ACTIVE, MOVING, DirectoryEntry
from reelm.residency.service import open_platform
from reelm.social.models import Notification
from reelm.social.service import do_like


def test_the_worker_applies_a_waiting_notification_once_the_recipient_has_moved(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = {
        **os.environ,
        "REELM_DATA_DIR": str(data),
        "REELM_ARGON2_TIME_COST": "1",
        "REELM_ARGON2_MEMORY_KIB": "64",
        "REELM_ARGON2_PARALLELISM": "1",
    }
    cli = [sys.executable, "-m", "reelm.cli"]
    demo = subprocess.run([*cli, "demo", "--no-videos"], env=env, capture_output=True, text=True)
    assert demo.returncode == 0, demo.stderr
    platform = open_platform(Settings(data_dir=data))
    worker = None
    try:
        with platform.global_store.session() as g:
            homes = dict(g.execute(select(DirectoryEntry.handle_key, DirectoryEntry.user_id)).all())
            # a video of a user in sg (the demo has published videos only with --videos)
            mei = homes["mei"]
        from helpers import make_video

        video = make_video(platform, owner_id=mei, region="sg")
        with platform.global_store.transaction() as g:
            g.execute(update(DirectoryEntry).where(DirectoryEntry.user_id == mei)
                      .values(state=MOVING, moving_to="us"))  # fmt: skip
        ava = CurrentUser(homes["ava"], "ava", "us", session_id="-")
        assert do_like(platform, ava, video) == 1
        with platform.region("sg").session() as s:  # the notification waits for mei
            assert s.scalar(select(Notification.id).where(Notification.owner_id == mei)) is None
        worker = subprocess.Popen(
            [*cli, "worker", "--region", "us"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        # the worker crosses off what had applied (however long it takes to start on a loaded
        # machine); the notification waits, it is not dropped
        deadline = time.monotonic() + 60
        while pending_count(platform, "us") > 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2.5)  # one more dispatcher pass (every 2 s) must not drop the waiting one
        assert pending_count(platform, "us") == 1
        with platform.global_store.transaction() as g:
            g.execute(update(DirectoryEntry).where(DirectoryEntry.user_id == mei)
                      .values(state=ACTIVE, moving_to=None))  # fmt: skip
        deadline = time.monotonic() + 90
        while pending_count(platform, "us") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert pending_count(platform, "us") == 0, "the worker's dispatcher never applied it"
        with platform.region("sg").session() as s:
            kinds = list(s.scalars(select(Notification.kind).where(Notification.owner_id == mei)))
        assert kinds == ["like"]
        with platform.global_store.session() as g:
            assert g.get(PublishedVideo, video).like_count == 1  # type: ignore[union-attr]
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        platform.close()
