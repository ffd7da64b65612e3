"""Original sounds: a public video's own audio, offered for reuse by its creator, becomes a
catalog sound in every region; others pick it in Create."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from helpers import make_user, row_count
from reelm.config import Settings
from reelm.db import utcnow
from reelm.media.models import Upload, Video
from reelm.media.publish import do_publish
from reelm.media.synth import make_test_clip
from reelm.residency.scan import do_scan
from reelm.residency.store import Platform
from reelm.sounds.audio import generated_cover
from reelm.sounds.models import Song, SongUse
from reelm.sounds.originals import do_remove_original_sounds
from reelm.sounds.search import search_songs, trending_songs
from reelm.sounds.service import get_song


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "sound": make_test_clip(folder / "sound.mp4", seconds=3.0, width=96, height=160),
        "silent": make_test_clip(
            folder / "silent.mp4", seconds=3.0, width=96, height=160, with_audio=False
        ),
    }


def published(
    platform: Platform,
    *,
    owner_id: str,
    region: str,
    clip: Path,
    visibility: str = "public",
    allow_sound_reuse: bool = True,
    soundtrack: dict[str, object] | None = None,
    sound_id: str | None = None,
) -> str:
    """A ready video with its published files in the creator's region (as the transcode leaves
    them), then Create's publish step."""
    store = platform.regions[region]
    with store.transaction() as s:
        upload = Upload(owner_id=owner_id, declared_size=1, received=1, state="ready")
        s.add(upload)
        s.flush()
        edit = {
            "trim_start_s": 0,
            "trim_end_s": 3,
            "soundtrack": soundtrack or {"kind": "original"},
        }
        video = Video(
            owner_id=owner_id,
            upload_id=upload.id,
            edit=json.dumps(edit),
            visibility=visibility,
            allow_sound_reuse=allow_sound_reuse,
            sound_id=sound_id,
            state="ready",
            progress=100,
            duration_s=3.0,
            width=96,
            height=160,
            published_at=utcnow(),
        )
        s.add(video)
        s.flush()
        video_id = video.id
    store.blobs.put_file(f"{owner_id}/videos/{video_id}/video.mp4", clip)
    store.blobs.put_bytes(
        f"{owner_id}/videos/{video_id}/poster.jpg", generated_cover("poster", "x", [0.3] * 50)
    )
    do_publish(platform, store, video_id)
    return video_id


def original_of(platform: Platform, video_id: str) -> Song | None:
    with platform.global_store.session() as g:
        return g.scalar(select(Song).where(Song.original_of_video == video_id))


def test_a_public_video_that_allows_reuse_becomes_a_sound_in_every_region(
    platform: Platform, settings: Settings, clips: dict[str, Path]
) -> None:
    uid, region, _ = make_user(platform, settings, handle="ava", jurisdiction="US")
    video_id = published(platform, owner_id=uid, region=region, clip=clips["sound"])
    song = original_of(platform, video_id)
    assert song is not None
    assert song.title == "original sound - @ava"
    assert song.artist == "ava"
    assert song.territories == "*"
    assert song.cover == "video"
    assert song.duration_s == pytest.approx(3.0, abs=0.1)
    assert song.use_count == 1
    assert len(song.peaks) == 200
    # The sound is public: every region has the files, the audio checked against one sha256.
    for store in platform.regions.values():
        audio = store.blobs.read_bytes(song.blob_key)
        assert hashlib.sha256(audio).hexdigest() == song.sha256
        assert store.blobs.exists(f"catalog/songs/{song.id}.preview.m4a")
        assert store.blobs.read_bytes(f"catalog/songs/{song.id}.jpg")[:2] == b"\xff\xd8"
    # The creator's own files and rows stay in their region.
    assert not list(platform.regions["sg"].blobs.keys(f"{uid}/"))
    assert row_count(platform, "sg", "videos") == 0
    assert do_scan(platform).clean
    # Others find it, and its video is its first use.
    assert [s.id for s in search_songs(platform, q="original ava").items] == [song.id]
    assert trending_songs(platform).items[0].uses_last_7_days == 1
    # Publishing again (a retried job) makes no second sound.
    do_publish(platform, platform.regions[region], video_id)
    with platform.global_store.session() as g:
        assert g.scalar(select(func.count()).select_from(Song)) == 1
        assert g.scalar(select(func.count()).select_from(SongUse)) == 1


