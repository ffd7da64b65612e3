"""Input and output schemas of the song catalog."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import update
from sqlalchemy.orm import Session

from reelm.db import utcnow
from reelm.errors import InvalidInput
from reelm.residency.egress import PublicRecord, public_schema
from reelm.residency.jurisdictions import is_country
from reelm.sounds.models import WORLDWIDE, Song, SongUse, search_key
from reelm.text import UserText


def normalise_territories(value: str | Sequence[str]) -> str:
    """`"*"`, `"us, ca"` or `["US", "CA"]` → the stored form: `"*"` or sorted codes `"CA,US"`."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    codes = sorted({p.strip().upper() for p in parts if p.strip()})
    if not codes:
        raise PydanticCustomError(
            "no_territories",
            "Name the territories the song is licensed in (ISO codes like US,CA) or * for "
            "worldwide.",
        )
    if WORLDWIDE in codes:
        if len(codes) > 1:
            raise PydanticCustomError(
                "invalid_territories",
                "Use * alone for worldwide, or a list of country codes, not both.",
            )
        return WORLDWIDE
    unknown = [c for c in codes if not is_country(c)]
    if unknown:
        raise PydanticCustomError(
            "unknown_territory",
            "Unknown territory {codes}: use ISO 3166-1 alpha-2 country codes like US, CA, or * "
            "for worldwide.",
            {"codes": ", ".join(unknown)},
        )
    return ",".join(codes)


class SongCreate(BaseModel):
    """What an operator gives when importing a song (the audio itself is a separate file)."""

    model_config = ConfigDict(extra="forbid")

    title: UserText = Field(min_length=1, max_length=200)
    artist: UserText = Field(min_length=1, max_length=200)
    genre: UserText = Field(default="", max_length=40)
    bpm: int | None = Field(default=None, ge=20, le=400)
    territories: str = WORLDWIDE

    @field_validator("title", "artist", "genre", mode="after")
    @classmethod
    def _strip(cls, value: str) -> str:
        return " ".join(value.split())

    @field_validator("title", "artist", mode="after")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value:
            raise PydanticCustomError("blank", "must not be blank")
        return value

    @field_validator("territories", mode="before")
    @classmethod
    def _territories(cls, value: Any) -> str:
        if not isinstance(value, str | list | tuple):
            raise PydanticCustomError("invalid_territories", "must be * or a list of codes")
        return normalise_territories(value)

    @classmethod
    def checked(cls, **fields: Any) -> SongCreate:
        """Validate, turning the first problem into an `InvalidInput` a person can act on."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise InvalidInput(f"{field}: {err['msg']}", code="invalid_song") from None


class SongRead(BaseModel):
    """A catalog song as the API shows it; `audio_url` and `preview_url` serve .m4a files with
    Range support, `cover_url` a square JPEG. `waveform` is the peak level (0..1) of each of 200
    equal slices; `uses_last_7_days` is set in the trending list."""

    id: str
    title: str
    artist: str
    genre: str
    bpm: int | None
    duration_s: float
    territories: list[str]
    worldwide: bool
    original_of_video: str | None
    sha256: str
    use_count: int
    created_at: datetime
    audio_url: str
    loudness_lufs: float | None = None
    preview_url: str | None = None
    preview_start_s: float | None = None
    cover_url: str | None = None
    waveform: list[float] = Field(default_factory=list)
    uses_last_7_days: int | None = None

    @classmethod
    def of(cls, song: Song, *, uses_last_7_days: int | None = None) -> SongRead:
        return cls(
            id=song.id,
            title=song.title,
            artist=song.artist,
            genre=song.genre,
            bpm=song.bpm,
            duration_s=round(song.duration_s, 3),
            territories=song.territory_list,
            worldwide=song.territories == WORLDWIDE,
            original_of_video=song.original_of_video,
            sha256=song.sha256,
            use_count=song.use_count,
            created_at=song.created_at,
            audio_url=f"/api/v1/sounds/{song.id}/audio",
            loudness_lufs=song.loudness_lufs,
            preview_url=(
                f"/api/v1/sounds/{song.id}/preview" if song.preview_start_s is not None else None
            ),
            preview_start_s=song.preview_start_s,
            cover_url=f"/api/v1/sounds/{song.id}/cover" if song.cover else None,
            waveform=song.peaks,
            uses_last_7_days=uses_last_7_days,
        )


class SongPage(BaseModel):
    """One page of songs; pass `next_cursor` back as `cursor` for the next (null at the end)."""

    items: list[SongRead]
    next_cursor: str | None = None


class VideoSound(BaseModel):
    """The sound under a published video, as one viewer may hear it.

    `licensed_here` is false where the song is not licensed for the viewer's jurisdiction (read
    in the viewer's own region), and for a viewer who is not signed in unless it is licensed
    worldwide: the player then mutes the video and shows the video's `muted_notice`.
    """

    id: str
    title: str
    artist: str
    cover_url: str | None
    original: bool
    licensed_here: bool


def original_sound_title(handle: str) -> str:
    return f"original sound - @{handle}"


def _write_original_sound(catalog: Session, record: PublicOriginalSound) -> None:
    if catalog.get(Song, record.id) is not None:
        return
    title = original_sound_title(record.creator_handle)
    catalog.add(
        Song(
            id=record.id,
            title=title,
            artist=record.creator_handle,
            search_key=search_key(title, record.creator_handle),
            genre="",
            duration_s=record.duration_s,
            territories=WORLDWIDE,
            original_of_video=record.video_id,
            sha256=record.sha256,
            size_bytes=record.size_bytes,
            use_count=1,
            loudness_lufs=record.loudness_lufs,
            preview_start_s=record.preview_start_s,
            cover=record.cover,
            waveform=json.dumps(record.waveform, separators=(",", ":")),
        )
    )
    catalog.flush()
    # The video the sound comes from is its first use.
    catalog.add(SongUse(video_id=record.video_id, song_id=record.id, used_at=record.published_at))
    catalog.flush()


@public_schema(_write_original_sound)
class PublicOriginalSound(PublicRecord):
    """An "original sound": the audio of a creator's public video, offered for reuse because
    the creator allowed it. Exactly these fields leave the creator's region; the audio file is
    copied into every region's blob store like any catalog song (it is public already)."""

    id: str
    video_id: str
    creator_handle: str
    duration_s: float
    sha256: str
    size_bytes: int
    loudness_lufs: float | None
    preview_start_s: float
    waveform: list[float]
    cover: Literal["video", "generated"]
    published_at: datetime


def record_song_use(
    session: Session, song_id: str, *, video_id: str, at: datetime | None = None
) -> bool:
    """A published video uses a song, counted once per video (the writer of a published video
    calls it in the catalog transaction; see sounds.service.do_record_song_use)."""
    if session.get(SongUse, video_id) is not None or session.get(Song, song_id) is None:
        return False
    session.add(SongUse(video_id=video_id, song_id=song_id, used_at=at or utcnow()))
    session.flush()
    session.execute(
        update(Song)
        .where(Song.id == song_id, Song.use_count + 1 >= 0)
        .values(use_count=Song.use_count + 1)
    )
    return True
