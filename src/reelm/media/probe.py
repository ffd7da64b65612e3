"""Safe probing of an uploaded video: only local MP4/MOV/Matroska/WebM files, bounded in time.
Every bad input ends in an `InvalidInput` with a stable code; nothing here reaches the network."""

from __future__ import annotations

import math
import os
import stat
import struct
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from reelm.errors import InvalidInput

ContainerName = Literal["mp4", "mov", "mkv", "webm"]

# The two demuxers FFmpeg may use, under their short and full names. Every other demuxer
# (hls, concat, image2, tee...) can point at other files or URLs, so it never runs: the format
# is forced from our own sniff, and `format_whitelist` refuses anything a nested open tries.
_ALLOWED_FORMAT_NAMES = frozenset({"mov", "mov,mp4,m4a,3gp,3g2,mj2", "matroska", "matroska,webm"})

VIDEO_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "prores"})

# Decoders FFmpeg may open while it looks at the streams (names of decoders, not codecs).
_DECODER_WHITELIST = ",".join(
    [
        *("h264", "hevc", "vp8", "vp9", "libvpx", "libvpx-vp9", "av1", "libdav1d", "mpeg4"),
        *("prores", "aac", "aac_fixed", "mp3", "mp3float", "opus", "libopus", "vorbis"),
        *("flac", "alac", "ac3", "eac3", "amrnb", "amrwb", "pcm_s16le", "pcm_s16be"),
        *("pcm_s24le", "pcm_s24be", "pcm_s32le", "pcm_f32le", "pcm_f32be"),
    ]
)

# ISO BMFF (MP4/MOV) boxes that may open a file.
_BMFF_FIRST_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"})
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_MAX_MOOV_BYTES = 64 * 1024 * 1024  # a 3-minute phone clip's index is well under 1 MB
_MAX_TOP_LEVEL_BOXES = 100_000
_DECODE_PACKET_BUDGET = 256  # packets fed to the decoder before we give up on a first frame


@dataclass(frozen=True)
class MediaLimits:
    """What an upload may be. Defaults fit a short vertical video from a phone."""

    max_bytes: int = 512 * 1024 * 1024
    max_duration_s: float = 180.0
    min_duration_s: float = 1.0
    max_side_px: int = 4096
    min_side_px: int = 16
    max_fps: float = 240.0
    # Wall-clock bound on reading the file (open, stream analysis, one decoded frame).
    timeout_s: float = 5.0

    @property
    def max_frames(self) -> int:
        return math.ceil(self.max_duration_s * self.max_fps)


@dataclass(frozen=True)
class ProbeResult:
    """What an upload is. `width`/`height` are as displayed, after `rotation`.

    `rotation` is the counter-clockwise turn (0, 90, 180 or 270) to apply to the decoded
    pictures to show them upright; phones record portrait video as rotated landscape.
    """

    container: ContainerName
    duration_s: float
    width: int
    height: int
    rotation: int
    fps: float
    has_audio: bool
    video_codec: str
    audio_codec: str | None
    size_bytes: int


# Things people upload by mistake, recognised so the message can say what it was.
_NOT_ACCEPTED: tuple[tuple[bytes, int, str, str], ...] = (
    (b"#EXTM3U", 0, "unsupported_container", "an HLS playlist"),
    (b"ffconcat", 0, "unsupported_container", "an FFmpeg concat playlist"),
    (b"RIFF", 0, "unsupported_container", "a RIFF file (AVI or WAV)"),
    (b"FLV", 0, "unsupported_container", "a Flash video"),
    (b"OggS", 0, "unsupported_container", "an Ogg file"),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", 0, "unsupported_container", "a Windows Media file"),
    (b"\x00\x00\x01\xba", 0, "unsupported_container", "an MPEG program stream"),
    (b"GIF8", 0, "unsupported_container", "a GIF image"),
    (b"\x89PNG", 0, "not_a_video", "a PNG image"),
    (b"\xff\xd8\xff", 0, "not_a_video", "a JPEG image"),
    (b"ID3", 0, "no_video_stream", "an MP3 audio file"),
    (b"fLaC", 0, "no_video_stream", "a FLAC audio file"),
)

_ACCEPTED_HINT = "Please upload an MP4, MOV, WebM or MKV video."


