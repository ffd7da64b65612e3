"""Public media a CDN can cache: versioned URLs served immutable with an ETag and 304s, Range
requests kept, and the URLs of a withdrawn video no longer served."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from helpers import make_user, make_video
from reelm.config import Settings
from reelm.media.models import Video
from reelm.media.publish import do_publish
from reelm.residency.store import Platform


def put_files(platform: Platform, region: str, owner: str, video_id: str, tmp: Path) -> bytes:
    body = bytes(range(256)) * 40
    for name, data in (("poster.jpg", b"\xff\xd8poster"), ("video.mp4", body)):
        f = tmp / name
        f.write_bytes(data)
        platform.region(region).blobs.put_file(f"{owner}/videos/{video_id}/{name}", f)
    return body


def test_public_media_is_versioned_immutable_and_answers_304(
    client: TestClient, platform: Platform, settings: Settings, tmp_path: Path
) -> None:
    ava_id, _, ava = make_user(platform, settings, handle="ava", jurisdiction="US")
    video_id = make_video(platform, owner_id=ava_id, region="us")
    body = put_files(platform, "us", ava_id, video_id, tmp_path)
    urls = client.get(f"/api/v1/videos/{video_id}").json()["urls"]
    assert urls["mp4"].startswith(f"/media/v/{video_id}/")
    feed_urls = client.get("/api/v1/feed/for-you").json()["items"][0]["video"]["urls"]
    assert feed_urls == urls  # every list names the same versioned URLs

    r = client.get(urls["mp4"])
    assert r.status_code == 200
    assert r.content == body
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    etag = r.headers["etag"]
    again = client.get(urls["mp4"], headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert client.get(urls["mp4"], headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    part = client.get(urls["mp4"], headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == body[10:20]
    assert part.headers["etag"] == etag
    # another version, and a file that is not there
    other = urls["mp4"].replace(urls["mp4"].split("/")[4], "0" * 16)
    assert client.get(other).status_code == 404
    assert client.get(urls["poster"].replace("poster.jpg", "nope.jpg")).status_code == 404
    # the unversioned URL still works for old links, cached briefly
    old = client.get(f"/media/{video_id}/poster.jpg")
    assert old.status_code == 200
    assert old.headers["cache-control"] == "public, max-age=3600"

    # the creator makes it private: its URLs stop being served to others at once
    with platform.region("us").transaction() as s:
        video = s.get(Video, video_id)
        assert video is not None
        video.visibility = "private"
    do_publish(platform, platform.region("us"), video_id)
    assert client.get(urls["mp4"]).status_code == 404
    assert client.get(f"/media/{video_id}/video.mp4").status_code == 404
    mine = client.get(urls["poster"], headers={"Authorization": f"Bearer {ava}"})
    assert mine.status_code == 200  # the creator still sees their own video
    assert mine.headers["cache-control"] == "private, max-age=3600"
