"""Create through the HTTP API, as a client would: upload, edit, publish, watch the job, play."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helpers import make_user, row_count
from reelm.config import Settings
from reelm.media.models import PublishedVideo
from reelm.media.synth import make_test_clip
from reelm.residency.scan import do_scan
from reelm.residency.store import Platform


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_test_clip(
        tmp_path_factory.mktemp("clips") / "clip.mp4", seconds=3.0, width=360, height=640
    )


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(client: TestClient, token: str, path: Path) -> dict:  # type: ignore[type-arg]
    with path.open("rb") as f:
        r = client.post(
            "/api/v1/uploads/file", headers=h(token), files={"file": (path.name, f, "video/mp4")}
        )
    return {"status": r.status_code, **r.json()}


def test_upload_edit_publish_and_play_stays_in_the_creators_region(
    client: TestClient, platform: Platform, settings: Settings, clip: Path
) -> None:
    uid, region, token = make_user(platform, settings, handle="ava", jurisdiction="US")
    up = upload(client, token, clip)
    assert up["status"] == 201, up
    assert up["state"] == "ready"
    assert up["probe"]["width"] == 360
    # the raw upload is kept encrypted, in the creator's region only
    keys = list(platform.regions["us"].blobs.keys(f"{uid}/uploads/"))
    assert keys == [f"{uid}/uploads/{up['id']}.enc"]
    assert platform.regions["us"].blobs.read_bytes(keys[0])[:5] == b"RLMS1"
    assert list(platform.regions["sg"].blobs.keys()) == []

    preview = client.get(
        f"/api/v1/uploads/{up['id']}/preview",
        headers=h(token),
        params={"filter": "sepia", "intensity": 80, "at": 1.0},
    )
    assert preview.status_code == 200
    assert preview.content[:2] == b"\xff\xd8"

    r = client.post(
        "/api/v1/videos",
        headers=h(token),
        json={
            "upload_id": up["id"],
            "edit": {
                "trim_start_s": 0.5,
                "trim_end_s": 2.5,
                "speed": 1.0,
                "filter": "vintage",
                "filter_intensity": 60,
                "soundtrack": {"kind": "original"},
                "fit": "fill",
            },
            "caption": "first skate clip #skate #Portland with @liam",
            "visibility": "public",
        },
    )
    assert r.status_code == 202, r.text
    video = r.json()
    status = client.get(f"/api/v1/me/videos/{video['id']}", headers=h(token)).json()
    assert status["state"] == "ready", status
    assert status["progress"] == 100
    assert status["hashtags"] == ["skate", "portland"]
    assert status["mentions"] == ["liam"]

    public = client.get(f"/api/v1/videos/{video['id']}").json()
    assert public["creator_handle"] == "ava"
    assert public["width"] == 720
    assert public["height"] == 1280
    assert abs(public["duration_s"] - 2.0) < 0.2
    master = client.get(public["urls"]["hls"])
    assert master.status_code == 200
    assert "720p/index.m3u8" in master.text
    part = client.get(public["urls"]["mp4"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    assert len(part.content) == 100
    assert client.get(public["urls"]["poster"]).content[:2] == b"\xff\xd8"

    # every file of the video is a blob of the creator in the creator's region; nothing else moved
    assert list(platform.regions["us"].blobs.keys(f"{uid}/videos/{video['id']}/"))
    assert row_count(platform, "sg", "videos") == 0
    assert do_scan(platform).clean


def test_private_video_is_not_in_the_catalog_and_only_its_owner_gets_its_files(
    client: TestClient, platform: Platform, settings: Settings, clip: Path
) -> None:
    _, _, token = make_user(platform, settings, handle="mei", jurisdiction="SG")
    _, _, other = make_user(platform, settings, handle="ava", jurisdiction="US")
    up = upload(client, token, clip)
    vid = client.post(
        "/api/v1/videos",
        headers=h(token),
        json={
            "upload_id": up["id"],
            "edit": {"trim_start_s": 0, "trim_end_s": 2},
            "visibility": "private",
        },
    ).json()["id"]
    assert client.get(f"/api/v1/me/videos/{vid}", headers=h(token)).json()["state"] == "ready"
    with platform.global_store.session() as g:
        assert g.get(PublishedVideo, vid) is None
    assert client.get(f"/api/v1/videos/{vid}").status_code == 404
    assert client.get(f"/media/{vid}/video.mp4", headers=h(other)).status_code == 404
    anonymous = TestClient(client.app)
    assert anonymous.get(f"/media/{vid}/video.mp4").status_code == 404
    assert client.get(f"/media/{vid}/video.mp4", headers=h(token)).status_code == 200


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "empty_file"),
        (b"this is not a video, just text renamed to mp4\n" * 20, "not_a_video"),
    ],
)
def test_a_bad_upload_gets_a_clear_error_and_keeps_nothing(
    client: TestClient,
    platform: Platform,
    settings: Settings,
    tmp_path: Path,
    content: bytes,
    code: str,
) -> None:
    uid, _, token = make_user(platform, settings, handle="ava", jurisdiction="US")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    r = upload(client, token, bad)
    assert r["status"] == 422
    assert r["error"]["code"] == code
    assert r["error"]["message"]
    assert list(platform.regions["us"].blobs.keys(f"{uid}/")) == []


def test_too_large_upload_is_refused_before_a_byte_is_stored(
    client: TestClient, platform: Platform, settings: Settings
) -> None:
    _, _, token = make_user(platform, settings, handle="ava", jurisdiction="US")
    r = client.post(
        "/api/v1/uploads",
        headers={**h(token), "Tus-Resumable": "1.0.0", "Upload-Length": str(10 * 2**30)},
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "too_large"


def test_edit_outside_the_upload_is_refused(
    client: TestClient, platform: Platform, settings: Settings, clip: Path
) -> None:
    _, _, token = make_user(platform, settings, handle="ava", jurisdiction="US")
    up = upload(client, token, clip)
    r = client.post(
        "/api/v1/videos",
        headers=h(token),
        json={"upload_id": up["id"], "edit": {"trim_start_s": 0, "trim_end_s": 30}},
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "trim_out_of_range"
    r = client.post(
        "/api/v1/videos",
        headers=h(token),
        json={"upload_id": up["id"], "edit": {"trim_start_s": 0, "trim_end_s": 2, "speed": 9}},
    )
    assert r.status_code == 422


def test_resumable_upload_with_a_standard_tus_client(
    live_url: str, platform: Platform, settings: Settings, clip: Path
) -> None:
    from tusclient import client as tus

    _, _, token = make_user(platform, settings, handle="ava", jurisdiction="US")
    c = tus.TusClient(f"{live_url}/api/v1/uploads", headers=h(token))
    uploader = c.uploader(str(clip), chunk_size=16 * 1024, metadata={"filename": "clip.mp4"})
    uploader.upload_chunk()  # one chunk, then "the connection drops"
    url = uploader.url
    assert url is not None
    # a new client resumes from the server's offset
    again = tus.TusClient(f"{live_url}/api/v1/uploads", headers=h(token)).uploader(
        str(clip), chunk_size=64 * 1024, url=url
    )
    assert again.offset == 16 * 1024
    again.upload()
    import httpx

    status = httpx.get(f"{live_url}{url.split(live_url)[-1]}", headers=h(token)).json()
    assert status["state"] == "ready"
    assert status["received"] == clip.stat().st_size


def test_tus_offset_mismatch_is_a_conflict(
    client: TestClient, platform: Platform, settings: Settings
) -> None:
    _, _, token = make_user(platform, settings, handle="ava", jurisdiction="US")
    r = client.post(
        "/api/v1/uploads", headers={**h(token), "Tus-Resumable": "1.0.0", "Upload-Length": "1000"}
    )
    loc = r.headers["Location"]
    r = client.patch(
        loc,
        headers={
            **h(token),
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": "10",
            "Content-Type": "application/offset+octet-stream",
        },
        content=b"x" * 10,
    )
    assert r.status_code == 409
    assert client.head(loc, headers=h(token)).headers["Upload-Offset"] == "0"


def test_a_song_soundtrack_is_mixed_counted_and_refused_where_unlicensed(
    client: TestClient, platform: Platform, settings: Settings, clip: Path
) -> None:
    from reelm.sounds.service import do_seed_demo_songs, get_song

    songs = {s.title: s for s in do_seed_demo_songs(platform)}
    worldwide = next(s for s in songs.values() if s.territories == "*")
    us_only = songs["Hyperloop"]
    _, _, token = make_user(platform, settings, handle="mei", jurisdiction="SG")
    up = upload(client, token, clip)
    edit = {
        "trim_start_s": 0,
        "trim_end_s": 2,
        "soundtrack": {"kind": "song", "song_id": us_only.id, "offset_s": 1, "mix": 80},
    }
    r = client.post("/api/v1/videos", headers=h(token), json={"upload_id": up["id"], "edit": edit})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "song_not_licensed"
    edit["soundtrack"]["song_id"] = worldwide.id  # type: ignore[index]
    r = client.post("/api/v1/videos", headers=h(token), json={"upload_id": up["id"], "edit": edit})
    assert r.status_code == 202, r.text
    assert (
        client.get(f"/api/v1/me/videos/{r.json()['id']}", headers=h(token)).json()["state"]
        == "ready"
    )
    assert get_song(platform, worldwide.id).use_count == 1
    assert client.get(f"/api/v1/videos/{r.json()['id']}").json()["sound_id"] == worldwide.id
