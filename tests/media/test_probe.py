"""probe_upload: real clips are described correctly; hostile or broken files get a clear error, fast."""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import av
import pytest

from reelm.errors import InvalidInput
from reelm.media.probe import MediaLimits, ProbeResult, probe_upload
from reelm.media.synth import make_test_clip, make_tone

TIME_BOUND_S = 5.0


def refused(path: Path, code: str, limits: MediaLimits | None = None) -> InvalidInput:
    started = time.monotonic()
    with pytest.raises(InvalidInput) as caught:
        probe_upload(path, limits=limits)
    elapsed = time.monotonic() - started
    assert caught.value.code == code, caught.value.message
    assert caught.value.status == 422
    assert elapsed < TIME_BOUND_S, f"took {elapsed:.1f} s"
    # A message a person can act on, not an FFmpeg error string.
    assert "avformat" not in caught.value.message
    assert "Errno" not in caught.value.message
    return caught.value


def patched(source: Path, target: Path, patch: Callable[[bytearray], None]) -> Path:
    data = bytearray(source.read_bytes())
    patch(data)
    target.write_bytes(bytes(data))
    return target


def box(data: bytearray, box_type: bytes) -> int:
    """Offset of the first box of that type inside the index (the clip is faststart)."""
    at = data.find(box_type)
    assert 0 < at < data.find(b"mdat"), f"{box_type!r} not found in moov"
    return at - 4


# ---- real clips ------------------------------------------------------------------------------


def test_mp4_from_a_phone_is_described(small_clip: Path) -> None:
    result = probe_upload(small_clip)
    assert result.duration_s == pytest.approx(2.0, abs=0.05)
    assert replace(result, duration_s=2.0) == ProbeResult(
        container="mp4",
        duration_s=2.0,
        width=180,
        height=320,
        rotation=0,
        fps=30.0,
        has_audio=True,
        video_codec="h264",
        audio_codec="aac",
        size_bytes=small_clip.stat().st_size,
    )


@pytest.mark.parametrize(
    ("container", "name", "video_codec", "audio_codec"),
    [
        ("mov", "mov", "h264", "aac"),
        ("mkv", "mkv", "h264", "aac"),
        pytest.param(
            "webm",
            "webm",
            "vp8",
            "opus",
            marks=pytest.mark.skipif(
                "libvpx" not in av.codecs_available or "libopus" not in av.codecs_available,
                reason="this FFmpeg build has no VP8/Opus encoder",
            ),
        ),
    ],
)
def test_other_accepted_containers_are_described(
    tmp_path: Path, container: str, name: str, video_codec: str, audio_codec: str
) -> None:
    clip = make_test_clip(
        tmp_path / f"clip.{container}",
        seconds=1.5,
        width=160,
        height=96,
        container=container,  # type: ignore[arg-type]
    )
    result = probe_upload(clip)
    assert result.container == name
    assert (result.width, result.height) == (160, 96)
    assert result.duration_s == pytest.approx(1.5, abs=0.05)
    assert result.fps == pytest.approx(30.0)
    assert (result.video_codec, result.audio_codec) == (video_codec, audio_codec)
    assert result.has_audio


@pytest.mark.parametrize(
    ("rotation", "container", "size"),
    [
        (90, "mp4", (96, 160)),
        (270, "mp4", (96, 160)),
        (180, "mp4", (160, 96)),
        (90, "mkv", (96, 160)),
    ],
)
def test_rotated_recording_reports_its_displayed_size(
    tmp_path: Path, rotation: int, container: str, size: tuple[int, int]
) -> None:
    # Phones store portrait video as landscape pictures plus a display matrix.
    clip = make_test_clip(
        tmp_path / f"rotated.{container}",
        seconds=1.0,
        width=160,
        height=96,
        rotation=rotation,
        with_audio=False,
        container=container,  # type: ignore[arg-type]
    )
    result = probe_upload(clip)
    assert result.rotation == rotation
    assert (result.width, result.height) == size
    assert not result.has_audio
    assert result.audio_codec is None


def test_faststart_mp4_is_described(tmp_path: Path) -> None:
    clip = make_test_clip(tmp_path / "fast.mp4", seconds=1.0, width=64, height=64, faststart=True)
    assert probe_upload(clip).duration_s == pytest.approx(1.0, abs=0.05)