def _sniff(head: bytes) -> tuple[str, ContainerName]:
    """The demuxer to force and the container's name, from the first bytes alone."""
    if len(head) >= 8 and head[4:8] in _BMFF_FIRST_BOXES:
        brand = head[8:12] if head[4:8] == b"ftyp" else b""
        return "mov", "mov" if brand == b"qt  " else "mp4"
    if head.startswith(_EBML_MAGIC):
        return "matroska", "webm" if b"webm" in head[:64] else "mkv"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    for magic, offset, code, what in _NOT_ACCEPTED:
        if text[offset:].startswith(magic):
            raise InvalidInput(
                f"This file is {what}, not a video we accept. {_ACCEPTED_HINT}", code=code
            )
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        raise InvalidInput(
            f"This file is an MPEG transport stream, not a video we accept. {_ACCEPTED_HINT}",
            code="unsupported_container",
        )
    raise InvalidInput(f"This file is not a video. {_ACCEPTED_HINT}", code="not_a_video")


def _check_bmff_boxes(path: Path, size: int) -> None:
    """Walk the top-level boxes: the index (moov) must be there, whole, and of sane size.

    A phone writes the index last, so an upload cut short loses it; saying so here is clearer
    than FFmpeg's "moov atom not found", and refusing a giant index bounds parsing time.
    """
    offset = 0
    seen_moov = False
    with path.open("rb") as f:
        for _ in range(_MAX_TOP_LEVEL_BOXES):
            if offset >= size:
                break
            if size - offset < 8:
                raise _incomplete()
            f.seek(offset)
            header = f.read(16)
            box_size, box_type = struct.unpack(">I4s", header[:8])
            header_size = 8
            if box_size == 1:
                if len(header) < 16:
                    raise _incomplete()
                (box_size,) = struct.unpack(">Q", header[8:16])
                header_size = 16
            elif box_size == 0:  # "to the end of the file"
                box_size = size - offset
            if box_size < header_size:
                raise InvalidInput(
                    "This video file is damaged (a broken MP4 box). Please export it again.",
                    code="corrupt_file",
                )
            if offset + box_size > size:
                raise _incomplete()
            if box_type == b"moov":
                if box_size > _MAX_MOOV_BYTES:
                    raise InvalidInput(
                        "This video's index is implausibly large. Please export it again.",
                        code="corrupt_file",
                    )
                seen_moov = True
            offset += box_size
        else:
            raise InvalidInput(
                "This video file has an implausible structure. Please export it again.",
                code="corrupt_file",
            )
    if not seen_moov:
        raise _incomplete()


def _incomplete() -> InvalidInput:
    return InvalidInput(
        "This video file is incomplete (the upload may have been cut off, or the recording "
        "was not finished). Please upload it again.",
        code="corrupt_file",
    )


def _corrupt(detail: str = "") -> InvalidInput:
    suffix = f" ({detail})" if detail else ""
    return InvalidInput(
        f"This video file could not be read{suffix}. Please export it again or try another file.",
        code="corrupt_file",
    )


