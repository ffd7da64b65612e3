"""Turn an upload and its edit into a published video's files: an HLS ladder of fMP4 segments,
a progressive MP4 with its index first, and a poster, written aside and then published at once.

One pass over the pictures: one decoder, filter graphs that end in a `split` to every rung, one
x264 encoder per rung. Like the ffmpeg tool, the stages run at once in their own threads (PyAV
lets go of the GIL inside FFmpeg), joined by short queues: the sound (mixed, normalised and
AAC-encoded: a tenth of the pictures' cost), decoding and framing, the look, and each rung's
encoder with its files. A stage that waits for the machine never stalls the others: run one
after the other, these steps took a third longer than bare ffmpeg on a busy 2-core machine
(bench/transcode.py measures the two).
"""

from __future__ import annotations

import fcntl
import functools
import logging
import math
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.filter import Graph
from av.filter.context import FilterContext
from av.packet import Packet
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from reelm.errors import InvalidInput, ReelmError
from reelm.media.captions import (
    CAPTIONS_DIR,
    CAPTIONS_FILE,
    CAPTIONS_PLAYLIST,
    subtitles_playlist,
)
from reelm.media.filters import get_filter, link_fragment, upright
from reelm.media.overlays import DrawnText, draw_text, enable_expression
from reelm.media.probe import (
    MediaLimits,
    display_rotation,
    open_local_video,
    pick_video_stream,
    probe_upload,
)
from reelm.media.schemas import EditSpec

logger = logging.getLogger(__name__)

FPS = 30
GOP_S = 2
AUDIO_RATE = 48_000
AUDIO_BITRATE = 128_000
# Integrated loudness of what phones play: streaming services normalise to about -14 LUFS.
LOUDNESS_LUFS = -14.0
TRUE_PEAK_DBTP = -1.5
LOUDNESS_RANGE_LU = 11.0

PUBLISHED_DIR = "published"
MASTER_PLAYLIST = "master.m3u8"
MEDIA_PLAYLIST = "index.m3u8"
MP4_NAME = "video.mp4"
POSTER_NAME = "poster.jpg"
_WORK_PREFIX = ".transcode-"
_LOCK_NAME = ".transcode.lock"
_US = Fraction(1, 1_000_000)  # time base of the timestamps fed into the filter graphs
_AAC_CODECS = "mp4a.40.2"  # AAC-LC, what FFmpeg's native encoder writes
_SONG_FORMATS = "mov,matroska,mp3,flac,wav,ogg"

_CANNOT_PROCESS = "The video could not be processed; try exporting it again as MP4."


class TranscodeFailed(ReelmError):
    """FFmpeg could not turn the upload into a video. The job fails with this message."""

    status = 422
    code = "transcode_failed"

    def __init__(self, message: str = _CANNOT_PROCESS, *, code: str | None = None) -> None:
        super().__init__(message, code=code)


@dataclass(frozen=True)
class Rendition:
    """One rung of the ladder. Quality is set by CRF, capped by a peak rate for the network."""

    name: str
    width: int
    height: int
    crf: int
    maxrate_kbps: int


# The first rung is the top: the look is applied at its size, the MP4 and poster are made from it,
# and the lower rungs are scaled from it.
DEFAULT_LADDER: tuple[Rendition, ...] = (
    Rendition("720p", 720, 1280, crf=23, maxrate_kbps=2500),
    Rendition("480p", 480, 854, crf=24, maxrate_kbps=1200),
)


@dataclass(frozen=True)
class RenditionResult:
    name: str
    width: int
    height: int
    playlist: str
    codecs: str
    bandwidth: int  # peak segment bit rate, as HLS's BANDWIDTH means it
    average_bandwidth: int
    segments: int
    size_bytes: int


@dataclass(frozen=True)
class TranscodeResult:
    """What was published. Paths are relative to the `out_dir` given to `transcode`."""

    master_playlist: str
    renditions: tuple[RenditionResult, ...]
    mp4: str
    mp4_size_bytes: int
    poster: str
    poster_size_bytes: int
    duration_s: float
    size_bytes: int
    timings_s: dict[str, float]


@dataclass(frozen=True)
class _Plan:
    start_s: float  # source seconds, from the start of the upload
    end_s: float
    speed: float
    frames: int  # output pictures at FPS
    cover_index: int

    @property
    def duration_s(self) -> float:
        return self.frames / FPS


@dataclass(frozen=True)
class _Coded:
    """An encoded packet's content, so one encode can be muxed into several files."""

    data: bytes
    pts: int | None
    dts: int | None
    duration: int | None
    time_base: Fraction
    keyframe: bool

    @classmethod
    def of(cls, packet: Packet[Any]) -> _Coded:
        return cls(
            bytes(packet),
            packet.pts,
            packet.dts,
            packet.duration,
            packet.time_base,
            packet.is_keyframe,
        )

    @property
    def time_s(self) -> float:
        when = self.dts if self.dts is not None else self.pts
        return float((when or 0) * self.time_base)

    def packet(self, stream: VideoStream | AudioStream) -> Packet[Any]:
        packet: Packet[Any] = Packet(self.data)
        packet.pts = self.pts
        packet.dts = self.dts
        packet.duration = self.duration
        packet.time_base = self.time_base
        packet.is_keyframe = self.keyframe
        packet.stream = stream
        return packet


