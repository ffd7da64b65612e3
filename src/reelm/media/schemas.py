"""The edit a creator makes to an upload: trim, speed, look, sound, framing and cover.
An `EditSpec` is valid on its own (pydantic); `check_against` then checks it fits the probed video."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import delete
from sqlalchemy.orm import Session

from reelm.errors import InvalidInput
from reelm.media.captions import MAX_WEBVTT_BYTES
from reelm.media.filters import FILTERS
from reelm.media.models import PublishedVideo, VideoTag
from reelm.media.overlays import FONTS
from reelm.media.probe import ProbeResult
from reelm.residency.egress import PublicRecord, public_schema
from reelm.sounds.schemas import VideoSound, record_song_use
from reelm.text import UserText, clean_text

MIN_OUTPUT_S = 1.0
# Probed durations are rounded by containers; a trim ending a hair past the end is the end.
_DURATION_TOLERANCE_S = 0.05

_OUR_CODES = frozenset(
    {
        "unknown_filter",
        "invalid_trim",
        "too_short",
        "cover_out_of_range",
        "unknown_font",
        "too_many_texts",
        "text_too_long",
        "text_empty",
        "text_out_of_range",
        "invalid_colour",
    }
)
MAX_TEXTS = 5
MAX_TEXT_CHARS = 100
MAX_TEXT_LINES = 3

Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class OriginalSound(_Strict):
    """Keep the video's own sound."""

    kind: Literal["original"] = "original"


class NoSound(_Strict):
    """A silent video."""

    kind: Literal["none"] = "none"


class SongSound(_Strict):
    """A catalog song from `offset_s` into it; `mix` is the song's share against the original.

    mix=100 is the song alone, 0 the original sound alone (the song then only credits).
    """

    kind: Literal["song"] = "song"
    song_id: str = Field(min_length=1, max_length=100)
    offset_s: Seconds = 0.0
    mix: int = Field(default=100, ge=0, le=100)


Soundtrack = Annotated[OriginalSound | NoSound | SongSound, Field(discriminator="kind")]

_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


class TextOverlay(_Strict):
    """Text shown over the video from `start_s` to `end_s` (seconds of the edited video; no
    end: to the end), centred on (x, y), fractions of the frame's width and height. `size` is
    the font's size in pixels on the 720 px wide frame, and scales with the rendition."""

    text: str
    font: str = "classic"
    color: str = "#ffffff"
    x: float = Field(default=0.5, ge=0, le=1)
    y: float = Field(default=0.5, ge=0, le=1)
    size: int = Field(default=56, ge=16, le=160)
    start_s: Seconds = 0.0
    end_s: Seconds | None = None

    @field_validator("text")
    @classmethod
    def _readable(cls, text: str) -> str:
        text = clean_text(text).strip()
        if not text:
            raise PydanticCustomError("text_empty", "A text overlay needs some text")
        if len(text) > MAX_TEXT_CHARS:
            raise PydanticCustomError(
                "text_too_long",
                "A text overlay may have at most {most} characters; this one has {count}",
                {"most": MAX_TEXT_CHARS, "count": len(text)},
            )
        if text.count("\n") >= MAX_TEXT_LINES:
            raise PydanticCustomError(
                "text_too_long",
                "A text overlay may have at most {most} lines",
                {"most": MAX_TEXT_LINES},
            )
        return text

    @field_validator("font")
    @classmethod
    def _known_font(cls, name: str) -> str:
        if name not in FONTS:
            raise PydanticCustomError(
                "unknown_font",
                "Unknown font '{name}'; choose one of: {names}",
                {"name": name, "names": ", ".join(FONTS)},
            )
        return name

    @field_validator("color")
    @classmethod
    def _colour(cls, colour: str) -> str:
        if not _COLOUR.match(colour):
            raise PydanticCustomError(
                "invalid_colour",
                "A text colour is written #rrggbb, not '{colour}'",
                {"colour": colour[:20]},
            )
        return colour.lower()


