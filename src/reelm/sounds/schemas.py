"""Input and output schemas of the song catalog."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from reelm.errors import InvalidInput
from reelm.residency.jurisdictions import is_country
from reelm.sounds.models import WORLDWIDE, Song
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
    """A catalog song as the API shows it; `audio_url` serves the .m4a with Range support."""

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

    @classmethod
    def of(cls, song: Song) -> SongRead:
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
        )


class SongPage(BaseModel):
    """One page of songs; pass `next_cursor` back as `cursor` for the next (null at the end)."""

    items: list[SongRead]
    next_cursor: str | None = None
