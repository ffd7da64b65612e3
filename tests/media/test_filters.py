"""The looks registry: every look runs in PyAV's own FFmpeg at every intensity; previews work."""

from __future__ import annotations

import io
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest
from av.filter import Graph
from av.video.frame import VideoFrame
from av.video.plane import VideoPlane

from reelm.errors import InvalidInput
from reelm.media.filters import FILTERS, get_filter, link_fragment, render_preview, upright
from reelm.media.synth import make_test_clip

REQUIRED = {
    *("grayscale", "sepia", "vintage", "vivid", "warm", "cool", "fade", "noir", "vignette"),
    *("film_grain", "vhs", "teal_orange", "high_contrast", "pastel", "mirror", "sharpen"),
    *("glow", "soft_focus", "cyberpunk", "golden_hour"),
}
WIDTH, HEIGHT = 96, 160


@pytest.fixture(scope="module")
def pattern() -> VideoFrame:
    """A frame with colour, edges and flat areas, so every look has something to change."""
    graph = Graph()
    source = graph.add("testsrc2", f"size={WIDTH}x{HEIGHT}:rate=30")
    pixel_format = graph.add("format", "yuv420p")
    sink = graph.add("buffersink")
    graph.link_nodes(source, pixel_format, sink)
    graph.configure()
    frame = graph.vpull()
    return frame


def run(fragment: str, frame: VideoFrame) -> VideoFrame:
    graph = Graph()
    source = graph.add_buffer(
        width=frame.width, height=frame.height, format=frame.format, time_base=Fraction(1, 30)
    )
    last = link_fragment(graph, source, fragment)
    sink = graph.add("buffersink")
    last.link_to(sink)
    graph.configure()
    frame.pts = 0
    frame.time_base = Fraction(1, 30)
    graph.push(frame)
    return graph.vpull()


def pixels(plane: VideoPlane) -> bytes:
    """The plane's samples without the padding at the end of each line."""
    data = bytes(plane)
    return b"".join(
        data[row * plane.line_size : row * plane.line_size + plane.width]
        for row in range(plane.height)
    )


def planes(frame: VideoFrame) -> list[bytes]:
    return [pixels(plane) for plane in frame.reformat(format="yuv420p").planes]


def test_registry_has_the_required_looks_and_more() -> None:
    assert set(FILTERS) >= REQUIRED
    assert len(FILTERS) >= 20
    for name, look in FILTERS.items():
        assert look.name == name
        assert look.label
        assert look.description
        assert name.isidentifier()
        assert name.islower()


@pytest.mark.parametrize("name", sorted(FILTERS))
@pytest.mark.parametrize("intensity", [0, 1, 50, 100])
def test_every_look_runs_in_pyav_at_every_intensity(
    name: str, intensity: int, pattern: VideoFrame
) -> None:
    out = run(get_filter(name).graph(intensity), pattern)
    assert (out.width, out.height) == (WIDTH, HEIGHT)


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_every_look_is_identity_at_zero_and_visible_at_full(name: str, pattern: VideoFrame) -> None:
    look = get_filter(name)
    assert look.graph(0) == "null"
    assert planes(run(look.graph(0), pattern)) == planes(pattern)
    assert planes(run(look.graph(100), pattern)) != planes(pattern)


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_intensity_moves_the_look_gradually(name: str, pattern: VideoFrame) -> None:
    look = get_filter(name)
    assert look.graph(30) != look.graph(100)


def test_looks_chain_inside_a_larger_graph(pattern: VideoFrame) -> None:
    # Two looks with internal labels, a rotation and a scale in one graph: labels must not clash.
    fragment = ",".join(["scale=iw/2:ih/2", get_filter("glow").graph(60)])
    graph = Graph()
    source = graph.add_buffer(
        width=WIDTH, height=HEIGHT, format=pattern.format, time_base=Fraction(1, 30)
    )
    step = link_fragment(graph, source, upright(90))
    step = link_fragment(graph, step, fragment)
    step = link_fragment(graph, step, get_filter("mirror").graph(100))
    step = link_fragment(graph, step, get_filter("soft_focus").graph(40))
    sink = graph.add("buffersink")
    step.link_to(sink)
    graph.configure()
    pattern.pts = 0
    pattern.time_base = Fraction(1, 30)
    graph.push(pattern)
    out = graph.vpull()
    assert (out.width, out.height) == (80, 48)  # scaled after the quarter turn


