"""Text on video: the bundled open fonts, and each text overlay drawn once as a transparent
picture that the transcode's filter graph lays over the video (`overlay`, enabled only between
the text's start and end).

The FFmpeg inside PyAV's wheels is built without libfreetype, so its `drawtext` filter does not
exist here; Pillow (FreeType) draws the text instead, and everything else stays in the graph.
The picture is drawn at the size of the frame it goes on, so text is as sharp as the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from av.video.frame import VideoFrame
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from reelm.media.schemas import TextOverlay

FONT_DIR = Path(__file__).with_name("fonts")
# Sizes and positions are given on a 720 px wide frame (the top rendition) and scale with it.
REFERENCE_WIDTH = 720


@dataclass(frozen=True)
class Font:
    name: str  # what an edit names
    label: str  # what the Create page shows
    file: str  # in FONT_DIR
    licence: str  # in FONT_DIR


FONTS: dict[str, Font] = {
    f.name: f
    for f in (
        Font("classic", "Classic", "DejaVuSans-Bold.ttf", "LICENSE-DejaVu.txt"),
        Font("bold", "Bold", "Lato-Black.ttf", "LICENSE-Lato.txt"),
        Font("serif", "Serif", "LiberationSerif-Bold.ttf", "LICENSE-Liberation.txt"),
        Font("typewriter", "Typewriter", "LiberationMono-Bold.ttf", "LICENSE-Liberation.txt"),
    )
}


@cache
def _font(name: str, size_px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / FONTS[name].file), size_px)


def outline_colour(colour: str) -> tuple[int, int, int, int]:
    """A dark outline around light text and a light one around dark text, so it reads on any
    picture (the Create page's preview uses the same rule)."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    light = 0.2126 * r + 0.7152 * g + 0.0722 * b > 140
    return (0, 0, 0, 200) if light else (255, 255, 255, 200)


@dataclass(frozen=True)
class DrawnText:
    """One overlay drawn: an RGBA picture, where its top left goes, and when it shows."""

    frame: VideoFrame
    x: int
    y: int
    start_s: float
    end_s: float


def draw_text(overlay: TextOverlay, *, width: int, height: int, end_s: float) -> DrawnText:
    """Draw `overlay` for a `width`x`height` frame: centred on its (x, y), kept inside the frame.

    `end_s` is where an overlay without an end stops: the end of the video.
    """
    scale = width / REFERENCE_WIDTH
    size_px = max(6, round(overlay.size * scale))
    font = _font(overlay.font, size_px)
    stroke = max(1, round(size_px / 14))
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    left, top, right, bottom = probe.multiline_textbbox(
        (0, 0), overlay.text, font=font, stroke_width=stroke, align="center"
    )
    w, h = max(2, math.ceil(right - left) + 2), max(2, math.ceil(bottom - top) + 2)
    picture = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    ImageDraw.Draw(picture).multiline_text(
        (1 - left, 1 - top),
        overlay.text,
        font=font,
        fill=overlay.color,
        stroke_width=stroke,
        stroke_fill=outline_colour(overlay.color),
        align="center",
    )
    x = _place(overlay.x * width - w / 2, w, width)
    y = _place(overlay.y * height - h / 2, h, height)
    frame = VideoFrame.from_ndarray(np.asarray(picture), format="rgba")
    return DrawnText(
        frame,
        x,
        y,
        overlay.start_s,
        end_s if overlay.end_s is None else min(overlay.end_s, end_s),
    )


def _place(start: float, size: int, room: int) -> int:
    """An even offset (chroma is subsampled by 2) keeping the picture inside the frame if it fits."""
    if size < room:
        start = min(max(0.0, start), room - size)
    return int(start) // 2 * 2


def enable_expression(start_s: float, end_s: float) -> str:
    """`overlay`'s timeline expression: on from start (inclusive) to end (exclusive), in the
    output's seconds."""
    return f"gte(t,{start_s:.3f})*lt(t,{end_s:.3f})"