@pytest.mark.parametrize(
    "case",
    ["reuse not allowed", "followers only", "private", "silenced", "song chosen", "no sound"],
)
def test_no_original_sound_unless_public_allowed_and_audible(
    platform: Platform, settings: Settings, clips: dict[str, Path], case: str
) -> None:
    uid, region, _ = make_user(platform, settings, handle="ben", jurisdiction="US")
    song_id = None
    if case == "song chosen":
        other = published(
            platform,
            owner_id=make_user(platform, settings, handle="cyd", jurisdiction="US")[0],
            region="us",
            clip=clips["sound"],
        )
        origin = original_of(platform, other)
        assert origin is not None
        song_id = origin.id
    video_id = published(
        platform,
        owner_id=uid,
        region=region,
        clip=clips["silent" if case == "no sound" else "sound"],
        allow_sound_reuse=case != "reuse not allowed",
        visibility={"followers only": "followers", "private": "private"}.get(case, "public"),
        soundtrack={"kind": "none"} if case == "silenced" else None,
        sound_id=song_id,
    )
    assert original_of(platform, video_id) is None
    if song_id is not None:
        assert get_song(platform, song_id).use_count == 2


def test_an_original_sound_goes_when_its_video_is_no_longer_public(
    platform: Platform, settings: Settings, clips: dict[str, Path]
) -> None:
    uid, region, _ = make_user(platform, settings, handle="dee", jurisdiction="US")
    video_id = published(platform, owner_id=uid, region=region, clip=clips["sound"])
    song = original_of(platform, video_id)
    assert song is not None
    assert do_remove_original_sounds(platform) == 0
    store = platform.regions[region]
    with store.transaction() as s:
        video = s.get(Video, video_id)
        assert video is not None
        video.visibility = "private"
    do_publish(platform, store, video_id)  # withdraws it from the catalog
    assert do_remove_original_sounds(platform) == 1
    assert original_of(platform, video_id) is None
    for s in platform.regions.values():
        assert not list(s.blobs.keys(f"catalog/songs/{song.id}"))


def test_others_use_an_original_sound_in_create(
    client: TestClient, platform: Platform, settings: Settings, clips: dict[str, Path]
) -> None:
    _, _, ava = make_user(platform, settings, handle="ava", jurisdiction="US")
    _, _, mei = make_user(platform, settings, handle="mei", jurisdiction="SG")

    def create(token: str, soundtrack: dict[str, object]) -> str:
        with clips["sound"].open("rb") as f:
            up = client.post(
                "/api/v1/uploads/file",
                headers={"Authorization": f"Bearer {token}"},
                files={"file": ("clip.mp4", f, "video/mp4")},
            ).json()
        r = client.post(
            "/api/v1/videos",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "upload_id": up["id"],
                "edit": {"trim_start_s": 0, "trim_end_s": 2, "soundtrack": soundtrack},
            },
        )
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    first = create(ava, {"kind": "original"})
    shown = client.get(f"/api/v1/videos/{first}").json()
    assert shown["sound_id"] is None
    assert shown["sound"]["title"] == "original sound - @ava"
    assert shown["sound"]["original"] is True
    assert shown["sound"]["licensed_here"] is True
    sound_id = shown["sound"]["id"]
    detail = client.get(f"/api/v1/sounds/{sound_id}").json()
    assert detail["original_of_video"] == first
    assert detail["duration_s"] == pytest.approx(2.0, abs=0.1)

    second = create(mei, {"kind": "song", "song_id": sound_id, "mix": 100})
    assert client.get(f"/api/v1/videos/{second}").json()["sound_id"] == sound_id
    assert get_song(platform, sound_id).use_count == 2
    page = client.get(f"/api/v1/sounds/{sound_id}/videos").json()
    assert page["videos"] == 2
    assert {item["video"]["id"] for item in page["page"]["items"]} == {first, second}