def _checked_size(path: Path, limits: MediaLimits) -> int:
    """Size of a regular file; FIFOs and devices would block or never end, so they are refused."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InvalidInput(
            "The uploaded file was not found. Please upload it again.", code="missing_file"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInput("This upload is not a regular file.", code="not_a_video")
    if st.st_size == 0:
        raise InvalidInput("The uploaded file is empty.", code="empty_file")
    if st.st_size > limits.max_bytes:
        raise InvalidInput(
            f"The video is {st.st_size / 1e6:.0f} MB; the limit is "
            f"{limits.max_bytes / 1e6:.0f} MB. Please trim it or export at a lower quality.",
            code="too_large",
        )
    return st.st_size


def open_local_video(
    path: Path, *, limits: MediaLimits | None = None
) -> tuple[InputContainer, ContainerName, int]:
    """Open a local upload with only the allowed demuxers and the `file` protocol.

    Returns the open container (the caller closes it), the container's name and the size.
    """
    limits = limits or MediaLimits()
    size = _checked_size(path, limits)
    with path.open("rb") as f:
        head = f.read(4096)
    demuxer, container_name = _sniff(head)
    if demuxer == "mov":
        _check_bmff_boxes(path, size)
    container_options = {
        "protocol_whitelist": "file",
        "format_whitelist": "mov,matroska",
        "codec_whitelist": _DECODER_WHITELIST,
        "probesize": str(5_000_000),
        "analyzeduration": str(5_000_000),  # microseconds
        "max_streams": "16",
        "enable_drefs": "0",  # MOV: never follow references to other files
        "use_absolute_path": "0",
    }
    # Passed to each decoder FFmpeg opens while analysing streams: refuse giant frames
    # before a buffer is allocated for them.
    decoder_options = {"max_pixels": str(limits.max_side_px * limits.max_side_px)}
    try:
        # "file:" stops a name like "concat:a|b" or "subfile,..." being read as a protocol.
        container = av.open(
            "file:" + str(path.resolve()),
            "r",
            format=demuxer,
            options=decoder_options,
            container_options=container_options,
            timeout=(limits.timeout_s, limits.timeout_s),
        )
    except (av.FFmpegError, OSError, ValueError, RuntimeError) as exc:
        raise _corrupt() from exc
    if container.format.name not in _ALLOWED_FORMAT_NAMES:  # pragma: no cover - forced above
        container.close()
        raise InvalidInput(f"Unsupported container. {_ACCEPTED_HINT}", code="unsupported_container")
    return container, container_name, size


def probe_upload(path: Path, *, limits: MediaLimits | None = None) -> ProbeResult:
    """Describe an uploaded video, or refuse it with a message its maker can act on.

    Reads the headers and decodes one frame, never the whole file: the work is bounded by
    `limits.timeout_s` on I/O and by a packet budget on decoding.
    """
    limits = limits or MediaLimits()
    deadline = time.monotonic() + limits.timeout_s
    container, container_name, size = open_local_video(path, limits=limits)
    try:
        return _describe(container, container_name, size, limits, deadline)
    except (av.FFmpegError, ArithmeticError, ValueError, RuntimeError) as exc:
        # Whatever a malformed header makes FFmpeg or the arithmetic on its values do.
        raise _corrupt() from exc
    finally:
        container.close()


def pick_video_stream(container: InputContainer) -> VideoStream:
    """The first real video stream; cover art (an attached picture) does not count."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    if container.streams.audio:
        raise InvalidInput(
            "This file only has sound, no picture. Please upload a video.",
            code="no_video_stream",
        )
    raise InvalidInput(
        "This file has no video in it. Please upload a video.", code="no_video_stream"
    )


def _describe(
    container: InputContainer,
    container_name: ContainerName,
    size: int,
    limits: MediaLimits,
    deadline: float,
) -> ProbeResult:
    video = pick_video_stream(container)
    if video.codec_context is None or video.codec.canonical_name not in VIDEO_CODECS:
        codec = video.codec_context.codec.canonical_name if video.codec_context else "unknown"
        raise InvalidInput(
            f"Videos encoded as {codec} are not supported. "
            "Please use H.264, HEVC, VP8, VP9 or AV1.",
            code="unsupported_codec",
        )
    _check_dimensions(video.width, video.height, limits)
    fps = _frame_rate(video)
    duration = _duration(container, video)
    if duration is None:
        duration, pictures = _duration_by_demuxing(container, video, limits, deadline)
        _check_duration(duration, limits)
        # A file that declares no duration (a browser's MediaRecorder WebM) declares no real
        # frame rate either: its stream's "rate" is its time base, 1000/s. Its rate is what
        # was recorded.
        fps = pictures / duration
    if fps is None and duration and video.frames:
        fps = video.frames / duration
    if fps is not None and fps > limits.max_fps:
        raise InvalidInput(
            f"The video claims {fps:.0f} frames per second; at most {limits.max_fps:.0f} are "
            "supported. Please export it at a normal frame rate.",
            code="unsupported_frame_rate",
        )
    _check_duration(duration, limits)
    # Within the limits on length and rate, more frames than both allow is a crafted claim.
    if video.frames > limits.max_frames:
        raise InvalidInput(
            f"The video claims {video.frames} frames, far more than a "
            f"{limits.max_duration_s:.0f}-second video can have. The file is damaged or crafted.",
            code="too_many_frames",
        )
    frame = _first_frame(container, video, limits, deadline)
    _check_dimensions(frame.width, frame.height, limits)
    rotation = display_rotation(frame)
    width, height = frame.width, frame.height
    if rotation in (90, 270):
        width, height = height, width
    audio = next((s for s in container.streams.audio if s.codec_context is not None), None)
    return ProbeResult(
        container=container_name,
        duration_s=duration,
        width=width,
        height=height,
        rotation=rotation,
        fps=float(fps) if fps is not None else 0.0,
        has_audio=audio is not None,
        video_codec=video.codec.canonical_name,
        audio_codec=audio.codec.canonical_name if audio is not None else None,
        size_bytes=size,
    )


