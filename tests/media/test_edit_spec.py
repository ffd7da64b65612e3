"""EditSpec: what a creator may ask for, and that it fits the video they uploaded."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reelm.errors import InvalidInput
from reelm.media.probe import ProbeResult
from reelm.media.schemas import EditSpec, NoSound, OriginalSound, SongSound

PROBE = ProbeResult(
    container="mp4",
    duration_s=12.5,
    width=1080,
    height=1920,
    rotation=0,
    fps=30.0,
    has_audio=True,
    video_codec="h264",
    audio_codec="aac",
    size_bytes=10_000_000,
)


def invalid(data: dict[str, Any] | str) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        EditSpec.parse(data)
    assert caught.value.status == 422
    return caught.value


def test_minimal_edit_keeps_everything_as_uploaded() -> None:
    spec = EditSpec.parse({"trim_end_s": 12.5})
    assert spec.trim_start_s == 0
    assert spec.speed == 1
    assert spec.filter is None
    assert spec.soundtrack == OriginalSound()
    assert spec.fit == "fit"
    assert spec.cover_at_s == 0
    assert spec.output_duration_s == 12.5
    spec.check_against(PROBE)


def test_full_edit_round_trips_through_json() -> None:
    spec = EditSpec(
        trim_start_s=1.5,
        trim_end_s=9.0,
        speed=1.5,
        filter="golden_hour",
        filter_intensity=70,
        soundtrack=SongSound(song_id="song_42", offset_s=12.0, mix=80),
        fit="fill",
        cover_time_s=4.0,
    )
    assert EditSpec.parse(spec.model_dump_json()) == spec
    assert EditSpec.parse(spec.model_dump()) == spec
    assert spec.output_duration_s == pytest.approx(5.0)
    spec.check_against(PROBE)


@pytest.mark.parametrize(
    ("soundtrack", "expected"),
    [
        ({"kind": "original"}, OriginalSound()),
        ({"kind": "none"}, NoSound()),
        ({"kind": "song", "song_id": "s1"}, SongSound(song_id="s1", offset_s=0, mix=100)),
        (
            {"kind": "song", "song_id": "s1", "offset_s": 3.5, "mix": 0},
            SongSound(song_id="s1", offset_s=3.5, mix=0),
        ),
    ],
)
def test_soundtrack_is_chosen_by_kind(soundtrack: dict[str, Any], expected: object) -> None:
    assert EditSpec.parse({"trim_end_s": 5, "soundtrack": soundtrack}).soundtrack == expected


@pytest.mark.parametrize(
    "soundtrack",
    [
        {"kind": "karaoke"},
        {},
        {"kind": "song"},
        {"kind": "song", "song_id": ""},
        {"kind": "song", "song_id": "s1", "offset_s": -1},
        {"kind": "song", "song_id": "s1", "mix": 101},
        {"kind": "song", "song_id": "s1", "mix": -1},
        {"kind": "none", "song_id": "s1"},
        {"kind": "original", "volume": 3},
    ],
)
def test_malformed_soundtrack_is_refused(soundtrack: dict[str, Any]) -> None:
    assert invalid({"trim_end_s": 5, "soundtrack": soundtrack}).code == "invalid_edit"


def test_unknown_fields_are_refused() -> None:
    error = invalid({"trim_end_s": 5, "brightness": 3})
    assert error.code == "invalid_edit"
    assert "brightness" in error.message


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"trim_start_s": 3, "trim_end_s": 3}, "invalid_trim"),
        ({"trim_start_s": 4, "trim_end_s": 2}, "invalid_trim"),
        ({"trim_start_s": -1, "trim_end_s": 2}, "invalid_edit"),
        ({"trim_start_s": 2, "trim_end_s": 2.9}, "too_short"),
        # 1.5 s of video played at 2x lasts 0.75 s.
        ({"trim_start_s": 0, "trim_end_s": 1.5, "speed": 2}, "too_short"),
        ({"trim_end_s": 5, "speed": 0.4}, "invalid_edit"),
        ({"trim_end_s": 5, "speed": 3.1}, "invalid_edit"),
        ({"trim_end_s": float("nan")}, "invalid_edit"),
        ({"trim_end_s": float("inf")}, "invalid_edit"),
        ({"trim_start_s": 0}, "invalid_edit"),
        ({"trim_end_s": 5, "filter": "instagram_magic"}, "unknown_filter"),
        ({"trim_end_s": 5, "filter": "sepia", "filter_intensity": 101}, "invalid_edit"),
        ({"trim_end_s": 5, "filter_intensity": -1}, "invalid_edit"),
        ({"trim_end_s": 5, "fit": "stretch"}, "invalid_edit"),
        ({"trim_end_s": 5, "cover_time_s": -0.1}, "invalid_edit"),
        ({"trim_start_s": 1, "trim_end_s": 5, "cover_time_s": 0.5}, "cover_out_of_range"),
        ({"trim_start_s": 1, "trim_end_s": 5, "cover_time_s": 5.5}, "cover_out_of_range"),
    ],
)
def test_inconsistent_edit_is_refused_with_a_stable_code(data: dict[str, Any], code: str) -> None:
    error = invalid(data)
    assert error.code == code, error.message


def test_slow_motion_can_make_a_short_trim_long_enough() -> None:
    spec = EditSpec.parse({"trim_start_s": 2, "trim_end_s": 2.6, "speed": 0.5})
    assert spec.output_duration_s == pytest.approx(1.2)


def test_unknown_filter_message_lists_the_looks() -> None:
    error = invalid({"trim_end_s": 5, "filter": "instagram_magic"})
    assert "instagram_magic" in error.message
    assert "sepia" in error.message


def test_malformed_json_is_refused() -> None:
    assert invalid('{"trim_end_s": ').code == "invalid_edit"


def test_constructor_raises_pydantic_errors_with_our_codes() -> None:
    # The API layer validates bodies with pydantic directly; the code survives as the type.
    with pytest.raises(ValidationError) as caught:
        EditSpec(trim_start_s=1, trim_end_s=5, cover_time_s=9)
    assert caught.value.errors()[0]["type"] == "cover_out_of_range"


def test_spec_is_immutable() -> None:
    spec = EditSpec(trim_end_s=5)
    with pytest.raises(ValidationError):
        spec.speed = 2  # type: ignore[misc]


# ---- against the probed upload ------------------------------------------------------------------


def test_trim_past_the_end_of_the_video_is_refused() -> None:
    spec = EditSpec(trim_start_s=10, trim_end_s=13)
    with pytest.raises(InvalidInput) as caught:
        spec.check_against(PROBE)
    assert caught.value.code == "trim_out_of_range"
    assert "12.50" in caught.value.message


def test_trim_start_past_the_end_of_the_video_is_refused() -> None:
    spec = EditSpec(trim_start_s=20, trim_end_s=25)
    with pytest.raises(InvalidInput) as caught:
        spec.check_against(PROBE)
    assert caught.value.code == "trim_out_of_range"


def test_trim_ending_a_rounding_hair_past_the_end_is_accepted() -> None:
    EditSpec(trim_start_s=10, trim_end_s=12.52).check_against(PROBE)


def test_cover_inside_the_kept_part_is_accepted() -> None:
    EditSpec(trim_start_s=2, trim_end_s=8, cover_time_s=8).check_against(PROBE)
    EditSpec(trim_start_s=2, trim_end_s=8, cover_time_s=2).check_against(PROBE)


def test_cover_outside_the_kept_part_is_refused_against_the_probe_too() -> None:
    # A spec built without validation (e.g. loaded from storage) is still checked.
    spec = EditSpec.model_construct(
        trim_start_s=2.0,
        trim_end_s=8.0,
        speed=1.0,
        filter=None,
        filter_intensity=100,
        soundtrack=OriginalSound(),
        fit="fit",
        cover_time_s=9.0,
    )
    with pytest.raises(InvalidInput) as caught:
        spec.check_against(PROBE)
    assert caught.value.code == "cover_out_of_range"