@pytest.mark.skipif("libvpx" not in av.codecs_available, reason="no VP8 encoder in this build")
def test_webm_without_a_declared_duration_is_measured(tmp_path: Path) -> None:
    clip = make_test_clip(
        tmp_path / "recorded.webm",
        seconds=2.0,
        width=64,
        height=64,
        container="webm",
        declare_duration=False,
    )
    with av.open(str(clip)) as container:
        assert container.duration is None  # the premise: nothing declared
    result = probe_upload(clip)
    assert result.duration_s == pytest.approx(2.0, abs=0.05)
    # such a file's stream "rate" is its time base (Chromium's claims 1000/s): the rate is
    # what was recorded
    assert result.fps == pytest.approx(30, abs=1)


@pytest.mark.skipif("libvpx" not in av.codecs_available, reason="no VP8 encoder in this build")
def test_webm_without_a_declared_duration_is_still_held_to_the_limit(tmp_path: Path) -> None:
    clip = make_test_clip(
        tmp_path / "recorded.webm",
        seconds=2.0,
        width=64,
        height=64,
        container="webm",
        declare_duration=False,
    )
    refused(clip, "too_long", MediaLimits(max_duration_s=1.0))


# ---- not a video at all ----------------------------------------------------------------------


def test_zero_byte_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    refused(path, "empty_file")


def test_text_renamed_mp4_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("Shopping list:\n- eggs\n- milk\n")
    error = refused(path, "not_a_video")
    assert "MP4, MOV, WebM or MKV" in error.message


def test_random_bytes_are_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp4"
    path.write_bytes(os.urandom(64 * 1024))
    refused(path, "not_a_video")


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    song = make_tone(tmp_path / "song.m4a", 1.0, 440.0)
    error = refused(song, "no_video_stream")
    assert "sound" in error.message


def test_missing_file_is_reported(tmp_path: Path) -> None:
    refused(tmp_path / "gone.mp4", "missing_file")


def test_directory_is_not_a_video(tmp_path: Path) -> None:
    refused(tmp_path, "not_a_video")


def test_fifo_is_refused_instead_of_blocking(tmp_path: Path) -> None:
    # Opening a FIFO for reading blocks until a writer comes: it must never be opened.
    fifo = tmp_path / "upload.mp4"
    os.mkfifo(fifo)
    refused(fifo, "not_a_video")


# ---- broken files ----------------------------------------------------------------------------


def test_upload_cut_off_before_the_index_is_corrupt(tmp_path: Path, small_clip: Path) -> None:
    data = small_clip.read_bytes()
    assert data.rfind(b"moov") > len(data) // 2  # the premise: the index is at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    error = refused(cut, "corrupt_file")
    assert "incomplete" in error.message


def test_upload_cut_off_in_the_media_data_is_corrupt(tmp_path: Path, silent_clip: Path) -> None:
    data = silent_clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) - 1000])
    refused(cut, "corrupt_file")


def test_box_claiming_more_bytes_than_the_file_is_corrupt(
    tmp_path: Path, silent_clip: Path
) -> None:
    def grow_moov(data: bytearray) -> None:
        struct.pack_into(">I", data, box(data, b"moov"), 0x7FFFFFF0)

    refused(patched(silent_clip, tmp_path / "moov.mp4", grow_moov), "corrupt_file")


def test_absurd_frame_rate_claim_is_refused(tmp_path: Path, silent_clip: Path) -> None:
    # Each frame claims to last one tick of a 15360 Hz clock: 15360 frames per second.
    def one_tick_per_frame(data: bytearray) -> None:
        stts = box(data, b"stts")
        (entries,) = struct.unpack_from(">I", data, stts + 12)
        for entry in range(entries):
            struct.pack_into(">I", data, stts + 16 + 8 * entry + 4, 1)

    refused(
        patched(silent_clip, tmp_path / "fps.mp4", one_tick_per_frame), "unsupported_frame_rate"
    )


def test_huge_frame_count_claim_is_refused_without_decoding(
    tmp_path: Path, silent_clip: Path
) -> None:
    # The sample table claims two billion frames; decoding them all would never end.
    def two_billion_frames(data: bytearray) -> None:
        stts = box(data, b"stts")
        (entries,) = struct.unpack_from(">I", data, stts + 12)
        for entry in range(entries):
            struct.pack_into(">I", data, stts + 16 + 8 * entry, 0x7FFFFFFF)

    refused(patched(silent_clip, tmp_path / "frames.mp4", two_billion_frames), "too_many_frames")


