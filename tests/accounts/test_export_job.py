"""Download my data as a region job: the raw upload comes back decrypted and byte-equal, a
failure is shown with its reason and the user asks again, and a second request while one is
under way builds one archive."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helpers import make_user
from reelm.accounts.rights import do_build_export, export_status
from reelm.accounts.service import access_session
from reelm.accounts.tasks import request_export, requeue_unfinished_exports
from reelm.config import Settings
from reelm.media import jobs
from reelm.media.synth import make_test_clip
from reelm.residency.store import Platform


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_test_clip(
        tmp_path_factory.mktemp("clips") / "clip.mp4", seconds=1.0, width=180, height=320
    )


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(client: TestClient, token: str, path: Path) -> str:
    with path.open("rb") as f:
        r = client.post(
            "/api/v1/uploads/file", headers=h(token), files={"file": (path.name, f, "video/mp4")}
        )
    assert r.status_code == 201, r.text
    upload_id: str = r.json()["id"]
    return upload_id


def download(client: TestClient, token: str, export_id: str) -> zipfile.ZipFile:
    status = client.get(f"/api/v1/me/exports/{export_id}", headers=h(token)).json()
    assert status["state"] == "ready", status
    got = TestClient(client.app).get(status["download_url"])
    assert got.status_code == 200
    return zipfile.ZipFile(io.BytesIO(got.content))


def test_export_contains_the_raw_upload_decrypted_and_byte_equal(
    client: TestClient, platform: Platform, settings: Settings, clip: Path
) -> None:
    uid, region, token = make_user(platform, settings, handle="ava", jurisdiction="DE")
    assert region == "sg"
    upload_id = upload(client, token, clip)
    stored = platform.regions["sg"].blobs.read_bytes(f"{uid}/uploads/{upload_id}.enc")
    assert stored[:5] == b"RLMS1"  # a stream, sealed chunk by chunk
    assert clip.read_bytes()[:64] not in stored
    export_id = client.post("/api/v1/me/exports", headers=h(token)).json()["id"]
    z = download(client, token, export_id)
    assert z.read(f"media/uploads/{upload_id}") == clip.read_bytes()
    assert "media/exports" not in " ".join(z.namelist())


def test_a_failed_export_says_why_and_asking_again_builds_it(
    client: TestClient, platform: Platform, settings: Settings, clip: Path
) -> None:
    uid, _, token = make_user(platform, settings, handle="ava", jurisdiction="DE")
    upload_id = upload(client, token, clip)
    blobs = platform.regions["sg"].blobs
    key = f"{uid}/uploads/{upload_id}.enc"
    good = blobs.read_bytes(key)
    blobs.put_bytes(key, good[:-1] + bytes([good[-1] ^ 1]))  # one flipped bit
    failed_id = client.post("/api/v1/me/exports", headers=h(token)).json()["id"]
    status = client.get(f"/api/v1/me/exports/{failed_id}", headers=h(token)).json()
    assert status["state"] == "failed"
    assert "failed its integrity check" in status["error"]
    assert "download_url" not in status
    assert list(blobs.keys(f"{uid}/exports/")) == []  # nothing half-made is kept
    blobs.put_bytes(key, good)
    again = client.post("/api/v1/me/exports", headers=h(token)).json()["id"]
    assert again != failed_id
    assert download(client, token, again).read(f"media/uploads/{upload_id}") == clip.read_bytes()


@pytest.mark.parametrize("queue", ["sqlite-queue", "redis"])
def test_asking_twice_while_queued_makes_one_export_which_a_worker_requeues(
    platform: Platform,
    settings: Settings,
    clip: Path,
    queue: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if queue == "redis":
        monkeypatch.setattr(
            platform.regions["sg"], "redis_url", request.getfixturevalue("fresh_redis")
        )
    queued = settings.model_copy(update={"jobs_immediate": False})
    uid, _, token = make_user(platform, settings, handle="ava", jurisdiction="DE")
    user = access_session(platform, token)
    first = request_export(platform, queued, user)
    assert request_export(platform, queued, user) == first
    assert export_status(platform, queued, user, first)["state"] == "queued"
    huey = jobs.queue(platform.regions["sg"])
    assert type(huey.storage).__name__ == ("RedisStorage" if queue == "redis" else "SqliteStorage")
    assert huey.pending_count() == 1  # one job for the two requests
    assert requeue_unfinished_exports(platform, queued, "sg") == [first]
    assert huey.pending_count() == 2
    huey.flush()
    do_build_export(platform, queued, region="sg", export_id=first)
    assert export_status(platform, queued, user, first)["state"] == "ready"
    assert request_export(platform, queued, user) != first  # a ready one is not reused
