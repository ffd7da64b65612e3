"""The transcode turns a generated upload into a playable HLS ladder, a faststart MP4 and a poster,
honouring the edit (trim, speed, framing, look, sound), and publishes all of it or nothing."""

from __future__ import annotations

import array
import json
import re
import struct
from fractions import Fraction
from pathlib import Path

import av
import pytest
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.filter.loudnorm import stats as loudnorm_stats
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from reelm.errors import InvalidInput
from reelm.media.schemas import EditSpec
from reelm.media.synth import make_test_clip, make_tone
from reelm.media.transcode import (
    FPS,
    LOUDNESS_LUFS,
    PUBLISHED_DIR,
    Rendition,
    TranscodeFailed,
    TranscodeResult,
    transcode,
)

# Where the resolution does not matter, one small rung keeps the test fast on 2 cores.
SMALL = (Rendition("small", 144, 256, crf=30, maxrate_kbps=400),)


def spec(**fields: object) -> EditSpec:
    return EditSpec.parse(fields)


def open_hls(playlist: Path) -> av.container.InputContainer:
    return av.open(str(playlist), "r", options={"protocol_whitelist": "file"})


def keyframe_times(container: av.container.InputContainer) -> list[float]:
    video = container.streams.video[0]
    return [
        float(packet.pts * packet.time_base)
        for packet in container.demux(video)
        if packet.is_keyframe and packet.pts is not None
    ]


def decoded_pictures(container: av.container.InputContainer) -> list[VideoFrame]:
    return list(container.decode(container.streams.video[0]))