class EditSpec(_Strict):
    """Times are in seconds of the uploaded video; `speed` applies after the trim.

    `fit` puts a video that is not 9:16 inside the vertical frame with bars, `fill` crops it
    to fill the frame. `cover_time_s` (default: the trim's first frame) picks the poster.
    """

    trim_start_s: Seconds = 0.0
    trim_end_s: Seconds
    speed: float = Field(default=1.0, ge=0.5, le=3.0)
    filter: str | None = None
    filter_intensity: int = Field(default=100, ge=0, le=100)
    soundtrack: Soundtrack = Field(default_factory=OriginalSound)
    fit: Literal["fit", "fill"] = "fit"
    cover_time_s: Seconds | None = None
    texts: list[TextOverlay] = Field(default_factory=list)

    @field_validator("texts", mode="before")
    @classmethod
    def _few_texts(cls, texts: Any) -> Any:
        if isinstance(texts, list) and len(texts) > MAX_TEXTS:
            raise PydanticCustomError(
                "too_many_texts",
                "A video may have at most {most} text overlays; this edit has {count}",
                {"most": MAX_TEXTS, "count": len(texts)},
            )
        return texts

    @field_validator("filter")
    @classmethod
    def _known_filter(cls, name: str | None) -> str | None:
        if name is not None and name not in FILTERS:
            raise PydanticCustomError(
                "unknown_filter",
                "Unknown filter '{name}'; choose one of: {names}",
                {"name": name, "names": ", ".join(FILTERS)},
            )
        return name

    @model_validator(mode="after")
    def _consistent(self) -> EditSpec:
        problem = self._problem(duration_s=None)
        if problem is not None:
            # The error type carries our stable code through pydantic to `parse` and the API.
            raise PydanticCustomError(problem[0], problem[1].replace("{", "{{").replace("}", "}}"))
        return self

    @property
    def output_duration_s(self) -> float:
        return (self.trim_end_s - self.trim_start_s) / self.speed

    @property
    def cover_at_s(self) -> float:
        return self.trim_start_s if self.cover_time_s is None else self.cover_time_s

    def _problem(self, *, duration_s: float | None) -> tuple[str, str] | None:
        """The first thing wrong with the times, as (code, message), or None."""
        if self.trim_start_s >= self.trim_end_s:
            return "invalid_trim", (
                f"The trim must start before it ends (start {self.trim_start_s:g} s, "
                f"end {self.trim_end_s:g} s)."
            )
        if self.output_duration_s < MIN_OUTPUT_S:
            return "too_short", (
                f"The edited video would last {self.output_duration_s:.2f} s; it must last at "
                f"least {MIN_OUTPUT_S:g} s. Keep more of the clip or slow it down."
            )
        if duration_s is not None and self.trim_end_s > duration_s + _DURATION_TOLERANCE_S:
            return "trim_out_of_range", (
                f"The trim ends at {self.trim_end_s:g} s but the video is only "
                f"{duration_s:.2f} s long."
            )
        if not self.trim_start_s <= self.cover_at_s <= self.trim_end_s:
            return "cover_out_of_range", (
                f"The cover must be picked inside the kept part of the video "
                f"({self.trim_start_s:g}-{self.trim_end_s:g} s), not at {self.cover_at_s:g} s."
            )
        length = self.output_duration_s
        for number, text in enumerate(self.texts, start=1):
            end = length if text.end_s is None else text.end_s
            if text.start_s >= end or end > length + _DURATION_TOLERANCE_S:
                return "text_out_of_range", (
                    f"Text {number} (\u201c{text.text[:30]}\u201d) must show between 0 and "
                    f"{length:.1f} s of the edited video and end after it starts "
                    f"(it is set from {text.start_s:g} s to {end:g} s)."
                )
        return None

    def check_against(self, probe: ProbeResult) -> None:
        """Raise `InvalidInput` unless this edit fits the probed upload."""
        problem = self._problem(duration_s=probe.duration_s)
        if problem is not None:
            code, message = problem
            raise InvalidInput(message, code=code)

    @classmethod
    def parse(cls, data: Mapping[str, Any] | str | bytes) -> EditSpec:
        """Validate client input, turning pydantic's report into one `InvalidInput` to show."""
        try:
            if isinstance(data, str | bytes):
                return cls.model_validate_json(data)
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            code = first["type"] if first["type"] in _OUR_CODES else "invalid_edit"
            message = first["msg"].rstrip(".")
            raise InvalidInput(
                f"Invalid edit: {where + ': ' if where else ''}{message}.", code=code
            ) from None


