"""GET /api/v1/sounds/{id}/audio: the .m4a with HTTP Range support (RFC 9110 §14)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reelm.residency.store import Platform
from reelm.sounds.service import do_import_song


@pytest.fixture
def song(platform: Platform, tone_m4a: Path) -> tuple[str, bytes]:
    song = do_import_song(platform, path=tone_m4a, title="Ranged", artist="A")
    return song.id, platform.regions["us"].blobs.read_bytes(song.blob_key)


def test_the_whole_file_says_it_accepts_ranges(client: TestClient, song: tuple[str, bytes]) -> None:
    song_id, data = song
    r = client.get(f"/api/v1/sounds/{song_id}/audio")
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-type"] == "audio/mp4"
    assert int(r.headers["content-length"]) == len(data)


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=-100", -100, -1),
        ("bytes=100-", 100, -1),
        ("bytes=50-10000000", 50, -1),
    ],
)
def test_a_range_gets_206_with_exactly_those_bytes(
    client: TestClient, song: tuple[str, bytes], header: str, first: int, last: int
) -> None:
    song_id, data = song
    size = len(data)
    start, end = first % size, last % size
    r = client.get(f"/api/v1/sounds/{song_id}/audio", headers={"Range": header})
    assert r.status_code == 206
    assert r.content == data[start : end + 1]
    assert r.headers["content-range"] == f"bytes {start}-{end}/{size}"
    assert int(r.headers["content-length"]) == end - start + 1
    assert r.headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize("header", ["bytes={size}-", "bytes={size}-{size}", "bytes=-0"])
def test_an_unsatisfiable_range_gets_416_with_the_size(
    client: TestClient, song: tuple[str, bytes], header: str
) -> None:
    song_id, data = song
    r = client.get(
        f"/api/v1/sounds/{song_id}/audio", headers={"Range": header.format(size=len(data))}
    )
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(data)}"


def test_audio_of_an_unknown_song_is_404_with_the_error_shape(client: TestClient) -> None:
    r = client.get("/api/v1/sounds/" + "a" * 32 + "/audio")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "song_not_found"


def test_preview_and_cover_are_served_with_their_types(
    client: TestClient, platform: Platform, song: tuple[str, bytes]
) -> None:
    song_id, _ = song
    detail = client.get(f"/api/v1/sounds/{song_id}").json()
    assert detail["preview_url"] == f"/api/v1/sounds/{song_id}/preview"
    assert detail["cover_url"] == f"/api/v1/sounds/{song_id}/cover"
    assert detail["loudness_lufs"] == pytest.approx(-14.0, abs=1.0)
    assert len(detail["waveform"]) == 200
    preview = client.get(detail["preview_url"], headers={"Range": "bytes=0-9"})
    assert preview.status_code == 206
    assert preview.headers["content-type"] == "audio/mp4"
    assert (
        preview.content
        == platform.regions["us"].blobs.read_bytes(f"catalog/songs/{song_id}.preview.m4a")[:10]
    )
    cover = client.get(detail["cover_url"])
    assert cover.status_code == 200
    assert cover.headers["content-type"] == "image/jpeg"
    assert cover.content[:2] == b"\xff\xd8"


def test_a_missing_preview_is_404_with_its_own_code(
    client: TestClient, platform: Platform, song: tuple[str, bytes]
) -> None:
    song_id, _ = song
    for store in platform.regions.values():
        store.blobs.delete(f"catalog/songs/{song_id}.preview.m4a")
    r = client.get(f"/api/v1/sounds/{song_id}/preview")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "song_preview_missing"