def stereo_samples(path: Path) -> tuple[array.array[float], int]:
    """The left channel of the first sound stream, as floats, and its sample rate."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        left: array.array[float] = array.array("f")
        for frame in container.decode(stream):
            assert isinstance(frame, AudioFrame)
            assert frame.format.name == "fltp"
            left.frombytes(bytes(frame.planes[0])[: frame.samples * 4])
        return left, stream.sample_rate


def rms(samples: array.array[float]) -> float:
    return (sum(x * x for x in samples) / max(1, len(samples))) ** 0.5


def zero_crossing_hz(samples: array.array[float], rate: int) -> float:
    """The frequency of a pure tone, from how often it changes sign."""
    crossings = sum(1 for a, b in zip(samples, samples[1:], strict=False) if (a < 0) != (b < 0))
    return crossings / 2 / (len(samples) / rate)


def luma_rows(frame: VideoFrame, rows: range) -> bytes:
    plane = frame.planes[0]
    data = bytes(plane)
    return b"".join(data[r * plane.line_size : r * plane.line_size + plane.width] for r in rows)


def mean_luma(frame: VideoFrame, *, rows: range, columns: range) -> float:
    plane = frame.planes[0]
    data = bytes(plane)
    values = [data[r * plane.line_size + c] for r in rows[::4] for c in columns[::4]]
    return sum(values) / len(values)


def top_level_boxes(path: Path) -> list[bytes]:
    boxes = []
    with path.open("rb") as f:
        while header := f.read(8):
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                (size,) = struct.unpack(">Q", f.read(8))
                f.seek(size - 16, 1)
            else:
                f.seek(size - 8, 1)
            boxes.append(kind)
    return boxes


# ---- one full edit, checked from every side -------------------------------------------------


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("upload")
    return make_test_clip(folder / "upload.mp4", seconds=5.0, width=180, height=320)


@pytest.fixture(scope="module")
def published(
    upload: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, TranscodeResult, list[float]]:
    """5 s upload, trimmed to 0.25-4.75 s and played at 1.5x: 3 s of video."""
    out = tmp_path_factory.mktemp("out")
    seen: list[float] = []
    result = transcode(
        upload,
        spec(trim_start_s=0.25, trim_end_s=4.75, speed=1.5, cover_time_s=1.0),
        out,
        progress=seen.append,
    )
    return out, result, seen


def test_result_names_every_published_file_relative_to_out_dir(
    published: tuple[Path, TranscodeResult, list[float]],
) -> None:
    out, result, _ = published
    assert result.master_playlist == f"{PUBLISHED_DIR}/master.m3u8"
    assert result.mp4 == f"{PUBLISHED_DIR}/video.mp4"
    assert result.poster == f"{PUBLISHED_DIR}/poster.jpg"
    assert [(r.name, r.width, r.height) for r in result.renditions] == [
        ("720p", 720, 1280),
        ("480p", 480, 854),
    ]
    assert result.duration_s == pytest.approx(3.0)
    assert result.mp4_size_bytes == (out / result.mp4).stat().st_size
    assert result.poster_size_bytes == (out / result.poster).stat().st_size
    files = [p for p in (out / PUBLISHED_DIR).rglob("*") if p.is_file()]
    assert result.size_bytes == sum(p.stat().st_size for p in files)
    assert set(result.timings_s) >= {"probe", "audio", "video", "poster", "publish"}
    # Nothing but the published folder and the lock is left in out_dir.
    assert {p.name for p in out.iterdir()} == {PUBLISHED_DIR, ".transcode.lock"}


def test_progress_grows_from_zero_to_one(
    published: tuple[Path, TranscodeResult, list[float]],
) -> None:
    _, _, seen = published
    assert seen[0] == 0.0
    assert seen[-1] == 1.0
    assert seen == sorted(seen)
    assert len(seen) > 10


def test_mp4_is_h264_high_720p_30fps_with_2s_gops_and_aac(
    published: tuple[Path, TranscodeResult, list[float]],
) -> None:
    out, result, _ = published
    with av.open(str(out / result.mp4)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert isinstance(video, VideoStream)
        assert isinstance(audio, AudioStream)
        assert video.codec_context.name == "h264"
        assert video.codec_context.profile == "High"
        assert (video.width, video.height) == (720, 1280)
        assert video.average_rate == FPS
        assert video.frames == 3 * FPS
        assert audio.codec_context.name == "aac"
        assert audio.sample_rate in (44_100, 48_000)
        assert audio.channels == 2
        assert audio.bit_rate is not None
        assert 110_000 < audio.bit_rate < 150_000
        assert audio.duration is not None
        assert audio.time_base is not None
        assert float(audio.duration * audio.time_base) == pytest.approx(3.0, abs=0.05)
        assert keyframe_times(container) == [0.0, 2.0]


def test_mp4_has_its_index_before_its_data(
    published: tuple[Path, TranscodeResult, list[float]],
) -> None:
    out, result, _ = published
    boxes = top_level_boxes(out / result.mp4)
    assert boxes.index(b"moov") < boxes.index(b"mdat")


def test_master_playlist_lists_both_renditions(
    published: tuple[Path, TranscodeResult, list[float]],
) -> None:
    out, result, _ = published
    text = (out / result.master_playlist).read_text()
    assert text.startswith("#EXTM3U\n")
    variants = re.findall(r"#EXT-X-STREAM-INF:(.*)\n(.*)\n", text)
    assert [uri for _, uri in variants] == ["720p/index.m3u8", "480p/index.m3u8"]
    for (attributes, _), rendition in zip(variants, result.renditions, strict=True):
        assert f"RESOLUTION={rendition.width}x{rendition.height}" in attributes
        assert re.search(r'CODECS="avc1\.64[0-9a-f]{4},mp4a\.40\.2"', attributes)
        bandwidth = re.search(r"(?:^|,)BANDWIDTH=(\d+)", attributes)
        assert bandwidth is not None
        assert int(bandwidth.group(1)) == rendition.bandwidth >= rendition.average_bandwidth > 0
    assert result.renditions[0].bandwidth > result.renditions[1].bandwidth


@pytest.mark.parametrize(("index", "size"), [(0, (720, 1280)), (1, (480, 854))])
def test_each_hls_rendition_decodes_whole_with_aligned_2s_segments(
    published: tuple[Path, TranscodeResult, list[float]], index: int, size: tuple[int, int]
) -> None:
    out, result, _ = published
    playlist = out / result.renditions[index].playlist
    text = playlist.read_text()
    assert '#EXT-X-MAP:URI="init.mp4"' in text
    assert re.findall(r"#EXTINF:([\d.]+),", text) == ["2.000000", "1.000000"]
    assert all((playlist.parent / name).is_file() for name in re.findall(r"\n(seg_\d+\.m4s)", text))
    with open_hls(playlist) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}
        video = container.streams.video[0]
        assert video.codec_context.profile == "High"
        keys = keyframe_times(container)
    # Segments start on the same instants in every rendition, 2 s apart.
    assert [round(k - keys[0], 3) for k in keys] == [0.0, 2.0]
    with open_hls(playlist) as container:
        pictures = decoded_pictures(container)
    assert len(pictures) == 3 * FPS
    assert {(p.width, p.height) for p in pictures} == {size}


def test_sound_keeps_its_pitch_and_is_normalised_to_the_target_loudness(
    published: tuple[Path, TranscodeResult, list[float]],
) -> None:
    out, result, _ = published
    samples, rate = stereo_samples(out / result.mp4)
    # The upload's 440 Hz tone, played 1.5x faster with atempo: faster, not higher.
    assert zero_crossing_hz(samples[rate // 2 : -rate // 2], rate) == pytest.approx(440, rel=0.03)
    with av.open(str(out / result.mp4)) as container:
        measured = json.loads(loudnorm_stats("i=-14:tp=-1.5:lra=11", container.streams.audio[0]))
    assert float(measured["input_i"]) == pytest.approx(LOUDNESS_LUFS, abs=1.0)


def test_poster_is_the_cover_picture_at_720p(
    published: tuple[Path, TranscodeResult, list[float]],
) -> None:
    out, result, _ = published
    with av.open(str(out / result.poster)) as container:
        assert container.streams.video[0].codec_context.name == "mjpeg"
        (poster,) = decoded_pictures(container)
    assert (poster.width, poster.height) == (720, 1280)


# ---- phone clips ---------------------------------------------------------------------------


def test_rotated_phone_clip_comes_out_upright_and_fills_the_frame(tmp_path: Path) -> None:
    # Stored as landscape 320x180 with a 90° (counter-clockwise) display matrix: a player
    # shows it as portrait 180x320, the pattern's dark clock box turned into the bottom left.
    clip = make_test_clip(tmp_path / "rotated.mp4", seconds=1.0, width=320, height=180, rotation=90)
    result = transcode(clip, spec(trim_end_s=1.0), tmp_path / "out")
    with av.open(str(tmp_path / "out" / result.mp4)) as container:
        first = decoded_pictures(container)[0]
    assert (first.width, first.height) == (720, 1280)
    assert first.rotation == 0  # nothing left for players to turn
    corners = {
        "top left": mean_luma(first, rows=range(10, 170), columns=range(10, 120)),
        "top right": mean_luma(first, rows=range(10, 170), columns=range(600, 710)),
        "bottom left": mean_luma(first, rows=range(1100, 1270), columns=range(10, 120)),
        "bottom right": mean_luma(first, rows=range(1100, 1270), columns=range(600, 710)),
    }
    # Upright, the 9:16 picture fills 9:16: no bars at the top (a landscape one would have).
    assert corners["top left"] > 120
    assert corners["top right"] > 120
    assert min(corners, key=corners.__getitem__) == "bottom left"


def test_60fps_clip_becomes_30fps(tmp_path: Path) -> None:
    clip = make_test_clip(tmp_path / "60.mp4", seconds=1.5, width=144, height=256, fps=60)
    result = transcode(clip, spec(trim_end_s=1.5), tmp_path / "out", ladder=SMALL)
    with av.open(str(tmp_path / "out" / result.mp4)) as container:
        video = container.streams.video[0]
        assert video.average_rate == FPS
        times = [p.time for p in decoded_pictures(container)]
    assert len(times) == 45
    assert all(abs(b - a - 1 / FPS) < 1e-3 for a, b in zip(times, times[1:], strict=False))


def make_vfr_clip(path: Path) -> Path:
    """1.5 s of H.264 whose pictures come 20 ms, then 50 ms, then 20 ms... apart, as phones do."""
    source = av.filter.Graph()
    pattern = source.add("testsrc2", "size=144x256:rate=30")
    pixel_format = source.add("format", "yuv420p")
    sink = source.add("buffersink")
    source.link_nodes(pattern, pixel_format, sink)
    source.configure()
    with av.open(str(path), "w", format="mp4") as output:
        video = output.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 144, 256, "yuv420p"
        video.time_base = Fraction(1, 1000)
        video.codec_context.time_base = Fraction(1, 1000)
        video.options = {"preset": "ultrafast"}
        at = 0
        index = 0
        while at < 1500:
            frame = source.vpull()
            frame.pts = at
            frame.time_base = Fraction(1, 1000)
            output.mux(video.encode(frame))
            at += 20 if index % 2 == 0 else 50
            index += 1
        output.mux(video.encode(None))
    return path


def test_variable_frame_rate_clip_becomes_constant_30fps(tmp_path: Path) -> None:
    clip = make_vfr_clip(tmp_path / "vfr.mp4")
    result = transcode(clip, spec(trim_end_s=1.4), tmp_path / "out", ladder=SMALL)
    with av.open(str(tmp_path / "out" / result.mp4)) as container:
        times = [p.time for p in decoded_pictures(container)]
    assert len(times) == 42
    assert all(abs(b - a - 1 / FPS) < 1e-3 for a, b in zip(times, times[1:], strict=False))


# ---- the edit ------------------------------------------------------------------------------


def test_speed_3x_uses_chained_tempo_and_divides_the_duration(tmp_path: Path) -> None:
    clip = make_test_clip(tmp_path / "in.mp4", seconds=3.0, width=144, height=256)
    result = transcode(clip, spec(trim_end_s=3.0, speed=3.0), tmp_path / "out", ladder=SMALL)
    assert result.duration_s == pytest.approx(1.0)
    samples, rate = stereo_samples(tmp_path / "out" / result.mp4)
    assert len(samples) / rate == pytest.approx(1.0, abs=0.05)
    assert zero_crossing_hz(samples[rate // 5 : -rate // 5], rate) == pytest.approx(440, rel=0.05)


def two_part_tone(change_at_s: float) -> av.filter.Graph:
    """A graph whose sink gives 440 Hz, then 1000 Hz from `change_at_s`, in stereo float."""
    tones = av.filter.Graph()
    source = tones.add(
        "aevalsrc",
        f"exprs='0.3*sin(2*PI*if(lt(t,{change_at_s}),440,1000)*t)':s=48000:c=stereo:n=1024",
    )
    pcm = tones.add("aformat", "sample_fmts=fltp")
    sink = tones.add("abuffersink")
    tones.link_nodes(source, pcm, sink)
    tones.configure()
    return tones


def make_two_part_song(path: Path, *, seconds: float, change_at_s: float) -> Path:
    """A stereo AAC song that plays 440 Hz, then 1000 Hz from `change_at_s`."""
    tones = two_part_tone(change_at_s)
    with av.open(str(path), "w", format="ipod") as output:
        stream = output.add_stream("aac", rate=48_000)
        stream.layout = "stereo"
        written = 0
        while written < seconds * 48_000:
            frame = tones.pull()
            assert isinstance(frame, AudioFrame)
            frame.pts = written
            written += frame.samples
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path


def make_clip_whose_sound_changes(path: Path, *, seconds: float, change_at_s: float) -> Path:
    """144x256 pictures with a sound that turns from 440 Hz to 1000 Hz at `change_at_s`."""
    pictures = av.filter.Graph()
    pattern = pictures.add("testsrc2", "size=144x256:rate=30")
    pixel_format = pictures.add("format", "yuv420p")
    picture_sink = pictures.add("buffersink")
    pictures.link_nodes(pattern, pixel_format, picture_sink)
    pictures.configure()
    tones = two_part_tone(change_at_s)
    with av.open(str(path), "w", format="mp4") as output:
        video = output.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 144, 256, "yuv420p"
        video.options = {"preset": "ultrafast"}
        audio = output.add_stream("aac", rate=48_000)
        audio.layout = "stereo"
        written = 0
        for index in range(round(seconds * 30)):
            picture = pictures.vpull()
            picture.pts = index
            output.mux(video.encode(picture))
            while written < (index + 1) * 1600:  # 48000 / 30 samples per picture
                sound = tones.pull()
                assert isinstance(sound, AudioFrame)
                sound.pts = written
                written += sound.samples
                output.mux(audio.encode(sound))
        output.mux(video.encode(None))
        output.mux(audio.encode(None))
    return path


def test_trimmed_and_sped_up_sound_stays_with_its_pictures(tmp_path: Path) -> None:
    # The sound changes 2.5 s into the upload; kept from 1 s at 2x, that is 0.75 s in.
    clip = make_clip_whose_sound_changes(tmp_path / "in.mp4", seconds=4.0, change_at_s=2.5)
    edit = spec(trim_start_s=1.0, trim_end_s=4.0, speed=2.0)
    result = transcode(clip, edit, tmp_path / "out", ladder=SMALL)
    assert result.duration_s == pytest.approx(1.5)
    samples, rate = stereo_samples(tmp_path / "out" / result.mp4)
    assert len(samples) / rate == pytest.approx(1.5, abs=0.05)
    change = int(0.75 * rate)
    before = samples[rate // 10 : change - rate // 20]
    after = samples[change + rate // 20 : -rate // 10]
    assert zero_crossing_hz(before, rate) == pytest.approx(440, rel=0.03)
    assert zero_crossing_hz(after, rate) == pytest.approx(1000, rel=0.03)


def test_song_is_heard_from_its_offset_when_the_upload_is_silent(tmp_path: Path) -> None:
    clip = make_test_clip(
        tmp_path / "silent.mp4", seconds=1.0, width=144, height=256, with_audio=False
    )
    song = make_two_part_song(tmp_path / "song.m4a", seconds=6.0, change_at_s=3.0)
    heard = {}
    for offset in (0.0, 4.0):
        edit = spec(trim_end_s=1.0, soundtrack={"kind": "song", "song_id": "s", "offset_s": offset})
        out = tmp_path / f"out{offset:g}"
        result = transcode(clip, edit, out, song=song, ladder=SMALL)
        samples, rate = stereo_samples(out / result.mp4)
        assert rms(samples) > 0.05
        heard[offset] = zero_crossing_hz(samples[rate // 10 : -rate // 10], rate)
    assert heard[0.0] == pytest.approx(440, rel=0.03)
    assert heard[4.0] == pytest.approx(1000, rel=0.03)


def test_song_mix_blends_the_song_with_the_original(tmp_path: Path) -> None:
    clip = make_test_clip(tmp_path / "in.mp4", seconds=1.0, width=144, height=256)
    song = make_tone(tmp_path / "song.m4a", seconds=3.0, freq=1000.0)
    heard = {}
    for mix in (0, 100):
        edit = spec(trim_end_s=1.0, soundtrack={"kind": "song", "song_id": "s", "mix": mix})
        result = transcode(clip, edit, tmp_path / f"out{mix}", song=song, ladder=SMALL)
        samples, rate = stereo_samples(tmp_path / f"out{mix}" / result.mp4)
        heard[mix] = zero_crossing_hz(samples[rate // 10 : -rate // 10], rate)
    assert heard[0] == pytest.approx(440, rel=0.03)  # the original alone
    assert heard[100] == pytest.approx(1000, rel=0.03)  # the song alone


def test_no_sound_gives_a_silent_track(tmp_path: Path) -> None:
    clip = make_test_clip(tmp_path / "in.mp4", seconds=1.0, width=144, height=256)
    edit = spec(trim_end_s=1.0, soundtrack={"kind": "none"})
    result = transcode(clip, edit, tmp_path / "out", ladder=SMALL)
    samples, rate = stereo_samples(tmp_path / "out" / result.mp4)
    assert len(samples) / rate == pytest.approx(1.0, abs=0.05)
    assert rms(samples) == 0.0


def test_fill_crops_where_fit_adds_bars(tmp_path: Path) -> None:
    square = make_test_clip(tmp_path / "square.mp4", seconds=1.0, width=256, height=256)
    first: dict[str, VideoFrame] = {}
    for fit in ("fit", "fill"):
        result = transcode(square, spec(trim_end_s=1.0, fit=fit), tmp_path / fit, ladder=SMALL)
        with av.open(str(tmp_path / fit / result.mp4)) as container:
            first[fit] = decoded_pictures(container)[0]
    assert (first["fit"].width, first["fit"].height) == (144, 256)
    assert (first["fill"].width, first["fill"].height) == (144, 256)
    # A square in a 9:16 frame: fit leaves black bars above and below, fill has none.
    assert max(luma_rows(first["fit"], range(0, 40))) <= 20
    assert max(luma_rows(first["fill"], range(0, 40))) > 40


def test_a_look_changes_the_pictures(tmp_path: Path) -> None:
    clip = make_test_clip(tmp_path / "in.mp4", seconds=1.0, width=144, height=256)
    chroma: dict[str, bytes] = {}
    for look in (None, "grayscale"):
        name = look or "plain"
        result = transcode(clip, spec(trim_end_s=1.0, filter=look), tmp_path / name, ladder=SMALL)
        with av.open(str(tmp_path / name / result.mp4)) as container:
            picture = decoded_pictures(container)[0]
        plane = picture.planes[1]
        chroma[name] = bytes(plane)[: plane.width]
    assert len(set(chroma["plain"])) > 4  # colour
    assert max(abs(v - 128) for v in chroma["grayscale"]) <= 2  # none left


# ---- failures and restarts -----------------------------------------------------------------


class Killed(Exception):
    pass


def test_kill_mid_transcode_publishes_nothing_and_a_rerun_succeeds(tmp_path: Path) -> None:
    clip = make_test_clip(tmp_path / "in.mp4", seconds=2.0, width=144, height=256)
    out = tmp_path / "out"

    def die_halfway(fraction: float) -> None:
        if fraction > 0.4:
            raise Killed

    edit = spec(trim_end_s=2.0)
    with pytest.raises(Killed):
        transcode(clip, edit, out, progress=die_halfway, ladder=SMALL)
    assert not (out / PUBLISHED_DIR).exists()
    # A kill -9 cannot clean up: leave a work folder behind as one would.
    leftover = out / ".transcode-killed"
    (leftover / "small").mkdir(parents=True)
    (leftover / "small" / "seg_00000.m4s").write_bytes(b"half")
    result = transcode(clip, edit, out, ladder=SMALL)
    assert not leftover.exists()
    assert (out / result.master_playlist).is_file()
    with open_hls(out / result.renditions[0].playlist) as container:
        assert len(decoded_pictures(container)) == 2 * FPS
    # A second run replaces the publication whole.
    again = transcode(clip, spec(trim_end_s=1.0), out, ladder=SMALL)
    assert again.duration_s == pytest.approx(1.0)
    assert sorted(p.name for p in out.iterdir()) == [".transcode.lock", PUBLISHED_DIR]


def test_edit_outside_the_upload_is_refused_before_any_work(tmp_path: Path) -> None:
    clip = make_test_clip(tmp_path / "in.mp4", seconds=1.0, width=144, height=256)
    with pytest.raises(InvalidInput) as refused:
        transcode(clip, spec(trim_end_s=5.0), tmp_path / "out", ladder=SMALL)
    assert refused.value.code == "trim_out_of_range"
    assert not (tmp_path / "out").exists()


def test_unreadable_song_fails_with_a_message_to_act_on(tmp_path: Path) -> None:
    clip = make_test_clip(tmp_path / "in.mp4", seconds=1.0, width=144, height=256)
    song = tmp_path / "song.m4a"
    song.write_text("not a song")
    edit = spec(trim_end_s=1.0, soundtrack={"kind": "song", "song_id": "s"})
    with pytest.raises(TranscodeFailed) as failed:
        transcode(clip, edit, tmp_path / "out", song=song, ladder=SMALL)
    assert "pick another song" in failed.value.message
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".transcode.lock"]


def test_song_offset_past_its_end_is_the_creators_to_fix(tmp_path: Path) -> None:
    clip = make_test_clip(tmp_path / "in.mp4", seconds=1.0, width=144, height=256)
    song = make_tone(tmp_path / "song.m4a", seconds=2.0, freq=1000.0)
    edit = spec(trim_end_s=1.0, soundtrack={"kind": "song", "song_id": "s", "offset_s": 5.0})
    with pytest.raises(InvalidInput) as refused:
        transcode(clip, edit, tmp_path / "out", song=song, ladder=SMALL)
    assert refused.value.code == "song_offset_out_of_range"