# The Create API and the PUBLIC video record

Visibility = Literal["public", "followers", "private"]
MAX_CAPTION = 2200


class VideoCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    upload_id: str = Field(max_length=32)
    edit: dict[str, Any]
    caption: UserText = Field(default="", max_length=MAX_CAPTION)
    # Closed captions as a WebVTT file's text (uploaded, or typed on the timeline by the page).
    captions_vtt: str = Field(default="", max_length=MAX_WEBVTT_BYTES)
    visibility: Visibility = "public"
    allow_comments: bool = True
    allow_sound_reuse: bool = True
    # Publishing a draft: it is gone in the same commit that records the video.
    draft_id: str | None = Field(default=None, max_length=32)

    def spec(self) -> EditSpec:
        return EditSpec.parse(self.edit)


class UploadRead(BaseModel):
    id: str
    state: str
    filename: str
    size: int
    received: int
    error: dict[str, str] | None = None
    probe: dict[str, Any] | None = None


class VideoRead(BaseModel):
    id: str
    state: str
    progress: int
    failure: str | None
    caption: str
    hashtags: list[str]
    mentions: list[str]
    visibility: str
    allow_comments: bool
    allow_sound_reuse: bool
    has_captions: bool = False
    created_at: datetime
    published_at: datetime | None
    urls: dict[str, str] | None = None


def _write_video(catalog: Session, record: PublicVideoRecord) -> None:
    fields = record.model_dump(exclude={"hashtags", "mentions"})
    row = catalog.get(PublishedVideo, record.id)
    if row is None:
        catalog.add(PublishedVideo(**fields))
    else:
        for k, v in fields.items():
            if not k.endswith("_count"):
                setattr(row, k, v)
    catalog.flush()
    catalog.execute(delete(VideoTag).where(VideoTag.video_id == record.id))
    for kind, values in (("hashtag", record.hashtags), ("mention", record.mentions)):
        for v in dict.fromkeys(values):
            catalog.add(VideoTag(video_id=record.id, kind=kind, value=v))
    catalog.flush()
    if record.sound_id is not None:
        record_song_use(catalog, record.sound_id, video_id=record.id, at=record.published_at)


def _video_lane(record: PublicVideoRecord | VideoWithdrawal) -> str:
    return f"video:{record.id}"


@public_schema(_write_video, lane=_video_lane)
class PublicVideoRecord(PublicRecord):
    """A published video's public fields: exactly these leave the creator's region."""

    id: str
    creator_id: str
    creator_handle: str
    region: str
    caption: str
    captions_vtt: str = ""  # closed captions, WebVTT: part of what the video shows
    hashtags: list[str]
    mentions: list[str]
    visibility: Literal["public", "followers"]
    allow_comments: bool
    allow_sound_reuse: bool
    sound_id: str | None
    duration_s: float
    width: int
    height: int
    published_at: datetime
    # set from the video's moderation state in its region: never shown to viewers under 18
    age_restricted: bool = False
    like_count: int = 0
    comment_count: int = 0
    share_count: int = 0
    view_count: int = 0


def _withdraw_video(catalog: Session, record: VideoWithdrawal) -> None:
    row = catalog.get(PublishedVideo, record.id)
    if row is not None:
        catalog.delete(row)
        catalog.flush()


@public_schema(_withdraw_video, lane=_video_lane)
class VideoWithdrawal(PublicRecord):
    """A published video leaves the catalog (its creator made it private): its id only."""

    id: str


class PublicVideoRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    creator_handle: str
    caption: str
    visibility: str
    allow_comments: bool
    sound_id: str | None
    duration_s: float
    width: int
    height: int
    published_at: datetime
    has_captions: bool = False
    like_count: int
    comment_count: int
    share_count: int
    view_count: int
    urls: dict[str, str] = Field(default_factory=dict)
    # The sound as the viewer may hear it; with `muted_notice` set the player mutes the video.
    sound: VideoSound | None = None
    muted_notice: str | None = None


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
