"""Media generated once per run with `reelm.media.synth`: small, real clips to probe and filter."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelm.media.synth import make_test_clip


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def small_clip(media_dir: Path) -> Path:
    """2 s, 180x320 portrait H.264/AAC MP4 with the index at the end, as phones write it."""
    return make_test_clip(media_dir / "small.mp4", seconds=2.0, width=180, height=320)


@pytest.fixture(scope="session")
def silent_clip(media_dir: Path) -> Path:
    """1 s, 64x64 H.264 without sound and with the index first: easy to patch byte by byte."""
    return make_test_clip(
        media_dir / "silent.mp4",
        seconds=1.0,
        width=64,
        height=64,
        with_audio=False,
        faststart=True,
    )


@pytest.fixture(scope="session")
def clip_720p(media_dir: Path) -> Path:
    """3 s of 1280x720: the size the preview budget is set for."""
    return make_test_clip(media_dir / "hd.mp4", seconds=3.0, width=1280, height=720)
