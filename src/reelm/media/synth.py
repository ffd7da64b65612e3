"""Generated media for tests, demos and the seed catalog, so the project downloads none.
Pictures come from FFmpeg's `testsrc2` source and sound from `sine`, via PyAV filter graphs."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from reelm.media.probe import ContainerName

_VIDEO_CODEC: dict[str, str] = {
    "mp4": "libx264",
    "mov": "libx264",
    "mkv": "libx264",
    "webm": "libvpx",
}
_AUDIO_CODEC: dict[str, str] = {"mp4": "aac", "mov": "aac", "mkv": "aac", "webm": "libopus"}
_MUXER: dict[str, str] = {"mp4": "mp4", "mov": "mov", "mkv": "matroska", "webm": "webm"}
_SAMPLE_RATE = 48_000


def _video_frames(
    width: int, height: int, fps: int, count: int, pattern: str = "testsrc2"
) -> Iterator[VideoFrame]:
    name, _, options = pattern.partition("=")
    graph = av.filter.Graph()
    source = graph.add(
        name, f"size={width}x{height}:rate={fps}" + (f":{options}" if options else "")
    )
    pixel_format = graph.add("format", "yuv420p")
    sink = graph.add("buffersink")
    graph.link_nodes(source, pixel_format, sink)
    graph.configure()
    for index in range(count):
        frame = sink.pull()
        assert isinstance(frame, VideoFrame)
        frame.pts = index
        frame.time_base = Fraction(1, fps)
        yield frame


def _audio_frames(freq: float, seconds: float, samples_per_frame: int) -> Iterator[AudioFrame]:
    graph = av.filter.Graph()
    source = graph.add(
        "sine",
        f"frequency={freq}:sample_rate={_SAMPLE_RATE}:samples_per_frame={samples_per_frame}",
    )
    # A gentle level: the sine source is at -18 dBFS already; stereo because songs are.
    sample_format = graph.add("aformat", "sample_fmts=fltp:channel_layouts=stereo")
    sink = graph.add("abuffersink")
    graph.link_nodes(source, sample_format, sink)
    graph.configure()
    total = round(seconds * _SAMPLE_RATE)
    written = 0
    while written < total:
        frame = sink.pull()
        assert isinstance(frame, AudioFrame)
        frame.pts = written
        frame.time_base = Fraction(1, _SAMPLE_RATE)
        written += frame.samples
        yield frame


class _WriteOnly:
    """A sink with no `seek`: muxers cannot go back to fill in the duration."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)


def _add_stereo(output: OutputContainer, codec: str) -> AudioStream:
    stream = output.add_stream(codec, rate=_SAMPLE_RATE)
    assert isinstance(stream, AudioStream)
    stream.layout = "stereo"
    return stream


def make_test_clip(
    path: Path,
    *,
    seconds: float = 3.0,
    width: int = 720,
    height: int = 1280,
    fps: int = 30,
    with_audio: bool = True,
    rotation: int = 0,
    container: ContainerName = "mp4",
    faststart: bool = False,
    declare_duration: bool = True,
    pattern: str = "testsrc2",
) -> Path:
    """Write a real clip: a moving colour pattern (H.264, or VP8 in WebM) and a 440 Hz tone.

    `rotation` is stored as display-matrix metadata (counter-clockwise degrees, as phones do),
    not applied to the pixels, so a probe must honour it. Without `faststart` the index (moov)
    goes at the end of an MP4, as most phones write it; tests rely on that to build truncated
    uploads. `declare_duration=False` (WebM/MKV only) writes as a browser's MediaRecorder does,
    to a stream it cannot seek back in, so the file declares no duration. `pattern` names
    another FFmpeg video source with its options (`"gradients=type=spiral"`, `"mandelbrot"`,
    `"life=mold=10"`): demo clips use several so the feed is not one picture repeated.
    """
    if not declare_duration and container not in ("mkv", "webm"):
        raise ValueError("only Matroska/WebM can be written without a duration")
    sink = _WriteOnly() if not declare_duration else None
    video_codec = _VIDEO_CODEC[container]
    audio_codec = _AUDIO_CODEC[container]
    options = {"movflags": "+faststart"} if faststart and container in ("mp4", "mov") else {}
    frame_count = max(1, round(seconds * fps))
    samples_per_frame = 960 if audio_codec == "libopus" else 1024
    target = sink if sink is not None else str(path)
    with av.open(target, "w", format=_MUXER[container], options=options) as output:
        video = output.add_stream(video_codec, rate=fps)
        assert isinstance(video, VideoStream)
        video.width = width
        video.height = height
        video.pix_fmt = "yuv420p"
        video.gop_size = fps  # a keyframe a second, like phone cameras: cheap seeks
        if video_codec == "libx264":
            video.options = {"preset": "ultrafast", "crf": "30"}
        else:
            video.options = {"deadline": "realtime", "cpu-used": "8", "crf": "40", "b": "1M"}
        if rotation % 360:
            video.set_display_rotation(rotation)
        audio_frames: Iterator[AudioFrame] = iter(())
        audio: AudioStream | None = None
        if with_audio:
            audio = _add_stereo(output, audio_codec)
            audio_frames = _audio_frames(440.0, frame_count / fps, samples_per_frame)
        pending_audio = next(audio_frames, None)
        for frame in _video_frames(width, height, fps, frame_count, pattern):
            output.mux(video.encode(frame))
            # Interleave: write the sound up to the picture's time so muxers need not buffer.
            while audio is not None and pending_audio is not None:
                if pending_audio.time is not None and pending_audio.time > frame.time + 1 / fps:
                    break
                output.mux(audio.encode(pending_audio))
                pending_audio = next(audio_frames, None)
        output.mux(video.encode(None))
        if audio is not None:
            while pending_audio is not None:
                output.mux(audio.encode(pending_audio))
                pending_audio = next(audio_frames, None)
            output.mux(audio.encode(None))
    if sink is not None:
        path.write_bytes(bytes(sink.data))
    return path


def make_tone(path: Path, seconds: float, freq: float) -> Path:
    """Write a stereo AAC tone in an .m4a (MP4 audio) file: a stand-in song for the catalog."""
    with av.open(str(path), "w", format="ipod", options={"movflags": "+faststart"}) as output:
        audio = _add_stereo(output, "aac")
        for frame in _audio_frames(freq, seconds, 1024):
            output.mux(audio.encode(frame))
        output.mux(audio.encode(None))
    return path
