"""Captions: WebVTT read strictly enough to say what is wrong and where, and written back as
plain-text cues only (no markup, styles or regions), so what a viewer's player gets is exactly
the words and times the creator gave.

Times count in the edited video (after trim and speed), like text overlays. The published
video carries them as `captions.vtt` with a one-segment subtitles playlist named by the master
playlist (HLS `EXT-X-MEDIA TYPE=SUBTITLES`), and its public record carries the text.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from reelm.errors import InvalidInput
from reelm.text import clean_text

MAX_CUES = 300
MAX_CUE_CHARS = 300
MAX_WEBVTT_BYTES = 128 * 1024
CAPTIONS_DIR = "subs"
CAPTIONS_FILE = "captions.vtt"
CAPTIONS_PLAYLIST = "index.m3u8"

_TIMESTAMP = r"(?:(\d{2,}):)?([0-5]\d):([0-5]\d)\.(\d{3})"
_TIMING = re.compile(rf"^{_TIMESTAMP}[ \t]+-->[ \t]+{_TIMESTAMP}(?:[ \t]+.*)?$")
_TAG = re.compile(r"<[^>]*>")
_LOOKS_TIMED = re.compile(r"^\s*\d+:\d\d[:.,]")


class Cue(BaseModel):
    """One caption: its words from `start_s` to `end_s` of the edited video."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_s: float = Field(ge=0, allow_inf_nan=False)
    end_s: float = Field(ge=0, allow_inf_nan=False)
    text: str = Field(min_length=1, max_length=MAX_CUE_CHARS)


class InvalidCaptions(InvalidInput):
    def __init__(self, message: str, *, code: str = "invalid_webvtt") -> None:
        super().__init__(message, code=code)