def display_rotation(frame: VideoFrame) -> int:
    """The frame's display-matrix turn, counter-clockwise, snapped to 0, 90, 180 or 270."""
    return round(frame.rotation / 90) * 90 % 360


def _check_dimensions(width: int, height: int, limits: MediaLimits) -> None:
    if width <= 0 or height <= 0:
        raise _corrupt("the picture size is missing")
    if max(width, height) > limits.max_side_px:
        raise InvalidInput(
            f"The video is {width}x{height}; the longest side may be at most "
            f"{limits.max_side_px} pixels. Please export it at a lower resolution.",
            code="resolution_too_high",
        )
    if min(width, height) < limits.min_side_px:
        raise InvalidInput(
            f"The video is {width}x{height}; each side must be at least "
            f"{limits.min_side_px} pixels.",
            code="resolution_too_low",
        )


def _frame_rate(video: VideoStream) -> float | None:
    rate: Fraction | None = video.average_rate or video.guessed_rate
    if rate is None or rate <= 0:
        return None
    return float(rate)


def _duration(container: InputContainer, video: VideoStream) -> float | None:
    """The duration the file declares: the container's, else the video stream's."""
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    if video.duration is not None and video.duration > 0 and video.time_base is not None:
        return float(video.duration * video.time_base)
    return None


def _duration_by_demuxing(
    container: InputContainer, video: VideoStream, limits: MediaLimits, deadline: float
) -> tuple[float, int]:
    """Read packet timestamps (no decoding) when a file declares no duration.

    Browsers' MediaRecorder writes WebM without one. The sound counts as much as the pictures:
    a browser that drops frames while recording (a busy phone) still keeps every bit of sound,
    and the transcode holds the last picture to the end. Stops as soon as the video is known
    to be too long, so the cost is bounded by the limits, not by what the file claims.
    """
    end = 0.0
    count = 0
    pictures = 0
    streams = [video, *container.streams.audio[:1]]
    for packet in container.demux(streams):
        if packet.pts is None or packet.time_base is None:
            continue
        count += 1
        pictures += packet.stream is video
        end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
        if end > limits.max_duration_s:
            raise InvalidInput(
                f"The video is longer than {limits.max_duration_s:g} seconds, the limit. "
                "Please trim it first.",
                code="too_long",
            )
        if count > limits.max_frames:
            raise InvalidInput(
                "The video has far more frames than its length allows. The file is damaged.",
                code="too_many_frames",
            )
        if count % 64 == 0 and time.monotonic() > deadline:
            raise _corrupt("reading it took too long")
    container.seek(0)
    if end <= 0 or pictures == 0:
        raise _corrupt("it has no timed frames")
    return end, pictures


def _check_duration(duration: float, limits: MediaLimits) -> None:
    if not math.isfinite(duration) or duration <= 0:
        raise _corrupt("its length is missing")
    if duration > limits.max_duration_s:
        raise InvalidInput(
            f"The video is {duration:.1f} seconds long; the limit is "
            f"{limits.max_duration_s:g} seconds. Please trim it first.",
            code="too_long",
        )
    if duration < limits.min_duration_s:
        raise InvalidInput(
            f"The video is {duration:.2f} seconds long; it must be at least "
            f"{limits.min_duration_s:g} second(s).",
            code="too_short",
        )


def _first_frame(
    container: InputContainer, video: VideoStream, limits: MediaLimits, deadline: float
) -> VideoFrame:
    """Decode one picture: proof the stream is real, and the carrier of the rotation."""
    context = video.codec_context
    context.options = {"max_pixels": str(limits.max_side_px * limits.max_side_px)}
    context.thread_count = 1  # one frame in, one frame out; errors surface at once
    fed = 0
    try:
        for packet in container.demux(video):
            fed += 1
            for frame in packet.decode():
                if isinstance(frame, VideoFrame):
                    return frame
            if fed >= _DECODE_PACKET_BUDGET or time.monotonic() > deadline:
                break
        else:
            for frame in video.decode(None):
                return frame
    except av.FFmpegError as exc:
        raise _corrupt("its pictures could not be decoded") from exc
    raise _corrupt("no picture could be decoded")
