"""Text on video: each overlay is drawn by the filter graph into every rendition exactly while
it shows, in its font, colour and place; bad overlays are refused with a code to act on."""

from __future__ import annotations

import av
import pytest
from av.video.frame import VideoFrame

from reelm.errors import InvalidInput
from reelm.media.overlays import FONT_DIR, FONTS
from reelm.media.schemas import EditSpec
from reelm.media.synth import make_test_clip
from reelm.media.transcode import FPS, Rendition, transcode

TOP = Rendition("top", 360, 640, crf=28, maxrate_kbps=800)
LOW = Rendition("low", 180, 320, crf=30, maxrate_kbps=400)


def red_share(frame: VideoFrame, rows: slice, columns: slice) -> float:
    """The share of clearly red pixels in a box of the frame."""
    rgb = frame.to_ndarray(format="rgb24")[rows, columns].astype(int)
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)
    return float(red.mean())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[VideoFrame], list[VideoFrame]]:
    """A dark 2 s clip with a red "HELLO" near the top from 0.5 to 1.5 s and a yellow line at
    the bottom for the whole video; the decoded pictures of the MP4 and of the low rung."""
    folder = tmp_path_factory.mktemp("texts")
    clip = make_test_clip(
        folder / "dark.mp4", seconds=2.0, width=180, height=320, pattern="color=c=0x203040"
    )
    spec = EditSpec.parse(
        {
            "trim_end_s": 2.0,
            "texts": [
                {
                    "text": "HELLO",
                    "font": "bold",
                    "color": "#ff0000",
                    "x": 0.5,
                    "y": 0.2,
                    "size": 120,
                    "start_s": 0.5,
                    "end_s": 1.5,
                },
                {"text": "all along", "font": "serif", "color": "#ffff00", "y": 0.9},
            ],
        }
    )
    result = transcode(clip, spec, folder / "out", ladder=(TOP, LOW))
    with av.open(str(folder / "out" / result.mp4)) as container:
        top = list(container.decode(container.streams.video[0]))
    low_playlist = folder / "out" / result.renditions[1].playlist
    with av.open(str(low_playlist), options={"protocol_whitelist": "file"}) as container:
        low = list(container.decode(container.streams.video[0]))
    return top, low


def test_text_shows_exactly_between_its_start_and_end(
    rendered: tuple[list[VideoFrame], list[VideoFrame]],
) -> None:
    top, _ = rendered
    assert len(top) == 2 * FPS
    band = (slice(80, 180), slice(40, 320))  # around y = 0.2 of 640, the middle of 360
    shown = [red_share(frame, *band) > 0.08 for frame in top]
    first, last = shown.index(True), len(shown) - 1 - shown[::-1].index(True)
    assert first == round(0.5 * FPS)
    assert last == round(1.5 * FPS) - 1
    assert all(shown[first : last + 1])
    # The picture is untouched elsewhere: the clip's own dark colour.
    assert red_share(top[5], *band) == 0


def test_text_without_an_end_lasts_the_whole_video_in_every_rung(
    rendered: tuple[list[VideoFrame], list[VideoFrame]],
) -> None:
    top, low = rendered
    for frames, height in ((top, 640), (low, 320)):
        for frame in (frames[0], frames[-1]):
            rgb = frame.to_ndarray(format="rgb24")[int(height * 0.85) : int(height * 0.95)]
            yellow = (rgb[..., 0] > 170) & (rgb[..., 1] > 170) & (rgb[..., 2] < 110)
            assert yellow.mean() > 0.01
    # The HELLO is in the lower rung too, scaled with it.
    assert red_share(low[30], slice(40, 90), slice(20, 160)) > 0.08
    assert red_share(low[5], slice(40, 90), slice(20, 160)) == 0


def test_every_font_is_bundled_with_its_licence() -> None:
    for font in FONTS.values():
        assert (FONT_DIR / font.file).stat().st_size > 10_000
        assert "License" in (FONT_DIR / font.licence).read_text()


@pytest.mark.parametrize(
    ("texts", "code"),
    [
        ([{"text": "hi"}] * 6, "too_many_texts"),
        ([{"text": "x" * 101}], "text_too_long"),
        ([{"text": "a\nb\nc\nd"}], "text_too_long"),
        ([{"text": "   "}], "text_empty"),
        ([{"text": "hi", "font": "comic-sans"}], "unknown_font"),
        ([{"text": "hi", "color": "red"}], "invalid_colour"),
        ([{"text": "hi", "start_s": 1.0, "end_s": 5.0}], "text_out_of_range"),
        ([{"text": "hi", "start_s": 4.5}], "text_out_of_range"),
        ([{"text": "hi", "start_s": 2.0, "end_s": 1.0}], "text_out_of_range"),
        ([{"text": "hi", "x": 1.5}], "invalid_edit"),
    ],
)
def test_bad_text_overlays_are_refused_with_a_clear_code(texts: list[object], code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        EditSpec.parse({"trim_start_s": 1, "trim_end_s": 5, "texts": texts})
    assert caught.value.code == code
    assert caught.value.message.startswith("Invalid edit: ")


def test_text_times_count_in_the_edited_video_after_trim_and_speed() -> None:
    # 4 s kept at 2x is 2 s of video: a text may end at 2 s, not at 3.
    EditSpec.parse(
        {"trim_start_s": 1, "trim_end_s": 5, "speed": 2, "texts": [{"text": "ok", "end_s": 2}]}
    )
    with pytest.raises(InvalidInput) as caught:
        EditSpec.parse(
            {"trim_start_s": 1, "trim_end_s": 5, "speed": 2, "texts": [{"text": "no", "end_s": 3}]}
        )
    assert caught.value.code == "text_out_of_range"
    assert "2.0 s" in caught.value.message
