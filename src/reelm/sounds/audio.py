"""The catalog's sound and picture work, all in PyAV: probe, measure, normalise, preview, cover.

Files are opened only as local files with a fixed list of demuxers (`protocol_whitelist=file`),
so no playlist or reference inside a file can make FFmpeg read another file or a URL. These are
plain functions of files, testable without any database.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import math
from array import array
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.filter import Graph
from av.filter.context import FilterContext
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame

from reelm.errors import InvalidInput
from reelm.media.filters import link_fragment

MIN_SONG_S = 5.0
MAX_SONG_S = 600.0
MAX_SONG_BYTES = 200 * 1024 * 1024
SONG_BITRATE = 128_000
# What the catalog plays at: streaming services and phones normalise to about -14 LUFS, and so
# does Create's mix (media/transcode.py), so a song sits at the level of the videos around it.
LOUDNESS_LUFS = -14.0
TRUE_PEAK_DBTP = -1.5
LOUDNESS_RANGE_LU = 11.0
# An AAC-in-MP4 source this close to the target is stored as it is, not encoded a second time.
LOUDNESS_TOLERANCE_LU = 1.0
# Below this integrated loudness nothing can be heard (ebur128 reports -70 for silence).
SILENT_LUFS = -60.0
PREVIEW_S = 30.0
WAVEFORM_POINTS = 200
COVER_PX = 512
MAX_COVER_BYTES = 8 * 1024 * 1024
# Demuxers a song may come in: MP4/M4A/MOV, Matroska/WebM, MP3, FLAC, WAV, Ogg. None of them
# follows references to other files or URLs; the `file` protocol is the only one allowed.
AUDIO_FORMATS = "mov,matroska,mp3,flac,wav,ogg"
ACCEPTED = "Please use an MP3, AAC (.m4a), FLAC, WAV or Ogg file."
_OPEN_TIMEOUT_S = 10.0
_ENERGY_BIN_S = 0.5
_AAC_FRAME = 1024
_ARRAY_TYPE = {"dbl": "d", "dblp": "d", "flt": "f", "fltp": "f"}


@dataclass(frozen=True)
class SongProbe:
    """What an audio file is; `reusable` when it is already AAC in MP4 and can be copied as is."""

    duration_s: float
    codec: str
    channels: int
    sample_rate: int
    bit_rate: int | None
    reusable: bool


@dataclass(frozen=True)
class Analysis:
    """One pass of EBU R128 measurement (FFmpeg's `ebur128`) plus what the catalog shows.

    `peaks` are the sample peaks (0..1 of full scale) of WAVEFORM_POINTS equal slices;
    `loudest_start_s` starts the PREVIEW_S window with the most momentary loudness energy.
    """

    duration_s: float
    loudness_lufs: float
    loudness_range_lu: float
    true_peak_dbtp: float
    peaks: list[float]
    loudest_start_s: float

    def scaled(self, gain_db: float) -> Analysis:
        """The same sound `gain_db` louder: what a linear normalisation produces."""
        factor = 10 ** (gain_db / 20)
        return Analysis(
            duration_s=self.duration_s,
            loudness_lufs=self.loudness_lufs + gain_db,
            loudness_range_lu=self.loudness_range_lu,
            true_peak_dbtp=self.true_peak_dbtp + gain_db,
            peaks=[min(1.0, round(p * factor, 3)) for p in self.peaks],
            loudest_start_s=self.loudest_start_s,
        )


# --- opening and probing -------------------------------------------------------------------------


def checked_size(path: Path) -> int:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InvalidInput(f"No such file: {path}", code="missing_file") from None
    if not path.is_file():
        raise InvalidInput(f"{path} is not a regular file. {ACCEPTED}", code="not_audio")
    if st.st_size == 0:
        raise InvalidInput(f"{path} is empty. {ACCEPTED}", code="empty_file")
    if st.st_size > MAX_SONG_BYTES:
        raise InvalidInput(
            f"{path} is {st.st_size / 1e6:.0f} MB; a song may be at most "
            f"{MAX_SONG_BYTES / 1e6:.0f} MB.",
            code="too_large",
        )
    return st.st_size


def open_audio(path: Path, formats: str = AUDIO_FORMATS) -> InputContainer:
    """Open a local audio file with only the given demuxers and the `file` protocol."""
    checked_size(path)
    try:
        return av.open(
            "file:" + str(path.resolve()),
            "r",
            container_options={
                "protocol_whitelist": "file",
                "format_whitelist": formats,
                "enable_drefs": "0",
                "use_absolute_path": "0",
            },
            timeout=(_OPEN_TIMEOUT_S, _OPEN_TIMEOUT_S),
        )
    except (av.FFmpegError, OSError, ValueError, RuntimeError) as exc:
        raise InvalidInput(
            f"{path.name} is not an audio file we can read. {ACCEPTED}", code="not_audio"
        ) from exc


def audio_stream(container: InputContainer, name: str) -> AudioStream:
    stream = next((s for s in container.streams.audio if s.codec_context is not None), None)
    if stream is None:
        raise InvalidInput(
            f"{name} has no sound in it: a song needs an audio stream. {ACCEPTED}",
            code="no_audio_stream",
        )
    return stream


def _duration(container: InputContainer, stream: AudioStream) -> float:
    """The declared duration, else the end of the last packet (bounded by the limit)."""
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    if stream.duration and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    end = 0.0
    for packet in container.demux(stream):
        if packet.pts is None or packet.time_base is None:
            continue
        end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
        if end > MAX_SONG_S:
            break
    container.seek(0)
    return end


def decoded(container: InputContainer, stream: AudioStream) -> Iterator[AudioFrame]:
    for packet in container.demux(stream):
        for frame in packet.decode():
            if isinstance(frame, AudioFrame):
                yield frame


def probe_song(path: Path, *, min_s: float = MIN_SONG_S) -> SongProbe:
    """Describe an audio file, or refuse it with a message saying what is wrong.

    Decodes the first frame, so a file with a plausible header and broken audio is refused
    here and not halfway through a transcode.
    """
    container = open_audio(path)
    try:
        stream = audio_stream(container, path.name)
        duration = _duration(container, stream)
        if duration < min_s:
            raise InvalidInput(
                f"{path.name} is {duration:.1f} seconds long; a song must be at least "
                f"{min_s:g} seconds.",
                code="too_short",
            )
        if duration > MAX_SONG_S:
            raise InvalidInput(
                f"{path.name} is {duration:.0f} seconds long; a song may be at most "
                f"{MAX_SONG_S:g} seconds ({MAX_SONG_S / 60:g} minutes).",
                code="too_long",
            )
        ctx = stream.codec_context
        if next(decoded(container, stream), None) is None:
            raise InvalidInput(f"{path.name}: no sound could be decoded.", code="corrupt_audio")
        codec = stream.codec.name
        bit_rate = stream.bit_rate or None
        fmt = container.format.name.split(",")
        reusable = (
            codec == "aac"
            and "mp4" in fmt
            and ctx.channels in (1, 2)
            and ctx.sample_rate in (44_100, 48_000)
            and (bit_rate is None or bit_rate <= 192_000)
            and ctx.profile in (None, "LC")
        )
        return SongProbe(
            duration_s=duration,
            codec=codec,
            channels=ctx.channels,
            sample_rate=ctx.sample_rate,
            bit_rate=bit_rate,
            reusable=reusable,
        )
    except av.FFmpegError as exc:
        raise InvalidInput(
            f"{path.name}: the sound could not be decoded. {ACCEPTED}", code="corrupt_audio"
        ) from exc
    finally:
        container.close()


# --- filter graphs -------------------------------------------------------------------------------


class _Chain:
    """An audio filter chain fed frame by frame, built from the first frame's format."""

    def __init__(self, fragment: str) -> None:
        self.fragment = fragment
        self.graph: Graph | None = None
        self.source: FilterContext | None = None
        self.sink: FilterContext | None = None

    def _build(self, frame: AudioFrame) -> tuple[FilterContext, FilterContext]:
        graph = Graph()
        source = graph.add(
            "abuffer",
            sample_rate=str(frame.sample_rate),
            sample_fmt=frame.format.name,
            channel_layout=frame.layout.name,
            time_base=f"1/{frame.sample_rate}",
        )
        sink = graph.add("abuffersink")
        link_fragment(graph, source, self.fragment).link_to(sink)
        graph.configure()
        self.graph, self.source, self.sink = graph, source, sink
        return source, sink

    def run(self, frames: Iterable[AudioFrame]) -> Iterator[AudioFrame]:
        """Filter `frames` (timestamps renumbered in samples), then flush."""
        written = 0
        for frame in frames:
            source, sink = (self.source, self.sink) if self.source else self._build(frame)
            frame.pts, frame.time_base = written, Fraction(1, frame.sample_rate)
            written += frame.samples
            try:
                source.push(frame)
            except av.EOFError:  # the chain is trimmed: it needs no more
                break
            yield from self._drain()
        if self.source is None:
            return
        with suppress(av.EOFError):
            self.source.push(None)
        yield from self._drain()

    def _drain(self) -> Iterator[AudioFrame]:
        assert self.sink is not None
        while True:
            try:
                out = self.sink.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            assert isinstance(out, AudioFrame)
            yield out


def _frame_peak(frame: AudioFrame) -> float:
    """Largest absolute sample of a float frame. Every 3rd sample is plenty for a picture, and
    an odd step visits both channels of interleaved stereo."""
    code = _ARRAY_TYPE.get(frame.format.name)
    if code is None:  # pragma: no cover - ebur128 always hands back doubles
        return 0.0
    width = 8 if code == "d" else 4
    peak = 0.0
    packed = len(frame.planes) == 1
    count = frame.samples * (len(frame.layout.channels) if packed else 1)
    for plane in frame.planes:
        values = array(code, bytes(plane)[: count * width])[::3]
        if values:
            peak = max(peak, max(values), -min(values))
    return peak


# --- measuring -----------------------------------------------------------------------------------


def analyse(path: Path, formats: str = AUDIO_FORMATS) -> Analysis:
    """Measure a sound with EBU R128 (integrated loudness, range, true peak) in one decode,
    collecting the waveform peaks and the loudest PREVIEW_S on the way."""
    container = open_audio(path, formats)
    last: dict[str, str] = {}
    frame_peaks: list[tuple[float, float]] = []
    energy: list[float] = []
    samples = 0
    rate = 0
    try:
        stream = audio_stream(container, path.name)
        measure = _Chain("ebur128=metadata=1:peak=true")
        for frame in measure.run(decoded(container, stream)):
            rate = frame.sample_rate
            at = samples / rate
            samples += frame.samples
            metadata = frame.metadata
            if "lavfi.r128.I" in metadata:
                last = dict(metadata)
            momentary = float(metadata.get("lavfi.r128.M", "-120"))
            index = int(at / _ENERGY_BIN_S)
            while len(energy) <= index:
                energy.append(0.0)
            energy[index] += 10 ** (momentary / 10) * frame.samples
            frame_peaks.append((at, _frame_peak(frame)))
    except av.FFmpegError as exc:
        raise InvalidInput(
            f"{path.name}: the sound could not be decoded. {ACCEPTED}", code="corrupt_audio"
        ) from exc
    finally:
        container.close()
    duration = samples / rate if rate else 0.0
    true_peak = float(last.get("lavfi.r128.true_peak", "0"))
    return Analysis(
        duration_s=duration,
        loudness_lufs=float(last.get("lavfi.r128.I", "-70")),
        loudness_range_lu=float(last.get("lavfi.r128.LRA", "0")),
        true_peak_dbtp=20 * math.log10(max(true_peak, 1e-10)),
        peaks=_waveform(frame_peaks, duration),
        loudest_start_s=_loudest_start(energy, duration),
    )


def _waveform(frame_peaks: Sequence[tuple[float, float]], duration: float) -> list[float]:
    """The highest peak in each of WAVEFORM_POINTS equal slices of the sound."""
    if not frame_peaks or duration <= 0:
        return [0.0] * WAVEFORM_POINTS
    points = [0.0] * WAVEFORM_POINTS
    for i, (at, peak) in enumerate(frame_peaks):
        end = frame_peaks[i + 1][0] if i + 1 < len(frame_peaks) else duration
        first = min(WAVEFORM_POINTS - 1, int(at / duration * WAVEFORM_POINTS))
        last = min(WAVEFORM_POINTS - 1, max(first, math.ceil(end / duration * WAVEFORM_POINTS) - 1))
        for slot in range(first, last + 1):
            points[slot] = max(points[slot], peak)
    return [min(1.0, round(p, 3)) for p in points]


def _loudest_start(energy: Sequence[float], duration: float) -> float:
    """Start of the PREVIEW_S window holding the most loudness energy (0 for short songs)."""
    width = round(PREVIEW_S / _ENERGY_BIN_S)
    if duration <= PREVIEW_S or len(energy) <= width:
        return 0.0
    latest = max(0, math.floor((duration - PREVIEW_S) / _ENERGY_BIN_S))
    window = sum(energy[:width])
    best, best_at = window, 0
    for start in range(1, min(latest, len(energy) - width) + 1):
        window += energy[start + width - 1] - energy[start - 1]
        if window > best * (1 + 1e-9):
            best, best_at = window, start
    return best_at * _ENERGY_BIN_S


# --- writing the catalog's files -----------------------------------------------------------------


def write_song(source: Path, target: Path, probe: SongProbe, analysis: Analysis) -> Analysis:
    """Write `source` as an .m4a of AAC-LC at LOUDNESS_LUFS, and return what it now measures.

    An AAC-in-MP4 source already within LOUDNESS_TOLERANCE_LU of the target, with its true peak
    under TRUE_PEAK_DBTP, is copied packet by packet (no second lossy encode). Anything else is
    decoded, normalised by FFmpeg's `loudnorm` (EBU R128) from this pass's measurement, which
    makes it a plain gain (linear mode) unless that gain would push the true peak over
    TRUE_PEAK_DBTP (then loudnorm's dynamic mode, whose result is measured again: a sound whose
    loudness is all in a few peaks may stay below the target), and encoded as stereo AAC at 128 kbit/s
    (44.1 kHz kept, other rates become 48 kHz). Only the sound is kept: no tags, no art.
    """
    if analysis.loudness_lufs < SILENT_LUFS:
        raise InvalidInput(
            f"{source.name} is silent (or nearly: {analysis.loudness_lufs:.0f} LUFS); a song "
            "must be audible.",
            code="silent_audio",
        )
    gain = LOUDNESS_LUFS - analysis.loudness_lufs
    if (
        probe.reusable
        and abs(gain) <= LOUDNESS_TOLERANCE_LU
        and analysis.true_peak_dbtp <= TRUE_PEAK_DBTP
    ):
        copy_audio(source, target)
        return analysis
    rate = probe.sample_rate if probe.sample_rate in (44_100, 48_000) else 48_000
    lra = min(50.0, max(LOUDNESS_RANGE_LU, math.ceil(analysis.loudness_range_lu + 1)))
    measured_i = min(0.0, max(-99.0, analysis.loudness_lufs))
    loudnorm = (
        f"loudnorm=I={LOUDNESS_LUFS}:TP={TRUE_PEAK_DBTP}:LRA={lra}"
        f":measured_I={measured_i:.2f}"
        f":measured_TP={min(99.0, max(-99.0, analysis.true_peak_dbtp)):.2f}"
        f":measured_LRA={min(99.0, analysis.loudness_range_lu):.2f}"
        f":measured_thresh={max(-99.0, measured_i - 10):.2f}:offset=0:linear=true"
    )
    linear = analysis.true_peak_dbtp + gain <= TRUE_PEAK_DBTP
    _encode(source, target, f"{loudnorm},{_output_format(rate)}", rate)
    if linear:
        return analysis.scaled(gain)
    return analyse(target, "mov")  # dynamic: measure what it made


def _output_format(rate: int) -> str:
    return (
        f"aresample={rate},aformat=sample_fmts=fltp:sample_rates={rate}:channel_layouts=stereo,"
        f"asetnsamples=n={_AAC_FRAME}:p=0"
    )


def _encode(source: Path, target: Path, fragment: str, rate: int) -> None:
    """Decode `source`, filter it and write stereo AAC into an .m4a."""
    container = open_audio(source)
    try:
        stream = audio_stream(container, source.name)
        frames = decoded(container, stream)
        with av.open(str(target), "w", format="ipod", options={"movflags": "+faststart"}) as out:
            aac = out.add_stream("aac", rate=rate)
            assert isinstance(aac, AudioStream)
            aac.layout = "stereo"
            aac.bit_rate = SONG_BITRATE
            time_base = Fraction(1, rate)
            written = 0
            for frame in _Chain(fragment).run(frames):
                frame.pts, frame.time_base = written, time_base
                written += frame.samples
                out.mux(aac.encode(frame))
            out.mux(aac.encode(None))
    except av.FFmpegError as exc:
        raise InvalidInput(
            f"{source.name}: the sound could not be decoded. {ACCEPTED}", code="corrupt_audio"
        ) from exc
    finally:
        container.close()


def copy_audio(source: Path, target: Path, formats: str = AUDIO_FORMATS) -> None:
    """Copy the first audio stream's packets into an .m4a, untouched (index first)."""
    container = open_audio(source, formats)
    try:
        stream = audio_stream(container, source.name)
        with av.open(str(target), "w", format="ipod", options={"movflags": "+faststart"}) as out:
            copy = out.add_stream_from_template(stream)
            for packet in container.demux(stream):
                if packet.dts is None:
                    continue
                packet.stream = copy
                out.mux(packet)
    except av.FFmpegError as exc:
        raise InvalidInput(
            f"{source.name}: the sound could not be read. {ACCEPTED}", code="corrupt_audio"
        ) from exc
    finally:
        container.close()


def write_preview(song: Path, target: Path, start_s: float, duration_s: float) -> None:
    """The song's PREVIEW_S from `start_s` as an .m4a, cut from the song's own AAC packets
    (no second encode, so it takes milliseconds; cuts fall on 21-23 ms frame boundaries).
    A song no longer than PREVIEW_S is its own preview."""
    if duration_s <= PREVIEW_S:
        target.write_bytes(song.read_bytes())
        return
    start_s = max(0.0, min(start_s, duration_s - PREVIEW_S))
    container = open_audio(song, "mov")
    try:
        stream = audio_stream(container, song.name)
        assert stream.time_base is not None
        first = round(start_s / stream.time_base)
        last = round((start_s + PREVIEW_S) / stream.time_base)
        with av.open(str(target), "w", format="ipod", options={"movflags": "+faststart"}) as out:
            copy = out.add_stream_from_template(stream)
            for packet in container.demux(stream):
                if packet.pts is None or packet.dts is None or packet.pts < first:
                    continue
                if packet.pts >= last:
                    break
                packet.pts -= first
                packet.dts -= first
                packet.stream = copy
                out.mux(packet)
    except av.FFmpegError as exc:
        raise InvalidInput(
            f"{song.name}: the preview could not be cut.", code="corrupt_audio"
        ) from exc
    finally:
        container.close()


# --- covers --------------------------------------------------------------------------------------


def _jpeg(picture: VideoFrame) -> bytes:
    full = picture.reformat(format="yuvj420p")
    encoder = av.CodecContext.create("mjpeg", "w")
    assert isinstance(encoder, VideoCodecContext)
    encoder.width, encoder.height = full.width, full.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.qscale = True
    encoder.global_quality = 3 * 118  # FF_QP2LAMBDA * q: q=3 is a good, small JPEG
    full.pts = 0
    data = bytearray()
    for packet in [*encoder.encode(full), *encoder.encode(None)]:
        data += bytes(packet)
    return bytes(data)


def cover_from_image(data: bytes) -> bytes | None:
    """A JPEG or PNG picture (a file's embedded art, a video's poster) as the catalog's square
    COVER_PX JPEG, cropped to the middle; None when it is not a picture we can decode."""
    if not data or len(data) > MAX_COVER_BYTES:
        return None
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        demuxer = "png_pipe"
    elif data.startswith(b"\xff\xd8"):
        demuxer = "jpeg_pipe"
    else:
        return None
    try:
        with av.open(io.BytesIO(data), "r", format=demuxer) as container:
            picture = next(container.decode(video=0), None)
            if not isinstance(picture, VideoFrame) or max(picture.width, picture.height) > 8192:
                return None
            graph = Graph()
            source = graph.add_buffer(
                width=picture.width,
                height=picture.height,
                format=picture.format,
                time_base=Fraction(1, 25),
            )
            end = link_fragment(
                graph,
                source,
                f"scale={COVER_PX}:{COVER_PX}:force_original_aspect_ratio=increase,"
                f"crop={COVER_PX}:{COVER_PX},format=yuvj420p",
            )
            sink = graph.add("buffersink")
            end.link_to(sink)
            graph.configure()
            picture.pts = 0
            source.push(picture)
            square = sink.pull()
            assert isinstance(square, VideoFrame)
            return _jpeg(square)
    except (av.FFmpegError, OSError, ValueError, StopIteration):
        return None


def _rgb(hue: float, saturation: float, value: float) -> bytes:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return bytes((round(r * 255), round(g * 255), round(b * 255)))


def generated_cover(title: str, artist: str, peaks: Sequence[float]) -> bytes:
    """A square JPEG in the song's own colours (two hues drawn from its title and artist, as a
    diagonal gradient) with its waveform across the middle: recognisable, never downloaded."""
    seed = hashlib.sha256(f"{title}\n{artist}".encode()).digest()
    hue = seed[0] / 255
    first = _rgb(hue, 0.55 + seed[1] / 255 * 0.25, 0.92)
    second = _rgb(hue + 0.12 + seed[2] / 255 * 0.3, 0.7, 0.32 + seed[3] / 255 * 0.2)
    size = COVER_PX
    steps = 2 * size
    strip = bytearray()
    for i in range(steps):
        t = i / (steps - 1)
        strip += bytes(round(a + (b - a) * t) for a, b in zip(first, second, strict=True))
    rows = [bytearray(strip[3 * y : 3 * (y + size)]) for y in range(size)]
    bars = 48
    values = list(peaks) or [0.0]
    top = max(values) or 1.0
    slot = size * 0.8 / bars
    left = size * 0.1
    middle = size // 2
    ink = _rgb(hue, 0.08, 1.0)
    for bar in range(bars):
        chunk = values[bar * len(values) // bars : (bar + 1) * len(values) // bars] or [0.0]
        half = max(2, round(max(chunk) / top * size * 0.22))
        x0, x1 = round(left + bar * slot), round(left + bar * slot + slot * 0.6)
        for y in range(middle - half, middle + half):
            rows[y][3 * x0 : 3 * x1] = ink * (x1 - x0)
    frame = VideoFrame(size, size, "rgb24")
    line = frame.planes[0].line_size
    frame.planes[0].update(b"".join(bytes(r) + b"\0" * (line - 3 * size) for r in rows))
    return _jpeg(frame)
