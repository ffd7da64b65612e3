"""Demo videos are made through the real Create pipeline, in each creator's region, once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from helpers import make_user, row_count
from reelm import demo
from reelm.config import Settings
from reelm.media.models import PublishedVideo
from reelm.media.synth import make_tone
from reelm.residency.scan import do_scan
from reelm.residency.store import Platform
from reelm.social.models import PublicComment
from reelm.sounds.service import do_import_song


def test_demo_videos_are_published_with_their_song_in_their_region_and_only_once(
    platform: Platform, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ava = next(v for v in demo.DEMO_VIDEOS if v.handle == "ava")
    mei = next(v for v in demo.DEMO_VIDEOS if v.handle == "mei")
    monkeypatch.setattr(
        demo, "DEMO_VIDEOS", [demo.DemoVideo(**{**vars(v), "seconds": 1.5}) for v in (ava, mei)]
    )
    ava_id, _, _ = make_user(platform, settings, handle="ava", jurisdiction="US")
    mei_id, _, _ = make_user(platform, settings, handle="mei", jurisdiction="SG")
    songs = {}
    for n, title in enumerate((ava.song, mei.song)):
        assert title is not None
        path = make_tone(tmp_path / f"{n}.m4a", 6.0, 330.0 + 110 * n)
        songs[title] = do_import_song(platform, path=path, title=title, artist="Demo").id

    lines: list[str] = []
    assert demo.do_seed_demo_videos(platform, settings, progress=lines.append) == 2
    assert len(lines) == 2
    with platform.global_store.session() as g:
        rows = {v.creator_handle: v for v in g.scalars(select(PublishedVideo))}
        comments = g.scalar(select(func.count()).select_from(PublicComment))
    assert rows["ava"].sound_id == songs[ava.song]
    assert rows["ava"].region == "us"
    assert rows["mei"].sound_id == songs[mei.song]
    assert rows["mei"].region == "sg"
    assert rows["ava"].like_count == 1  # the two like each other's videos
    assert comments == 2
    # the raw uploads and the video rows stay in each creator's own region
    assert row_count(platform, "us", "videos", ava_id) == 1
    assert row_count(platform, "sg", "videos", mei_id) == 1
    assert row_count(platform, "sg", "videos", ava_id) == 0
    assert do_scan(platform).violations == []

    assert demo.do_seed_demo_videos(platform, settings) == 0  # idempotent
    with platform.global_store.session() as g:
        assert g.scalar(select(func.count()).select_from(PublishedVideo)) == 2
