"""What an audio file says about itself: title, artist, genre, tempo and cover art (mutagen),
else what its file name says ("Artist - Title.mp3")."""

from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mutagen
from mutagen.flac import Picture

logger = logging.getLogger(__name__)

UNKNOWN_ARTIST = "Unknown artist"
_FRONT_COVER = 3  # the picture type of a front cover in ID3 and FLAC
_NAME_SPLIT = re.compile(r"\s+[-–—]\s+")
_LEADING_TRACK = re.compile(r"^\d{1,3}[\s._-]+(?=\D)")


@dataclass(frozen=True)
class SongTags:
    title: str | None = None
    artist: str | None = None
    genre: str | None = None
    bpm: int | None = None
    cover: bytes | None = None


def read_tags(path: Path) -> SongTags:
    """The file's tags, or none: a file whose tags mutagen cannot read is still a song (the
    audio itself is checked separately), so this never raises for a bad file."""
    try:
        easy = mutagen.File(path, easy=True)
        full = mutagen.File(path)
    except Exception as exc:  # mutagen raises many kinds on broken tags; they are optional
        logger.info("no readable tags in %s: %s", path.name, exc)
        return SongTags()
    tags: Any = getattr(easy, "tags", None)
    raw: Any = getattr(full, "tags", None)
    return SongTags(
        title=_text(tags, "title") or _id3_text(raw, "TIT2"),
        artist=_text(tags, "artist") or _id3_text(raw, "TPE1"),
        genre=_text(tags, "genre") or _id3_text(raw, "TCON"),
        bpm=_bpm(_text(tags, "bpm") or _text(tags, "tempo") or _id3_text(raw, "TBPM")),
        cover=_cover(full),
    )


def name_from_file(path: Path) -> tuple[str, str | None]:
    """(title, artist or None) from a file name: "Velvet Coupe - Neon Drift.mp3" gives both,
    "03 Neon_Drift.flac" just the title."""
    stem = " ".join(_LEADING_TRACK.sub("", path.stem).replace("_", " ").split())
    parts = _NAME_SPLIT.split(stem, maxsplit=1)
    if len(parts) == 2 and parts[0] and parts[1]:
        return parts[1], parts[0]
    return stem or path.stem, None


def _text(tags: Any, key: str) -> str | None:
    """The first non-blank value of an easy (or Vorbis comment) tag."""
    if tags is None:
        return None
    try:
        values = tags.get(key)
    except (KeyError, ValueError, TypeError):
        return None
    if isinstance(values, str):
        values = [values]
    for value in values or []:
        text = " ".join(str(value).split())
        if text:
            return text
    return None


def _id3_text(tags: Any, frame_id: str) -> str | None:
    """An ID3 text frame where easy tags do not reach (WAV and AIFF carry ID3 too)."""
    getall = getattr(tags, "getall", None)
    if getall is None:
        return None
    for frame in getall(frame_id):
        values = getattr(frame, "genres", None) if frame_id == "TCON" else None
        for value in values or getattr(frame, "text", []):
            text = " ".join(str(value).split())
            if text:
                return text
    return None


def _bpm(text: str | None) -> int | None:
    """ "120", "120.4" or "120 BPM" → 120; anything outside 20..400 is not a tempo."""
    match = re.match(r"\s*(\d{1,3}(?:[.,]\d+)?)", text or "")
    if match is None:
        return None
    bpm = round(float(match.group(1).replace(",", ".")))
    return bpm if 20 <= bpm <= 400 else None


def _cover(audio: Any) -> bytes | None:
    """The embedded front cover (else the first picture) of ID3, MP4, FLAC or Vorbis/Opus."""
    tags: Any = getattr(audio, "tags", None)
    pictures: list[tuple[int, bytes]] = []
    getall = getattr(tags, "getall", None)
    if getall is not None:  # ID3: APIC frames
        pictures += [(int(f.type), bytes(f.data)) for f in getall("APIC")]
    if tags is not None and hasattr(tags, "get"):
        try:
            covr = tags.get("covr")  # MP4
            blocks = tags.get("metadata_block_picture")  # Vorbis comments (Ogg, Opus)
        except (KeyError, ValueError, TypeError):
            covr = blocks = None
        if isinstance(covr, list):
            pictures += [(_FRONT_COVER, bytes(c)) for c in covr]
        for block in blocks if isinstance(blocks, list) else []:
            try:
                picture = Picture(base64.b64decode(block))  # type: ignore[no-untyped-call]
            except (binascii.Error, ValueError, mutagen.MutagenError):
                continue
            pictures.append((int(picture.type), bytes(picture.data)))
    pictures += [(int(p.type), bytes(p.data)) for p in getattr(audio, "pictures", [])]  # FLAC
    pictures = [p for p in pictures if p[1]]
    if not pictures:
        return None
    return next((d for t, d in pictures if t == _FRONT_COVER), pictures[0][1])
