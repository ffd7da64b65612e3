"""The issue's end-to-end case, through the HTTP API only: a creator uploads a phone clip (stored
rotated 90°, about 60 fps with a variable frame rate), picks a filter and a song from the
library, publishes, and gets HLS and an MP4 that play as edited. Every file is downloaded the way
a player gets it, through /media/... (Range requests for the MP4), and checked with PyAV."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from fastapi.testclient import TestClient

from helpers import make_user
from reelm.config import Settings
from reelm.media.transcode import FPS, GOP_S
from reelm.residency.store import Platform
from reelm.sounds.service import do_import_song

TRIM_START_S, TRIM_END_S, SPEED = 0.5, 5.3, 1.2
OUTPUT_S = (TRIM_END_S - TRIM_START_S) / SPEED  # 4.0 s
SONG_QUIET_S = 4.0  # the song is silent until here, then a 1000 Hz tone: start it here
SONG_HZ, CLIP_HZ = 1000.0, 440.0
RATE = 48_000


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sound_graph(expression: str) -> av.filter.Graph:
    graph = av.filter.Graph()
    source = graph.add("aevalsrc", f"exprs='{expression}':s={RATE}:c=stereo:n=1024")
    pcm = graph.add("aformat", "sample_fmts=fltp")
    sink = graph.add("abuffersink")
    graph.link_nodes(source, pcm, sink)
    graph.configure()
    return graph


def make_phone_clip(path: Path, seconds: float) -> Path:
    """What a phone writes: landscape 320x180 pixels with a 90° display matrix (shown as
    portrait 180x320), pictures 10 ms then 23 ms apart (about 60 fps, variable), AAC sound."""
    pictures = av.filter.Graph()
    pattern = pictures.add("testsrc2", "size=320x180:rate=60")
    pixel_format = pictures.add("format", "yuv420p")
    picture_sink = pictures.add("buffersink")
    pictures.link_nodes(pattern, pixel_format, picture_sink)
    pictures.configure()
    tone = sound_graph(f"0.3*sin(2*PI*{CLIP_HZ:g}*t)")
    with av.open(str(path), "w", format="mp4") as output:
        video = output.add_stream("libx264", rate=60)
        assert isinstance(video, VideoStream)
        video.width, video.height, video.pix_fmt = 320, 180, "yuv420p"
        video.time_base = Fraction(1, 1000)
        video.codec_context.time_base = Fraction(1, 1000)
        video.options = {"preset": "ultrafast"}
        video.set_display_rotation(90)
        audio = output.add_stream("aac", rate=RATE)
        assert isinstance(audio, AudioStream)
        audio.layout = "stereo"
        at_ms, index, samples = 0, 0, 0
        while at_ms < seconds * 1000:
            frame = pictures.vpull()
            frame.pts, frame.time_base = at_ms, Fraction(1, 1000)
            output.mux(video.encode(frame))
            while samples < (at_ms / 1000 + 0.05) * RATE:
                sound = tone.pull()
                assert isinstance(sound, AudioFrame)
                sound.pts, sound.time_base = samples, Fraction(1, RATE)
                samples += sound.samples
                output.mux(audio.encode(sound))
            at_ms += 10 if index % 2 == 0 else 23
            index += 1
        output.mux(video.encode(None))
        output.mux(audio.encode(None))
    return path


def make_song(path: Path, seconds: float) -> Path:
    """Silent until SONG_QUIET_S, then a 1000 Hz tone: only a song started there is heard at
    once."""
    graph = sound_graph(f"if(lt(t,{SONG_QUIET_S:g}),0,0.4*sin(2*PI*{SONG_HZ:g}*t))")
    with av.open(str(path), "w", format="ipod") as output:
        stream = output.add_stream("aac", rate=RATE)
        assert isinstance(stream, AudioStream)
        stream.layout = "stereo"
        written = 0
        while written < seconds * RATE:
            frame = graph.pull()
            assert isinstance(frame, AudioFrame)
            frame.pts, frame.time_base = written, Fraction(1, RATE)
            written += frame.samples
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path


def tus_upload(client: TestClient, token: str, path: Path) -> dict:  # type: ignore[type-arg]
    data = path.read_bytes()
    tus = {**h(token), "Tus-Resumable": "1.0.0"}
    created = client.post(
        "/api/v1/uploads",
        headers={**tus, "Upload-Length": str(len(data)), "Upload-Metadata": "filename cGhvbmU="},
    )
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    half = len(data) // 2
    for offset, chunk in ((0, data[:half]), (half, data[half:])):
        r = client.patch(
            location,
            headers={
                **tus,
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
            },
            content=chunk,
        )
        assert r.status_code == 204, r.text
    status = client.get(location, headers=h(token))
    assert status.status_code == 200
    return status.json()  # type: ignore[no-any-return]


def download(client: TestClient, token: str, url: str, target: Path) -> Path:
    r = client.get(url, headers=h(token))
    assert r.status_code == 200, (url, r.status_code)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(r.content)
    return target


def download_by_ranges(client: TestClient, token: str, url: str, target: Path) -> Path:
    """The MP4 as a player seeking in it reads it: byte ranges, each answered 206."""
    step = 64 * 1024
    first = client.get(url, headers={**h(token), "Range": f"bytes=0-{step - 1}"})
    assert first.status_code == 206
    total = int(first.headers["Content-Range"].rsplit("/", 1)[1])
    data = bytearray(first.content)
    while len(data) < total:
        end = min(len(data) + step, total) - 1
        part = client.get(url, headers={**h(token), "Range": f"bytes={len(data)}-{end}"})
        assert part.status_code == 206
        assert part.headers["Content-Range"] == f"bytes {len(data)}-{end}/{total}"
        data += part.content
    assert len(data) == total
    target.write_bytes(bytes(data))
    return target


def left_channel(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "aac"
        assert stream.sample_rate == RATE
        parts = [frame.to_ndarray()[0] for frame in container.decode(stream)]
    return np.concatenate(parts)


def band_energy(samples: np.ndarray, hz: float) -> float:
    """Mean power of `samples` at `hz` (a single-bin DFT over a Hann window)."""
    n = len(samples)
    window = np.hanning(n)
    phase = np.exp(-2j * np.pi * hz * np.arange(n) / RATE)
    return float(abs(np.sum(samples * window * phase)) ** 2 / n**2)


def mean_luma(frame: VideoFrame, rows: range, columns: range) -> float:
    luma = frame.to_ndarray()[: frame.height, : frame.width]  # yuv420p: Y rows first
    return float(luma[rows.start : rows.stop, columns.start : columns.stop].mean())


def check_pictures(frames: list[VideoFrame], size: tuple[int, int]) -> list[float]:
    """Every picture at `size`, 1/FPS apart (constant rate), as many as the output lasts."""
    assert len(frames) == round(OUTPUT_S * FPS)
    assert {(f.width, f.height) for f in frames} == {size}
    times = [float(f.time) for f in frames if f.time is not None]
    assert len(times) == len(frames)
    steps = np.diff(np.array(times))
    assert np.allclose(steps, 1 / FPS, atol=1e-3), sorted(set(np.round(steps, 4)))
    return times


@pytest.fixture(scope="module")
def phone_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_phone_clip(tmp_path_factory.mktemp("phone") / "phone.mp4", seconds=6.0)


def test_phone_clip_with_a_filter_and_a_song_publishes_playable_hls_and_mp4(
    client: TestClient,
    platform: Platform,
    settings: Settings,
    phone_clip: Path,
    tmp_path: Path,
) -> None:
    song = do_import_song(
        platform,
        path=make_song(tmp_path / "song.m4a", seconds=10.0),
        title="Late Tone",
        artist="Reelm Test Band",
    )
    _, region, token = make_user(platform, settings, handle="ava", jurisdiction="US")

    uploaded = tus_upload(client, token, phone_clip)
    assert uploaded["state"] == "ready", uploaded
    probe = uploaded["probe"]
    assert (probe["width"], probe["height"], probe["rotation"]) == (180, 320, 90)
    assert probe["fps"] > 50

    filters = {f["name"] for f in client.get("/api/v1/filters").json()}
    assert "cool" in filters
    r = client.post(
        "/api/v1/videos",
        headers=h(token),
        json={
            "upload_id": uploaded["id"],
            "edit": {
                "trim_start_s": TRIM_START_S,
                "trim_end_s": TRIM_END_S,
                "speed": SPEED,
                "filter": "cool",
                "filter_intensity": 60,
                "soundtrack": {
                    "kind": "song",
                    "song_id": song.id,
                    "offset_s": SONG_QUIET_S,
                    "mix": 80,
                },
                "fit": "fill",
            },
            "caption": "morning ride #bike",
            "visibility": "public",
        },
    )
    assert r.status_code == 202, r.text
    video_id = r.json()["id"]
    mine = client.get(f"/api/v1/me/videos/{video_id}", headers=h(token)).json()
    assert mine["state"] == "ready", mine
    public = client.get(f"/api/v1/videos/{video_id}").json()
    assert (public["width"], public["height"]) == (720, 1280)
    assert public["duration_s"] == pytest.approx(OUTPUT_S, abs=0.05)
    assert public["sound_id"] == song.id

    # ---- HLS: the master playlist, each rendition's playlist, init and every segment ----
    files = tmp_path / "hls"
    master = download(client, token, public["urls"]["hls"], files / "master.m3u8").read_text()
    variants = re.findall(r"#EXT-X-STREAM-INF:(.*)\n(.*)\n", master)
    assert [uri for _, uri in variants] == ["720p/index.m3u8", "480p/index.m3u8"]
    base = public["urls"]["hls"].rsplit("/", 1)[0]
    for (attributes, uri), size in zip(variants, [(720, 1280), (480, 854)], strict=True):
        assert f"RESOLUTION={size[0]}x{size[1]}" in attributes
        assert re.search(r'CODECS="avc1\.64[0-9a-f]{4},mp4a\.40\.2"', attributes)  # High + AAC
        folder = uri.split("/")[0]
        playlist = download(client, token, f"{base}/{uri}", files / uri).read_text()
        assert "#EXT-X-ENDLIST" in playlist
        init = download(client, token, f"{base}/{folder}/init.mp4", files / folder / "init.mp4")
        segments = re.findall(r"#EXTINF:([\d.]+),\n(\S+)", playlist)
        assert [float(d) for d, _ in segments] == pytest.approx([2.0, 2.0], abs=0.01)
        pictures: list[VideoFrame] = []
        for number, (_, name) in enumerate(segments):
            segment = download(client, token, f"{base}/{folder}/{name}", files / folder / name)
            # Each segment decodes on its own after the init section, starting on a keyframe.
            alone = files / folder / f"alone_{number}.mp4"
            alone.write_bytes(init.read_bytes() + segment.read_bytes())
            with av.open(str(alone)) as container:
                video = container.streams.video[0]
                assert video.codec_context.profile == "High"
                assert container.streams.audio[0].codec_context.name == "aac"
                decoded = list(container.decode(video))
            assert decoded, name
            assert decoded[0].key_frame
            pictures += decoded
        assert len(pictures) == round(OUTPUT_S * FPS)
        assert {(p.width, p.height) for p in pictures} == {size}
        with av.open(
            str(files / uri), options={"protocol_whitelist": "file"}
        ) as whole:  # the playlist as a player reads it
            check_pictures(list(whole.decode(whole.streams.video[0])), size)

    # ---- the progressive MP4, read with Range requests ----
    mp4 = download_by_ranges(client, token, public["urls"]["mp4"], tmp_path / "video.mp4")
    with av.open(str(mp4)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert video.codec_context.name == "h264"
        assert video.codec_context.profile == "High"
        assert (video.width, video.height) == (720, 1280)
        assert video.average_rate == FPS
        keyframes = [
            float(p.pts * p.time_base)
            for p in container.demux(video)
            if p.is_keyframe and p.pts is not None and p.time_base is not None
        ]
        assert keyframes == [float(t) for t in range(0, round(OUTPUT_S), GOP_S)]
        assert audio.codec_context.name == "aac"
        assert audio.duration is not None
        assert audio.time_base is not None
        assert float(audio.duration * audio.time_base) == pytest.approx(OUTPUT_S, abs=0.05)
    with av.open(str(mp4)) as container:
        frames = list(container.decode(container.streams.video[0]))
    assert check_pictures(frames, (720, 1280))[0] == pytest.approx(0.0, abs=1e-3)
    # Upright: the clip shown as a phone shows it has testsrc2's dark clock box at the bottom
    # left, and fills the frame (no bars at the top, as a landscape picture would have).
    first = frames[0]
    assert first.rotation == 0
    corners = {
        "top left": mean_luma(first, range(10, 170), range(10, 120)),
        "top right": mean_luma(first, range(10, 170), range(600, 710)),
        "bottom left": mean_luma(first, range(1100, 1270), range(10, 120)),
        "bottom right": mean_luma(first, range(1100, 1270), range(600, 710)),
    }
    assert corners["top left"] > 100
    assert corners["top right"] > 100
    assert min(corners, key=corners.__getitem__) == "bottom left"

    # ---- the sound: the song from its offset (so heard at once), under the clip's own ----
    samples = left_channel(mp4)
    assert len(samples) / RATE == pytest.approx(OUTPUT_S, abs=0.05)
    for start in np.arange(0.0, OUTPUT_S - 0.5, 0.5):
        window = samples[int(start * RATE) : int((start + 0.5) * RATE)]
        song_power = band_energy(window, SONG_HZ)
        assert song_power > 1e-4, f"the song is not heard at {start:g} s"
        assert song_power > 20 * band_energy(window, 700.0)  # a tone, not noise
        assert song_power > band_energy(window, CLIP_HZ)  # mixed at 80 against the clip
    assert band_energy(samples[: RATE // 2], CLIP_HZ) > 1e-6  # the clip's own sound is kept