@pytest.mark.parametrize("intensity", [-1, 101, 50.5, True, "50"])
def test_intensity_outside_0_to_100_is_refused(intensity: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        get_filter("sepia").graph(intensity)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_intensity"


def test_unknown_filter_lists_the_valid_names() -> None:
    with pytest.raises(InvalidInput) as caught:
        get_filter("instagram_magic")
    assert caught.value.code == "unknown_filter"
    assert "instagram_magic" in caught.value.message
    for name in ("sepia", "vhs", "golden_hour"):
        assert name in caught.value.message


# ---- previews ----------------------------------------------------------------------------------


def decode_jpeg(data: bytes) -> VideoFrame:
    assert data.startswith(b"\xff\xd8")
    assert data.endswith(b"\xff\xd9")
    with av.open(io.BytesIO(data), "r", format="mjpeg") as container:
        return next(container.decode(video=0))


def test_preview_is_a_jpeg_fitted_to_max_side(small_clip: Path) -> None:
    frame = decode_jpeg(render_preview(small_clip, filter_name="sepia", intensity=80, at_s=1.0))
    # 180x320 is smaller than 720: never scaled up.
    assert (frame.width, frame.height) == (180, 320)
    small = decode_jpeg(
        render_preview(small_clip, filter_name=None, intensity=0, at_s=0.5, max_side=160)
    )
    assert (small.width, small.height) == (90, 160)


def test_preview_of_a_rotated_clip_is_upright(tmp_path: Path) -> None:
    clip = make_test_clip(
        tmp_path / "rotated.mp4", seconds=1.0, width=160, height=96, rotation=90, with_audio=False
    )
    frame = decode_jpeg(render_preview(clip, filter_name="vivid", intensity=50, at_s=0.2))
    assert (frame.width, frame.height) == (96, 160)


def test_preview_applies_the_look(small_clip: Path) -> None:
    plain = render_preview(small_clip, filter_name=None, intensity=100, at_s=1.0)
    gray = render_preview(small_clip, filter_name="grayscale", intensity=100, at_s=1.0)
    chroma = pixels(decode_jpeg(gray).planes[1])
    assert plain != gray
    # Grayscale: the chroma plane is flat mid-grey (JPEG rounding aside).
    assert all(abs(value - 128) <= 2 for value in chroma)


def test_preview_past_the_end_shows_the_last_picture(small_clip: Path) -> None:
    decode_jpeg(render_preview(small_clip, filter_name="noir", intensity=100, at_s=60.0))


def test_preview_refuses_bad_arguments(small_clip: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        render_preview(small_clip, filter_name="nope", intensity=50, at_s=0)
    assert caught.value.code == "unknown_filter"
    with pytest.raises(InvalidInput) as caught:
        render_preview(small_clip, filter_name="sepia", intensity=50, at_s=-1)
    assert caught.value.code == "invalid_time"
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(InvalidInput) as caught:
        render_preview(text, filter_name="sepia", intensity=50, at_s=0)
    assert caught.value.code == "not_a_video"


@pytest.mark.parametrize("name", ["vignette", "glow", "golden_hour", "vhs"])
def test_preview_of_a_720p_frame_is_fast(clip_720p: Path, name: str) -> None:
    # Target is 300 ms; measured ~25-110 ms on 2 cores. The bound leaves room for a busy CI.
    render_preview(clip_720p, filter_name=name, intensity=100, at_s=0.0)  # warm up
    started = time.perf_counter()
    data = render_preview(clip_720p, filter_name=name, intensity=100, at_s=1.9)
    elapsed = time.perf_counter() - started
    frame = decode_jpeg(data)
    assert (frame.width, frame.height) == (720, 406)
    assert elapsed < 1.0, f"{name}: {elapsed * 1000:.0f} ms"