class _Steps:
    """Wall-clock time of each step, logged as it ends (like Zulip's thumbnail worker)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        yield
        elapsed = time.perf_counter() - began
        self.timings[name] = round(elapsed, 3)
        logger.info("transcode %s: %s took %.2f s", self.label, name, elapsed)


class _Progress:
    """Calls back with a fraction 0..1 that only grows, at most once per percent."""

    def __init__(self, callback: Callable[[float], None] | None) -> None:
        self.callback = callback
        self.last = -1.0

    def __call__(self, fraction: float) -> None:
        fraction = min(1.0, max(0.0, fraction))
        if self.callback is not None and (fraction >= self.last + 0.01 or fraction == 1.0):
            self.last = fraction
            self.callback(fraction)


def transcode(
    source: Path,
    spec: EditSpec,
    out_dir: Path,
    *,
    song: Path | None = None,
    captions_vtt: str = "",
    progress: Callable[[float], None] | None = None,
    ladder: Sequence[Rendition] = DEFAULT_LADDER,
    limits: MediaLimits | None = None,
) -> TranscodeResult:
    """Render `spec` applied to the upload `source` into `out_dir/published/`.

    The files appear all at once: they are written in a hidden work folder inside `out_dir`
    and renamed into place at the end, so a crash or kill never leaves a half-written
    `published/`; the next run removes what a killed one left and starts clean. A lock file
    in `out_dir` keeps two runs on the same folder from overlapping. Raises `InvalidInput`
    for what the creator can fix and `TranscodeFailed` when FFmpeg fails on the file.
    """
    _check_ladder(ladder)
    if spec.soundtrack.kind == "song" and song is None:
        raise ValueError("a song soundtrack needs the song's file")
    steps = _Steps(source.name)
    report = _Progress(progress)
    report(0.0)
    with steps.step("probe"):
        probe = probe_upload(source, limits=limits)
        spec.check_against(probe)
    plan = _plan(spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(out_dir):
        _remove_leftovers(out_dir)
        work = Path(tempfile.mkdtemp(prefix=_WORK_PREFIX, dir=out_dir))
        try:
            result = _render(
                source, spec, plan, work, song, captions_vtt, ladder, limits, steps, report
            )
            with steps.step("publish"):
                _publish(work, out_dir)
        except av.FFmpegError as exc:
            shutil.rmtree(work, ignore_errors=True)
            logger.warning("transcode %s failed in FFmpeg: %s", source.name, exc)
            raise TranscodeFailed() from exc
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    report(1.0)
    total = sum(steps.timings.values())
    logger.info(
        "transcode %s: %.1f s of video in %.1f s (%.2fx realtime)",
        source.name,
        plan.duration_s,
        total,
        plan.duration_s / total if total else 0.0,
    )
    return replace(result, timings_s=dict(steps.timings))


def _check_ladder(ladder: Sequence[Rendition]) -> None:
    if not ladder:
        raise ValueError("the ladder needs at least one rendition")
    names = [r.name for r in ladder]
    if len(set(names)) != len(names):
        raise ValueError("rendition names must differ")
    for r in ladder:
        if r.width % 2 or r.height % 2 or r.width <= 0 or r.height <= 0:
            raise ValueError(f"rendition {r.name} needs even, positive sides")
        if not r.name.replace("_", "").isalnum():
            raise ValueError(f"rendition name {r.name!r} must be a plain folder name")


def _plan(spec: EditSpec) -> _Plan:
    frames = max(1, round(spec.output_duration_s * FPS))
    cover = (spec.cover_at_s - spec.trim_start_s) / spec.speed
    return _Plan(
        start_s=spec.trim_start_s,
        end_s=spec.trim_end_s,
        speed=spec.speed,
        frames=frames,
        cover_index=min(frames - 1, max(0, math.floor(cover * FPS + 1e-6))),
    )


# ---- the work folder and its publication ----------------------------------------------------


@contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """Hold `out_dir`'s lock. The kernel drops it when the process dies, even by kill -9."""
    with (out_dir / _LOCK_NAME).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TranscodeFailed(
                "This video is already being processed.", code="transcode_running"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _remove_leftovers(out_dir: Path) -> None:
    """Work folders of runs that were killed. Safe: we hold the lock, so none is live."""
    for entry in out_dir.iterdir():
        if entry.name.startswith(_WORK_PREFIX) and entry.is_dir():
            logger.info("transcode: removing %s left by an interrupted run", entry)
            shutil.rmtree(entry, ignore_errors=True)


def _publish(work: Path, out_dir: Path) -> None:
    """Make the work folder `published/` in one rename, its files durable first.

    A previous publication is moved aside (under the work prefix, so a crash between the two
    renames leaves only a leftover that the next run removes) and deleted after.
    """
    for folder, _, files in os.walk(work):
        for name in files:
            _fsync(Path(folder, name))
        _fsync(Path(folder))
    final = out_dir / PUBLISHED_DIR
    old: Path | None = None
    if final.exists():
        old = out_dir / f"{_WORK_PREFIX}replaced-{os.getpid()}-{time.time_ns()}"
        final.rename(old)
    work.chmod(0o755)  # mkdtemp made it private
    work.rename(final)
    _fsync(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- rendering --------------------------------------------------------------------------------


class _Sound:
    """The soundtrack's packets, filled by their own thread while the pictures are encoded."""

    def __init__(self) -> None:
        self.packets: list[_Coded] = []
        self.done = threading.Event()


class _Output:
    """One output file: its video stream and a copy of the sound, interleaved by time.

    Pictures that come before the sound is ready are held back, then written with it.
    """

    def __init__(
        self, container: OutputContainer, video: VideoStream, audio: AudioStream, sound: _Sound
    ) -> None:
        self.container = container
        self.video = video
        self.audio = audio
        self.sound = sound
        self.next_sound = 0
        self.held: list[_Coded] = []

    def write(self, coded: _Coded) -> None:
        if not self.sound.done.is_set():
            self.held.append(coded)
            return
        self._release()
        self._sound_until(coded.time_s)
        self.container.mux_one(coded.packet(self.video))

    def finish(self) -> None:
        """Write what is left and close; the sound must be done."""
        assert self.sound.done.is_set()
        self._release()
        self._sound_until(math.inf)
        self.container.close()

    def _release(self) -> None:
        held, self.held = self.held, []
        for coded in held:
            self._sound_until(coded.time_s)
            self.container.mux_one(coded.packet(self.video))

    def _sound_until(self, time_s: float) -> None:
        packets = self.sound.packets
        while self.next_sound < len(packets) and packets[self.next_sound].time_s <= time_s:
            self.container.mux_one(packets[self.next_sound].packet(self.audio))
            self.next_sound += 1


class _Stopped(Exception):
    """Raised in a stage when another one failed: that failure is the one reported."""


class _Stages:
    """Pipeline stages in threads, joined by bounded queues. The first failure anywhere stops
    every stage (they see it at their next queue operation) and `join` raises it again."""

    def __init__(self) -> None:
        self.failed = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, name: str, work: Callable[[], None]) -> None:
        def run() -> None:
            try:
                work()
            except _Stopped:
                pass
            except BaseException as exc:  # handed to the caller's thread by `join`
                self.fail(exc)

        thread = threading.Thread(target=run, name=f"transcode-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = exc
            self.failed.set()

    def put(self, into: queue.Queue[Any], item: Any) -> None:
        while not self.failed.is_set():
            with suppress(queue.Full):
                into.put(item, timeout=0.1)
                return
        raise _Stopped

    def get(self, source: queue.Queue[Any]) -> Any:
        while not self.failed.is_set():
            with suppress(queue.Empty):
                return source.get(timeout=0.1)
        raise _Stopped

    def join(self) -> None:
        """Wait for every stage to end; raise the first failure."""
        for thread in self._threads:
            thread.join()
        if self.error is not None:
            raise self.error


# Pictures waiting between the filter graph and each encoder: enough to ride out a stage
# being descheduled for a moment on a busy machine, a few dozen MB at 720p.
_QUEUED_PICTURES = 16


def _render(
    source: Path,
    spec: EditSpec,
    plan: _Plan,
    work: Path,
    song: Path | None,
    captions_vtt: str,
    ladder: Sequence[Rendition],
    limits: MediaLimits | None,
    steps: _Steps,
    report: _Progress,
) -> TranscodeResult:
    """Everything in `work`; the result's paths already name where publishing puts it."""
    top = ladder[0]
    with ExitStack() as closing:
        mp4 = av.open(str(work / MP4_NAME), "w", format="mp4", options={"movflags": "+faststart"})
        closing.callback(_close_quietly, mp4)
        top_encoder = _add_h264(mp4, top)
        aac = mp4.add_stream("aac", rate=AUDIO_RATE)
        aac.layout = "stereo"
        aac.bit_rate = AUDIO_BITRATE
        # Opens both encoders: their headers are copied to the HLS streams. From here on only
        # the sound's thread uses the AAC encoder.
        mp4.start_encoding()

        sound = _Sound()
        encoders: list[VideoStream] = []
        outputs: list[list[_Output]] = []
        for index, rendition in enumerate(ladder):
            folder = work / rendition.name
            folder.mkdir()
            container = av.open(
                str(folder / MEDIA_PLAYLIST), "w", format="hls", options=_hls_options(folder)
            )
            closing.callback(_close_quietly, container)
            if index == 0:
                video = container.add_stream_from_template(top_encoder)
                encoder = top_encoder
            else:
                video = encoder = _add_h264(container, rendition)
            audio = container.add_stream_from_template(aac)
            encoders.append(encoder)
            outputs.append([_Output(container, video, audio, sound)])
        outputs[0].append(_Output(mp4, top_encoder, aac, sound))

        def encode_sound() -> None:
            with steps.step("audio"):
                sound.packets = _encode_sound(source, spec, plan, song, aac, limits)
            sound.done.set()

        stages = _Stages()
        cover: list[VideoFrame] = []
        with steps.step("video"):
            try:
                stages.start("sound", encode_sound)
                _encode_pictures(
                    stages, source, spec, plan, ladder, encoders, outputs, cover, limits, report
                )
            except _Stopped:
                pass  # `join` raises what stopped it
            except BaseException as exc:
                stages.fail(exc)
            # Every stage ends before a file is closed or the work folder removed.
            stages.join()
        with steps.step("finalise"):  # closing the MP4 moves its index to the front
            for group in outputs:
                for output in group:
                    output.finish()
        with steps.step("poster"):
            (work / POSTER_NAME).write_bytes(_jpeg(cover[0]))
    with steps.step("playlists"):
        renditions = tuple(
            _describe_rendition(work, r, _avc1(e.codec_context))
            for r, e in zip(ladder, encoders, strict=True)
        )
        if captions_vtt:
            _write_captions(work, captions_vtt, plan.duration_s)
        master = _master_playlist(renditions, captions=bool(captions_vtt))
        (work / MASTER_PLAYLIST).write_text(master)
    return TranscodeResult(
        master_playlist=f"{PUBLISHED_DIR}/{MASTER_PLAYLIST}",
        renditions=renditions,
        mp4=f"{PUBLISHED_DIR}/{MP4_NAME}",
        mp4_size_bytes=(work / MP4_NAME).stat().st_size,
        poster=f"{PUBLISHED_DIR}/{POSTER_NAME}",
        poster_size_bytes=(work / POSTER_NAME).stat().st_size,
        duration_s=plan.duration_s,
        size_bytes=sum(p.stat().st_size for p in work.rglob("*") if p.is_file()),
        timings_s={},
    )


def _close_quietly(container: OutputContainer) -> None:
    """Release a file that an error left open; its content is thrown away with the work folder."""
    with suppress(av.FFmpegError, OSError, ValueError, RuntimeError):
        container.close()


def _add_h264(container: OutputContainer, rendition: Rendition) -> VideoStream:
    """H.264 High, a keyframe exactly every GOP_S seconds and nowhere else, so every
    rendition's segments start at the same instants and players can switch between them."""
    stream = container.add_stream("libx264", rate=FPS)
    stream.width = rendition.width
    stream.height = rendition.height
    stream.pix_fmt = "yuv420p"
    gop = FPS * GOP_S
    stream.gop_size = gop
    # Frame threads, as the ffmpeg tool uses: PyAV's default (slices) costs x264 efficiency.
    stream.codec_context.thread_type = "FRAME"
    stream.options = {
        "preset": "veryfast",
        "profile": "high",
        "crf": str(rendition.crf),
        "maxrate": f"{rendition.maxrate_kbps}k",
        "bufsize": f"{2 * rendition.maxrate_kbps}k",
        "keyint_min": str(gop),
        "sc_threshold": "0",
        "x264-params": "scenecut=0:open-gop=0",
    }
    return stream


def _hls_options(folder: Path) -> dict[str, str]:
    return {
        "hls_time": str(GOP_S),
        "hls_segment_type": "fmp4",
        "hls_playlist_type": "vod",
        "hls_fmp4_init_filename": "init.mp4",
        "hls_segment_filename": str(folder / "seg_%05d.m4s"),
        "hls_flags": "independent_segments",
    }


# ---- sound ----------------------------------------------------------------------------------


def _encode_sound(
    source: Path,
    spec: EditSpec,
    plan: _Plan,
    song: Path | None,
    encoder: AudioStream,
    limits: MediaLimits | None,
) -> list[_Coded]:
    """The whole soundtrack, mixed, loudness-normalised and AAC-encoded, exactly as long as
    the pictures. Without any sound to keep, a silent track: players expect one."""
    soundtrack = spec.soundtrack
    song_share = soundtrack.mix / 100 if soundtrack.kind == "song" else 0.0
    original_share = 0.0 if soundtrack.kind == "none" else 1.0 - song_share
    with ExitStack() as closing:
        feeds: list[tuple[Iterator[tuple[AudioFrame, float]], str, float]] = []
        if original_share > 0:
            container, _, _ = open_local_video(source, limits=limits)
            closing.enter_context(container)
            if container.streams.audio:
                stream = container.streams.audio[0]
                origin = _origin_s(container)
                feeds.append(
                    (
                        _original_sound(container, stream, origin, plan),
                        _original_chain(plan),
                        original_share,
                    )
                )
        if song_share > 0 and song is not None and soundtrack.kind == "song":
            container = _open_song(song)
            closing.enter_context(container)
            feeds.append(
                (
                    _song_sound(container, soundtrack.offset_s, plan),
                    f"atrim=start=0:end={plan.duration_s},{_to_output_format(True)}",
                    song_share,
                )
            )
        return _mix_and_encode(feeds, plan, encoder)


def _origin_s(container: InputContainer) -> float:
    """Where the upload's clock starts: trim times count from there."""
    if container.start_time is not None and container.start_time > 0:
        return container.start_time / av.time_base
    return 0.0


def _original_chain(plan: _Plan) -> str:
    """Trim in source time, fill gaps so sound stays in sync, then change tempo, not pitch."""
    chain = [
        f"atrim=start=0:end={plan.end_s - plan.start_s}",
        _to_output_format(True),
        *(f"atempo={factor}" for factor in _tempo_factors(plan.speed)),
    ]
    return ",".join(chain)


def _to_output_format(fill_gaps: bool) -> str:
    resample = f"aresample={AUDIO_RATE}" + (":async=1:first_pts=0" if fill_gaps else "")
    return f"{resample},aformat=sample_fmts=fltp:sample_rates={AUDIO_RATE}:channel_layouts=stereo"


def _tempo_factors(speed: float) -> list[float]:
    """atempo keeps quality only within 0.5..2, so larger changes are chained."""
    factors = []
    while speed > 2.0:
        factors.append(2.0)
        speed /= 2.0
    if abs(speed - 1.0) > 1e-9:
        factors.append(round(speed, 6))
    return factors


def _original_sound(
    container: InputContainer, stream: AudioStream, origin: float, plan: _Plan
) -> Iterator[tuple[AudioFrame, float]]:
    """The upload's sound from the trim start, timed from it, in source seconds."""
    if plan.start_s > 0:
        container.seek(round((origin + plan.start_s) * av.time_base))
    limit = plan.end_s - plan.start_s + 0.5
    for frame in container.decode(stream):
        if frame.pts is None or frame.time_base is None:
            continue
        at = float(frame.pts * frame.time_base) - origin - plan.start_s
        if at > limit:
            break
        yield frame, at


def _open_song(path: Path) -> InputContainer:
    try:
        container = av.open(
            "file:" + str(path.resolve()),
            "r",
            container_options={"protocol_whitelist": "file", "format_whitelist": _SONG_FORMATS},
            timeout=(5.0, 5.0),
        )
    except (av.FFmpegError, OSError) as exc:
        raise TranscodeFailed(
            "The chosen song could not be read. Please pick another song.", code="song_unreadable"
        ) from exc
    if not container.streams.audio:
        container.close()
        raise TranscodeFailed(
            "The chosen song has no sound. Please pick another song.", code="song_unreadable"
        )
    return container


def _song_sound(
    container: InputContainer, offset_s: float, plan: _Plan
) -> Iterator[tuple[AudioFrame, float]]:
    """The song from `offset_s`, timed from there; it plays at its own speed, not the video's."""
    length = container.duration / av.time_base if container.duration else None
    if length is not None and offset_s >= length:
        raise InvalidInput(
            f"The song is {length:.1f} s long; its start ({offset_s:g} s) must be before its end.",
            code="song_offset_out_of_range",
        )
    stream = container.streams.audio[0]
    if offset_s > 0:
        container.seek(round(offset_s * av.time_base))
    limit = plan.duration_s + 0.5
    for frame in container.decode(stream):
        if frame.pts is None or frame.time_base is None:
            continue
        at = float(frame.pts * frame.time_base) - offset_s
        if at > limit:
            break
        yield frame, at


_Feed = Iterator[tuple[AudioFrame, float]]
"""A sound's frames, each with the time (s) it starts at in the video."""
_Live = tuple[_Feed, str, float, tuple[AudioFrame, float]]
"""A feed that has frames: its feed, filter chain, share of the mix and first frame."""


def _mix_and_encode(
    feeds: list[tuple[_Feed, str, float]],
    plan: _Plan,
    encoder: AudioStream,
) -> list[_Coded]:
    """Build the mixing graph from each feed's first frame (its format), then feed the sources
    in time order, so amix never has to hold one source's whole sound while waiting."""
    live = _with_first_frames(feeds)
    graph, sources, sink = _mixing_graph(live, plan)  # the graph outlives its filters' use
    out = _MixOutput(sink, encoder)
    _push_in_time_order(live, sources, out)
    return out.flush()


def _with_first_frames(feeds: list[tuple[_Feed, str, float]]) -> list[_Live]:
    """The feeds that have any frame, each with its first (silent sounds drop out)."""
    firsts: list[tuple[AudioFrame, float] | None] = [next(feed, None) for feed, _, _ in feeds]
    return [
        (feed, chain, share, first)
        for (feed, chain, share), first in zip(feeds, firsts, strict=True)
        if first is not None
    ]


def _mixing_graph(
    live: list[_Live], plan: _Plan
) -> tuple[Graph, list[FilterContext], FilterContext]:
    """One source per live feed (its chain and volume), mixed, normalised and cut to exactly
    the pictures' length; silence of that length when nothing is live. The graph, its sources
    and its sink."""
    graph = Graph()
    sources: list[FilterContext] = []
    branches: list[FilterContext] = []
    for _, chain, share, first in live:
        frame = first[0]
        source = graph.add(
            "abuffer",
            sample_rate=str(frame.sample_rate),
            sample_fmt=frame.format.name,
            channel_layout=frame.layout.name,
            time_base=f"1/{frame.sample_rate}",
        )
        end = link_fragment(graph, source, f"{chain},volume={share:.4f}")
        sources.append(source)
        branches.append(end)
    # loudnorm's samples are continuous but, on input of about 3 s (its look-ahead), its
    # timestamps jump; `asetpts` renumbers them by sample count so the padding and trim that
    # make the sound exactly as long as the pictures measure the right thing.
    tail = (
        f"loudnorm=I={LOUDNESS_LUFS}:TP={TRUE_PEAK_DBTP}:LRA={LOUDNESS_RANGE_LU},"
        f"{_to_output_format(False)},asetpts=N/SR/TB,"
        f"apad=whole_dur={plan.duration_s},atrim=end={plan.duration_s}"
    )
    if not branches:
        # Nothing to hear: a silent track of the exact length, not worth normalising.
        silence = graph.add("anullsrc", f"r={AUDIO_RATE}:cl=stereo")
        last = link_fragment(graph, silence, f"atrim=end={plan.duration_s}")
    elif len(branches) == 1:
        last = link_fragment(graph, branches[0], tail)
    else:
        mix = graph.add("amix", f"inputs={len(branches)}:normalize=0:duration=longest")
        for index, branch in enumerate(branches):
            branch.link_to(mix, 0, index)
        last = link_fragment(graph, mix, tail)
    sink = graph.add("abuffersink")
    last.link_to(sink)
    graph.configure()
    return graph, sources, sink


class _MixOutput:
    """The mix's frames, renumbered by sample count and encoded as they come out."""

    def __init__(self, sink: FilterContext, encoder: AudioStream) -> None:
        self.sink = sink
        self.encoder = encoder
        self.coded: list[_Coded] = []
        self.written = 0

    def drain(self) -> bool:
        """Encode what the graph has ready; True once it has ended."""
        while True:
            try:
                frame = self.sink.pull()
            except av.BlockingIOError:
                return False
            except av.EOFError:
                return True
            assert isinstance(frame, AudioFrame)
            frame.pts = self.written
            frame.time_base = Fraction(1, AUDIO_RATE)
            self.written += frame.samples
            self.coded.extend(_Coded.of(p) for p in self.encoder.encode(frame))

    def flush(self) -> list[_Coded]:
        self.coded.extend(_Coded.of(p) for p in self.encoder.encode(None))
        return self.coded


def _push_in_time_order(live: list[_Live], sources: list[FilterContext], out: _MixOutput) -> None:
    """Push the frame that starts earliest among the feeds, draining the mix after each, until
    the mix has ended (a branch trimmed to length refuses more) or every feed has."""
    pending: list[tuple[AudioFrame, float] | None] = [first for *_, first in live]
    iterators = [feed for feed, *_ in live]
    finished = False
    while not finished and any(item is not None for item in pending):
        _, index = min((item[1], i) for i, item in enumerate(pending) if item is not None)
        item = pending[index]
        assert item is not None
        frame, at = item
        frame.pts = round(at * frame.sample_rate)
        frame.time_base = Fraction(1, frame.sample_rate)
        try:
            sources[index].push(frame)
        except av.EOFError:  # its branch is trimmed to length: it needs no more
            pending[index] = None
            continue
        pending[index] = next(iterators[index], None)
        if pending[index] is None:
            _end(sources[index])
        finished = out.drain()
    for index, item in enumerate(pending):
        if item is not None:
            _end(sources[index])
    if not finished and not out.drain():  # pragma: no cover - every input has ended
        raise TranscodeFailed()


def _end(source: FilterContext) -> None:
    with suppress(av.EOFError):
        source.push(None)


# ---- pictures -------------------------------------------------------------------------------


def _encode_pictures(
    stages: _Stages,
    source: Path,
    spec: EditSpec,
    plan: _Plan,
    ladder: Sequence[Rendition],
    encoders: Sequence[VideoStream],
    outputs: Sequence[Sequence[_Output]],
    cover: list[VideoFrame],
    limits: MediaLimits | None,
    report: _Progress,
) -> None:
    """Decode once, filter once, encode every rendition; put the cover picture in `cover`.

    Three kinds of stage: decoding and framing (constant frame rate, scaled, upright, fit or
    filled to the top rung), the look (split to every rung and scaled for the lower ones),
    and one encoder per rung with the muxing of its files. The top rung's encoder is the
    calling thread, which reports progress and returns when it is done (the caller joins the
    other stages). Each rendition gets exactly `plan.frames` pictures at FPS whatever the
    upload's rate was (variable, 60 fps...): the `fps` filter picks them by timestamp, and the
    count is made exact here so the pictures end with the sound.
    """
    framed: queue.Queue[VideoFrame | None] = queue.Queue(_QUEUED_PICTURES)
    queues: list[queue.Queue[tuple[VideoFrame, int] | None]] = [
        queue.Queue(_QUEUED_PICTURES) for _ in ladder
    ]
    stages.start(
        "pictures", lambda: _frame_pictures(stages, source, spec, plan, ladder[0], framed, limits)
    )
    stages.start("look", lambda: _apply_look(stages, spec, plan, ladder, framed, queues, cover))

    def encode(index: int) -> None:
        encoder, files, waiting = encoders[index], outputs[index], queues[index]
        while (item := stages.get(waiting)) is not None:
            frame, number = item
            frame.pts = number
            frame.time_base = Fraction(1, FPS)
            # A decoded keyframe keeps its type through the filters, and x264 would obey it:
            # the GOP must come from the encoder's fixed interval alone.
            frame.pict_type = av.video.frame.PictureType.NONE
            _write(encoder.encode(frame), files)
            if index == 0:
                report(0.97 * (number + 1) / plan.frames)
        _write(encoder.encode(None), files)

    for index, rendition in enumerate(ladder[1:], start=1):
        stages.start(f"encode-{rendition.name}", functools.partial(encode, index))
    encode(0)


def _frame_pictures(
    stages: _Stages,
    source: Path,
    spec: EditSpec,
    plan: _Plan,
    top: Rendition,
    framed: queue.Queue[VideoFrame | None],
    limits: MediaLimits | None,
) -> None:
    """The first pictures stage: decode the trim and frame it for the top rung, then an end
    mark."""
    container, _, _ = open_local_video(source, limits=limits)
    with container:
        video = pick_video_stream(container)
        video.codec_context.thread_type = "AUTO"
        origin = _origin_s(container)
        graph: Graph | None = None  # held here: its filters live only as long as it does
        buffer: FilterContext | None = None
        sink: FilterContext | None = None
        for frame, at in _trimmed_pictures(container, video, origin, plan):
            if buffer is None or sink is None:
                graph, buffer, sink = _framing_graph(frame, video.codec_context, spec, top)
            frame.pts = round(at / _US)
            frame.time_base = _US
            buffer.push(frame)
            _drain_pictures(sink, lambda frame: stages.put(framed, frame), until_end=False)
        if buffer is None or sink is None:
            raise InvalidInput(
                "No picture could be decoded in the chosen part of the video. "
                "Please export it again or pick another part.",
                code="corrupt_file",
            )
        buffer.push(None)
        _drain_pictures(sink, lambda frame: stages.put(framed, frame), until_end=True)
    stages.put(framed, None)


def _apply_look(
    stages: _Stages,
    spec: EditSpec,
    plan: _Plan,
    ladder: Sequence[Rendition],
    framed: queue.Queue[VideoFrame | None],
    queues: Sequence[queue.Queue[tuple[VideoFrame, int] | None]],
    cover: list[VideoFrame],
) -> None:
    """The second pictures stage: the look, then `plan.frames` pictures queued for each rung
    (numbered; the encoder stamps them) and an end mark; the cover goes into `cover`."""
    written = [0] * len(ladder)
    latest: list[VideoFrame | None] = [None] * len(ladder)

    def emit(index: int, frame: VideoFrame) -> None:
        number = written[index]
        if number >= plan.frames:
            return
        stages.put(queues[index], (frame, number))
        written[index] = number + 1
        latest[index] = frame
        if index == 0 and number == plan.cover_index:
            cover.append(frame)

    graph: Graph | None = None  # held here: its filters live only as long as it does
    buffer: FilterContext | None = None
    sinks: list[FilterContext] = []
    while (frame := stages.get(framed)) is not None:
        if buffer is None:
            graph, buffer, sinks = _look_graph(frame, spec, ladder, plan.duration_s)
        buffer.push(frame)
        for index, sink in enumerate(sinks):
            _drain_pictures(sink, functools.partial(emit, index), until_end=False)
    if buffer is None:  # pragma: no cover - the first stage fails first
        raise TranscodeFailed()
    buffer.push(None)
    for index, sink in enumerate(sinks):
        _drain_pictures(sink, functools.partial(emit, index), until_end=True)
    for index, last in enumerate(latest):
        if last is None:  # pragma: no cover - the graph emits a picture per input picture
            raise TranscodeFailed()
        while written[index] < plan.frames:
            # The same picture again: only its number differs, stamped by the encoder.
            emit(index, last)
        stages.put(queues[index], None)


def _write(packets: Sequence[Packet[Any]], outputs: Sequence[_Output]) -> None:
    for packet in packets:
        coded = _Coded.of(packet)
        for output in outputs:
            output.write(coded)


def _drain_pictures(
    sink: FilterContext, emit: Callable[[VideoFrame], None], *, until_end: bool
) -> None:
    while True:
        try:
            frame = sink.pull()
        except av.BlockingIOError:
            if until_end:  # pragma: no cover - after EOF the graph only ends
                continue
            break
        except av.EOFError:
            break
        assert isinstance(frame, VideoFrame)
        emit(frame)


def _trimmed_pictures(
    container: InputContainer, video: VideoStream, origin: float, plan: _Plan
) -> Iterator[tuple[VideoFrame, float]]:
    """The pictures shown during the trim, each with its time in the output.

    The picture on screen at the trim's start may have begun before it (variable frame
    rate, or a trim between two pictures): it opens the output at time 0.
    """
    if plan.start_s > 0 and video.time_base is not None:
        container.seek(round((origin + plan.start_s) / video.time_base), stream=video)
    before: VideoFrame | None = None
    started = False
    for frame in container.decode(video):
        if frame.pts is None or frame.time_base is None:
            continue
        source_s = float(frame.pts * frame.time_base) - origin
        if source_s < plan.start_s - 1e-6:
            before = frame
            continue
        if source_s >= plan.end_s - 1e-6:
            break
        if not started:
            started = True
            if before is not None and source_s > plan.start_s + 1e-3:
                yield before, 0.0
        yield frame, (source_s - plan.start_s) / plan.speed
    if not started and before is not None:
        yield before, 0.0


def _framing_graph(
    first: VideoFrame, decoder: VideoCodecContext, spec: EditSpec, top: Rendition
) -> tuple[Graph, FilterContext, FilterContext]:
    """buffer → fps → scale → upright → fit/fill → sink: the top rung's frame, no look yet.

    The frame rate is made constant first, so a 60 fps upload is scaled only 30 times a
    second; scaling comes before turning upright, so the turn works on the small picture.
    """
    rotation = display_rotation(first)
    sar = decoder.sample_aspect_ratio
    graph = Graph()
    args = {
        "video_size": f"{first.width}x{first.height}",
        "pix_fmt": first.format.name,
        "time_base": str(_US),
        "pixel_aspect": f"{sar.numerator}/{sar.denominator}" if sar else "1/1",
    }
    if first.colorspace:
        args["colorspace"] = str(first.colorspace)
    if first.color_range:
        args["range"] = str(first.color_range)
    buffer = graph.add("buffer", **args)
    width, height = _scaled_size(first.width, first.height, sar, rotation, top, spec.fit)
    if spec.fit == "fit":
        framing = f"pad=w={top.width}:h={top.height}:x=(ow-iw)/2:y=(oh-ih)/2:color=black"
    else:
        framing = f"crop=w={top.width}:h={top.height}"
    fragment = ",".join(
        [
            f"fps={FPS}:start_time=0",
            f"scale=w={width}:h={height}:out_range=tv",
            upright(rotation),
            framing,
            "setsar=1",
            "format=yuv420p",
        ]
    )
    end = link_fragment(graph, buffer, fragment)
    sink = graph.add("buffersink")
    end.link_to(sink)
    graph.configure()
    return graph, buffer, sink


def _look_graph(
    first: VideoFrame, spec: EditSpec, ladder: Sequence[Rendition], duration_s: float
) -> tuple[Graph, FilterContext, list[FilterContext]]:
    """buffer → look → text overlays → split → (scale →) one sink per rung.

    The look runs at the top rung's size, where it is tuned and costs least; the texts go on
    after it (a look does not tint them) and before the split, so every rung shows them.
    """
    graph = Graph()
    assert first.time_base is not None
    args = {
        "video_size": f"{first.width}x{first.height}",
        "pix_fmt": first.format.name,
        "time_base": str(first.time_base),
        "pixel_aspect": "1/1",
    }
    if first.colorspace:
        args["colorspace"] = str(first.colorspace)
    if first.color_range:
        args["range"] = str(first.color_range)
    buffer = graph.add("buffer", **args)
    look = get_filter(spec.filter).graph(spec.filter_intensity) if spec.filter else "null"
    looked = link_fragment(graph, buffer, look)
    texts = [
        draw_text(text, width=first.width, height=first.height, end_s=duration_s)
        for text in spec.texts
    ]
    looked, text_sources = _overlay_texts(graph, looked, texts, first.time_base)
    branches: list[FilterContext] = [looked]
    if len(ladder) > 1:
        split = graph.add("split", str(len(ladder)))
        looked.link_to(split)
        branches = []
        for index in range(len(ladder)):
            tap = graph.add("null")
            split.link_to(tap, index, 0)
            branches.append(tap)
    sinks = []
    for index, (branch, rendition) in enumerate(zip(branches, ladder, strict=True)):
        chain = "format=yuv420p"
        if index > 0:
            chain = f"scale=w={rendition.width}:h={rendition.height},setsar=1,{chain}"
        end = link_fragment(graph, branch, chain)
        sink = graph.add("buffersink")
        end.link_to(sink)
        sinks.append(sink)
    graph.configure()
    for source, text in zip(text_sources, texts, strict=True):
        # One picture, then the end: `overlay` repeats a finished input's last picture.
        text.frame.pts = 0
        text.frame.time_base = first.time_base
        source.push(text.frame)
        source.push(None)
    return graph, buffer, sinks


def _overlay_texts(
    graph: Graph, main: FilterContext, texts: Sequence[DrawnText], time_base: Fraction
) -> tuple[FilterContext, list[FilterContext]]:
    """Chain one `overlay` per text after `main`, each fed by its own picture's buffer and
    enabled only while its text shows. The last overlay, and the buffers to feed."""
    sources = []
    for text in texts:
        source = graph.add(
            "buffer",
            video_size=f"{text.frame.width}x{text.frame.height}",
            pix_fmt="rgba",
            time_base=str(time_base),
            pixel_aspect="1/1",
        )
        layer = graph.add(
            "overlay",
            x=str(text.x),
            y=str(text.y),
            eof_action="repeat",
            format="yuv420",
            enable=enable_expression(text.start_s, text.end_s),
        )
        main.link_to(layer, 0, 0)
        source.link_to(layer, 0, 1)
        sources.append(source)
        main = layer
    return main, sources


def _scaled_size(
    width: int,
    height: int,
    sar: Fraction | None,
    rotation: int,
    target: Rendition,
    fit: str,
) -> tuple[int, int]:
    """The size to scale the decoded picture to, before it is turned upright, so that once
    upright it fits inside (fit) or covers (fill) the target frame, keeping its shape."""
    shown_w = width * float(sar) if sar else float(width)
    shown_h = float(height)
    turned = rotation in (90, 270)
    if turned:
        shown_w, shown_h = shown_h, shown_w
    pick = min if fit == "fit" else max
    ratio = pick(target.width / shown_w, target.height / shown_h)
    out_w, out_h = _even(shown_w * ratio), _even(shown_h * ratio)
    if fit == "fit":
        out_w, out_h = min(out_w, target.width), min(out_h, target.height)
    else:
        out_w, out_h = max(out_w, target.width), max(out_h, target.height)
    return (out_h, out_w) if turned else (out_w, out_h)


def _even(size: float) -> int:
    return max(2, math.floor(size / 2 + 0.5) * 2)


def _jpeg(picture: VideoFrame) -> bytes:
    """The poster: the cover picture as it is shown, look included, in full-range JPEG."""
    full = picture.reformat(format="yuvj420p")
    encoder = av.CodecContext.create("mjpeg", "w")
    assert isinstance(encoder, VideoCodecContext)
    encoder.width = full.width
    encoder.height = full.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, FPS)
    encoder.qscale = True
    encoder.global_quality = 3 * 118  # FF_QP2LAMBDA * q: q=3 is a good, small JPEG
    full.pts = 0
    full.pict_type = av.video.frame.PictureType.NONE
    data = bytearray()
    for packet in [*encoder.encode(full), *encoder.encode(None)]:
        data += bytes(packet)
    return bytes(data)


# ---- playlists ------------------------------------------------------------------------------


def _avc1(encoder: VideoCodecContext) -> str:
    """RFC 6381 name of the H.264 stream (`avc1.PPCCLL`), read from its SPS, for HLS CODECS."""
    data = encoder.extradata or b""
    if data[:1] == b"\x01" and len(data) >= 4:  # avcC
        profile = data[1:4]
    else:  # Annex B: find the SPS (NAL type 7)
        start = 0
        profile = b""
        while (start := data.find(b"\x00\x00\x01", start)) != -1:
            start += 3
            if start + 4 <= len(data) and data[start] & 0x1F == 7:
                profile = data[start + 1 : start + 4]
                break
    if len(profile) != 3:  # pragma: no cover - libx264 always writes its SPS in extradata
        return "avc1.640028"
    return "avc1." + profile.hex()


def _describe_rendition(work: Path, rendition: Rendition, avc1: str) -> RenditionResult:
    """Measure what FFmpeg wrote: peak and average bit rate over the segments."""
    folder = work / rendition.name
    durations: list[tuple[float, str]] = []
    duration: float | None = None
    for line in (folder / MEDIA_PLAYLIST).read_text().splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",")[0])
        elif line and not line.startswith("#") and duration is not None:
            durations.append((duration, line))
            duration = None
    if not durations:
        raise TranscodeFailed()
    peak = 0.0
    total_bits = 0
    total_s = 0.0
    for seconds, name in durations:
        bits = (folder / name).stat().st_size * 8
        total_bits += bits
        total_s += seconds
        if seconds > 0.5:  # a very short last segment says little about the peak
            peak = max(peak, bits / seconds)
    average = total_bits / total_s if total_s else 0.0
    return RenditionResult(
        name=rendition.name,
        width=rendition.width,
        height=rendition.height,
        playlist=f"{PUBLISHED_DIR}/{rendition.name}/{MEDIA_PLAYLIST}",
        codecs=f"{avc1},{_AAC_CODECS}",
        bandwidth=math.ceil(max(peak, average)),
        average_bandwidth=math.ceil(average),
        segments=len(durations),
        size_bytes=sum(p.stat().st_size for p in folder.iterdir() if p.is_file()),
    )


def _master_playlist(renditions: Sequence[RenditionResult], *, captions: bool = False) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    subtitles = ""
    if captions:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{_SUBTITLES_GROUP}",NAME="Captions",'
            f'DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI="{CAPTIONS_DIR}/{CAPTIONS_PLAYLIST}"'
        )
        subtitles = f',SUBTITLES="{_SUBTITLES_GROUP}"'
    for r in renditions:
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={r.bandwidth},AVERAGE-BANDWIDTH={r.average_bandwidth},"
            f'RESOLUTION={r.width}x{r.height},FRAME-RATE={FPS:.3f},CODECS="{r.codecs}"{subtitles}'
        )
        lines.append(f"{r.name}/{MEDIA_PLAYLIST}")
    return "\n".join(lines) + "\n"


_SUBTITLES_GROUP = "subs"


def _write_captions(work: Path, captions_vtt: str, duration_s: float) -> None:
    """The captions as a WebVTT file with its one-segment subtitles playlist (the master
    playlist names them)."""
    folder = work / CAPTIONS_DIR
    folder.mkdir()
    (folder / CAPTIONS_FILE).write_text(captions_vtt)
    (folder / CAPTIONS_PLAYLIST).write_text(subtitles_playlist(duration_s))