def _seconds(hours: str | None, minutes: str, seconds: str, millis: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def parse_webvtt(source: str | bytes) -> list[Cue]:
    """The cues of a WebVTT file, or `InvalidCaptions` naming the line that is wrong.

    Follows the W3C WebVTT file structure: the `WEBVTT` signature, blocks separated by blank
    lines, `NOTE`, `STYLE` and `REGION` blocks (skipped), cues with an optional identifier, a
    timing line (`00:01.000 --> 00:02.500`, cue settings allowed and dropped) and text. Cue
    markup (`<b>`, `<v Name>`...) is reduced to its text.
    """
    if isinstance(source, bytes):
        if len(source) > MAX_WEBVTT_BYTES:
            raise InvalidCaptions(
                f"The caption file is {len(source) // 1024} KB; at most "
                f"{MAX_WEBVTT_BYTES // 1024} KB are accepted."
            )
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidCaptions(
                "The caption file is not UTF-8 text, as WebVTT must be."
            ) from None
    if len(source.encode()) > MAX_WEBVTT_BYTES:
        raise InvalidCaptions(f"Captions may be at most {MAX_WEBVTT_BYTES // 1024} KB of WebVTT.")
    lines = source.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    first = lines[0]
    if not (first == "WEBVTT" or first.startswith(("WEBVTT ", "WEBVTT\t"))):
        raise InvalidCaptions(
            "This is not a WebVTT file: its first line must be “WEBVTT”. "
            "Save your captions as .vtt (WebVTT), or type them on the timeline."
        )
    cues: list[Cue] = []
    index = 1
    # the rest of the header block (metadata lines) ends at the first blank line
    while index < len(lines) and lines[index].strip():
        if "-->" in lines[index]:
            raise InvalidCaptions(
                f"Line {index + 1}: a blank line must separate the WEBVTT line from the first cue."
            )
        index += 1
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        start = index
        block: list[str] = []
        while index < len(lines) and lines[index].strip():
            block.append(lines[index])
            index += 1
        head = block[0]
        if head.startswith(("NOTE", "STYLE", "REGION")) and "-->" not in head:
            continue
        if "-->" not in head and _LOOKS_TIMED.match(head):
            raise InvalidCaptions(
                f"Line {start + 1}: the cue timing “{head[:60]}” is not valid WebVTT "
                "(write mm:ss.ttt --> mm:ss.ttt)."
            )
        timing_at = 0 if "-->" in head else 1
        if timing_at >= len(block) or "-->" not in block[timing_at]:
            raise InvalidCaptions(
                f"Line {start + 1 + timing_at}: expected a cue timing such as "
                f"“00:01.000 --> 00:03.500”, found “{block[min(timing_at, len(block) - 1)][:60]}”."
            )
        line_number = start + 1 + timing_at
        match = _TIMING.match(block[timing_at].strip())
        if match is None:
            raise InvalidCaptions(
                f"Line {line_number}: the cue timing “{block[timing_at][:60]}” is not valid "
                "WebVTT (write hh:mm:ss.ttt or mm:ss.ttt --> mm:ss.ttt)."
            )
        begin = _seconds(*match.groups()[:4])
        end = _seconds(*match.groups()[4:])
        if end <= begin:
            raise InvalidCaptions(f"Line {line_number}: the cue ends before it starts.")
        text = cue_text("\n".join(block[timing_at + 1 :]))
        if not text:
            continue  # an empty cue shows nothing
        if len(text) > MAX_CUE_CHARS:
            raise InvalidCaptions(
                f"Line {line_number}: a caption may have at most {MAX_CUE_CHARS} characters.",
                code="caption_too_long",
            )
        cues.append(Cue(start_s=begin, end_s=end, text=text))
        if len(cues) > MAX_CUES:
            raise InvalidCaptions(
                f"At most {MAX_CUES} captions are accepted.", code="too_many_captions"
            )
    return cues


def cue_text(raw: str) -> str:
    """A cue's words: markup removed, character references resolved, control characters
    dropped, lines trimmed."""
    text = html.unescape(_TAG.sub("", raw))
    lines = [clean_text(line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line)


def check_cues(cues: Sequence[Cue], *, duration_s: float) -> list[Cue]:
    """The cues in time order, each inside the edited video; else `InvalidCaptions`."""
    if len(cues) > MAX_CUES:
        raise InvalidCaptions(
            f"At most {MAX_CUES} captions are accepted.", code="too_many_captions"
        )
    checked = []
    for number, cue in enumerate(sorted(cues, key=lambda c: (c.start_s, c.end_s)), start=1):
        if cue.end_s <= cue.start_s:
            raise InvalidCaptions(
                f"Caption {number} (“{cue.text[:30]}”) ends before it starts.",
                code="captions_out_of_range",
            )
        if cue.start_s >= duration_s:
            raise InvalidCaptions(
                f"Caption {number} (“{cue.text[:30]}”) starts at {cue.start_s:g} s, after the "
                f"edited video ends ({duration_s:.1f} s).",
                code="captions_out_of_range",
            )
        checked.append(
            Cue(start_s=cue.start_s, end_s=min(cue.end_s, duration_s), text=cue_text(cue.text))
        )
    return checked


def _timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def to_webvtt(cues: Sequence[Cue]) -> str:
    """The cues as a WebVTT file of plain-text cues ('&', '<' and '>' escaped). The timestamp
    map says cue times count from the start of the video, as HLS asks of WebVTT segments."""
    out = ["WEBVTT", "X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000", ""]
    for number, cue in enumerate(cues, start=1):
        text = html.escape(cue.text, quote=False)
        # above the player's caption and sound line, which cover the bottom fifth
        timing = f"{_timestamp(cue.start_s)} --> {_timestamp(cue.end_s)} line:72%"
        out += [str(number), timing, text, ""]
    return "\n".join(out)


def subtitles_playlist(duration_s: float) -> str:
    """An HLS media playlist whose one segment is the whole WebVTT file."""
    return "\n".join(
        [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{max(1, math.ceil(duration_s))}",
            "#EXT-X-MEDIA-SEQUENCE:0",
            "#EXT-X-PLAYLIST-TYPE:VOD",
            f"#EXTINF:{duration_s:.3f},",
            CAPTIONS_FILE,
            "#EXT-X-ENDLIST",
            "",
        ]
    )