@pytest.mark.skipif("libvpx" not in av.codecs_available, reason="no VP8 encoder in this build")
def test_frames_claiming_giant_dimensions_are_refused_before_allocation(tmp_path: Path) -> None:
    # The container says 64x64 but every VP8 key frame says 16000x16000 (a 256-megapixel
    # buffer per frame): the decoder's pixel cap must refuse it instead of allocating.
    clip = make_test_clip(
        tmp_path / "small.webm",
        seconds=1.0,
        width=64,
        height=64,
        with_audio=False,
        container="webm",
    )

    def giant_key_frames(data: bytearray) -> None:
        at, count = 0, 0
        while (at := data.find(b"\x9d\x01\x2a", at + 1)) > 0:
            width, height = struct.unpack_from("<HH", data, at + 3)
            if (width & 0x3FFF, height & 0x3FFF) == (64, 64):
                struct.pack_into("<HH", data, at + 3, 16000, 16000)
                count += 1
        assert count > 0

    refused(patched(clip, tmp_path / "giant.webm", giant_key_frames), "corrupt_file")


def test_real_video_wider_than_the_limit_is_refused(tmp_path: Path) -> None:
    # A genuine 4112x16 H.264 stream: tiny to make, but its long side is over 4096.
    clip = make_test_clip(
        tmp_path / "wide.mp4", seconds=1.0, width=4112, height=16, with_audio=False
    )
    error = refused(clip, "resolution_too_high")
    assert "4112x16" in error.message


def test_video_smaller_than_the_minimum_is_refused(small_clip: Path) -> None:
    refused(small_clip, "resolution_too_low", MediaLimits(min_side_px=200))


def test_video_longer_than_the_limit_is_refused(small_clip: Path) -> None:
    error = refused(small_clip, "too_long", MediaLimits(max_duration_s=1.5))
    assert "1.5 seconds" in error.message


def test_file_larger_than_the_limit_is_refused(small_clip: Path) -> None:
    refused(small_clip, "too_large", MediaLimits(max_bytes=10_000))


def test_video_shorter_than_a_second_is_refused(tmp_path: Path) -> None:
    clip = make_test_clip(tmp_path / "blink.mp4", seconds=0.3, width=64, height=64)
    refused(clip, "too_short")


def test_many_tiny_frames_over_the_length_limit_are_refused_from_the_header(
    tmp_path: Path,
) -> None:
    # 16x16 at 240 fps: 480 frames that cost nothing to hold; the length in the header is
    # enough to refuse it, before any decoding.
    clip = make_test_clip(
        tmp_path / "tiny.mp4", seconds=2.0, width=16, height=16, fps=240, with_audio=False
    )
    refused(clip, "too_long", MediaLimits(max_duration_s=1.0))


# ---- files that point elsewhere ---------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback port that records whether anything connected to it."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    yield server
    server.close()


def assert_nobody_called(server: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        server.accept()


def test_hls_playlist_named_mp4_is_refused(tmp_path: Path, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    playlist = tmp_path / "video.mp4"
    playlist.write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n"
        f"#EXTINF:10,\nhttp://127.0.0.1:{port}/segment.ts\n#EXT-X-ENDLIST\n"
    )
    error = refused(playlist, "unsupported_container")
    assert "playlist" in error.message
    assert_nobody_called(listener)


def test_ffconcat_playlist_pointing_at_a_url_is_refused(
    tmp_path: Path, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    playlist = tmp_path / "video.mp4"
    playlist.write_text(f"ffconcat version 1.0\nfile http://127.0.0.1:{port}/a.mp4\n")
    error = refused(playlist, "unsupported_container")
    assert "playlist" in error.message
    assert_nobody_called(listener)


def test_playlist_behind_an_mp4_header_never_reaches_the_hls_demuxer(
    tmp_path: Path, listener: socket.socket
) -> None:
    # An ftyp box first, so it sniffs as MP4; the MP4 demuxer is forced and finds no index.
    port = listener.getsockname()[1]
    ftyp = struct.pack(">I4s4sI4s", 20, b"ftyp", b"isom", 0, b"isom")
    body = f"#EXTM3U\n#EXTINF:10,\nhttp://127.0.0.1:{port}/x.ts\n#EXT-X-ENDLIST\n".encode()
    disguised = tmp_path / "video.mp4"
    disguised.write_bytes(ftyp + struct.pack(">I4s", 8 + len(body), b"free") + body)
    refused(disguised, "corrupt_file")
    assert_nobody_called(listener)


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"RIFF\x00\x00\x00\x00AVI LIST", "AVI"),
        (b"FLV\x01\x05\x00\x00\x00\x09", "Flash"),
        (b"OggS\x00\x02" + bytes(40), "Ogg"),
    ],
)
def test_other_containers_are_named_and_refused(tmp_path: Path, content: bytes, what: str) -> None:
    path = tmp_path / "video.mp4"
    path.write_bytes(content + bytes(1024))
    error = refused(path, "unsupported_container")
    assert what in error.message
