"""The named looks a creator can put on a video, as FFmpeg filtergraph fragments, and previews.
Only filters in PyAV's bundled FFmpeg are used: it has no `eq`, so tone is set with `lutyuv`."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
from av.container import InputContainer
from av.filter import Graph
from av.filter.context import FilterContext
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from reelm.errors import InvalidInput
from reelm.media.probe import MediaLimits, display_rotation, open_local_video, pick_video_stream


def _n(x: float) -> str:
    """A number as FFmpeg reads it: short, no exponent, no negative zero."""
    text = f"{x:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _tone(contrast: float = 1.0, brightness: float = 0.0, saturation: float = 1.0) -> str:
    """Contrast, brightness (in 8-bit levels) and saturation as one lookup table: cheap per pixel.

    lutyuv clips to the legal video range, so pushing contrast never wraps around.
    """
    luma = f"(val-128)*{_n(contrast)}+{_n(128 + brightness)}"
    chroma = f"(val-128)*{_n(saturation)}+128"
    return f"lutyuv=y={luma}:u={chroma}:v={chroma}"


def _lift(black: float, white: float = 1.0) -> str:
    """Raise the blacks and lower the whites: the washed-out look of old prints."""
    return f"curves=all='0/{_n(black)} 1/{_n(white)}'"


def _balance(t: float, **amounts: float) -> str:
    """colorbalance with each shift (-1..1) scaled by the intensity."""
    args = ":".join(f"{key}={_n(value * t)}" for key, value in amounts.items())
    return f"colorbalance={args}"


_SEPIA = ((0.393, 0.769, 0.189), (0.349, 0.686, 0.168), (0.272, 0.534, 0.131))


def _sepia(t: float) -> str:
    """The classic sepia matrix, blended with the identity by `t`."""
    names = ("r", "g", "b")
    args = []
    for i, row in enumerate(_SEPIA):
        for j, value in enumerate(row):
            identity = 1.0 if i == j else 0.0
            args.append(f"{names[i]}{names[j]}={_n(identity + (value - identity) * t)}")
    return "colorchannelmixer=" + ":".join(args)


def _vignette(t: float, strength: float = 0.9) -> str:
    return f"vignette=angle={_n(strength * t)}"


def _grain(t: float, amount: float) -> str:
    return f"noise=alls={round(amount * t)}:allf=t+u"


def _mirror(t: float) -> str:
    """The left half reflected onto the right, the reflection's opacity set by `t`."""
    return (
        "split[rl_mirror_a][rl_mirror_b];"
        "[rl_mirror_b]crop=iw/2:ih:0:0,hflip,format=yuva420p,"
        f"lutyuv=a=val*{_n(t)}[rl_mirror_c];"
        "[rl_mirror_a][rl_mirror_c]overlay=x=W-w:y=0:format=yuv420"
    )


def _glow(t: float) -> str:
    return (
        "split[rl_glow_a][rl_glow_b];[rl_glow_b]gblur=sigma=14[rl_glow_c];"
        f"[rl_glow_a][rl_glow_c]blend=all_mode=screen:all_opacity={_n(0.6 * t)}"
    )


def _soft_focus(t: float) -> str:
    # blend's "normal" mode gives top*opacity + bottom*(1-opacity): the blur goes on top.
    return (
        "split[rl_soft_a][rl_soft_b];[rl_soft_b]gblur=sigma=5[rl_soft_c];"
        f"[rl_soft_c][rl_soft_a]blend=all_mode=normal:all_opacity={_n(0.65 * t)}"
    )


def _letterbox(t: float) -> str:
    bar = f"ih*{_n(0.11 * t)}"
    return (
        f"drawbox=x=0:y=0:w=iw:h={bar}:color=black:t=fill,"
        f"drawbox=x=0:y=ih-{bar}:w=iw:h={bar}:color=black:t=fill"
    )


def _invert(t: float) -> str:
    mix = f"val+(negval-val)*{_n(t)}"
    return f"lutyuv=y={mix}:u={mix}:v={mix}"


def _posterize(t: float) -> str:
    step = 1 + round(63 * t)
    return f"lutyuv=y=floor(val/{step})*{step}+{step // 2}"


@dataclass(frozen=True)
class Filter:
    """A named look. `graph(intensity)` is a single-input, single-output filtergraph fragment.

    Intensity 0 is the identity (`null`), 100 the full look; in between the parameters are
    interpolated, so the slider moves smoothly. Internal pad labels start with `rl_<name>_`
    so a fragment can sit inside a larger graph. Sizes in pixels (blur, grain, blocks) are
    tuned for a picture about 720 wide: apply a look after scaling to the top rendition, as
    the preview does, and derive smaller renditions from that.
    """

    name: str
    label: str
    description: str
    build: Callable[[float], str] = field(repr=False, compare=False)

    def graph(self, intensity: int) -> str:
        _check_intensity(intensity)
        if intensity == 0:
            return "null"
        return self.build(intensity / 100)


def _check_intensity(intensity: int) -> None:
    if isinstance(intensity, bool) or not isinstance(intensity, int) or not 0 <= intensity <= 100:
        raise InvalidInput(
            f"Filter intensity must be a whole number from 0 to 100, not {intensity!r}.",
            code="invalid_intensity",
        )


_FILTERS: tuple[Filter, ...] = (
    Filter(
        "grayscale",
        "Grayscale",
        "Colour drained to shades of grey.",
        lambda t: f"hue=s={_n(1 - t)}",
    ),
    Filter("sepia", "Sepia", "Warm brown tones of an old photograph.", _sepia),
    Filter(
        "vintage",
        "Vintage",
        "Faded, slightly brown print with darkened corners.",
        lambda t: ",".join([_sepia(0.45 * t), _lift(0.08 * t, 1 - 0.06 * t), _vignette(t, 0.6)]),
    ),
    Filter(
        "vivid",
        "Vivid",
        "Richer colour and a little more punch.",
        lambda t: _tone(contrast=1 + 0.12 * t, saturation=1 + 0.8 * t),
    ),
    Filter(
        "warm",
        "Warm",
        "Shifts the colours toward amber.",
        lambda t: _balance(t, rs=0.12, gs=0.03, bs=-0.12, rm=0.10, bm=-0.10, rh=0.06, bh=-0.06),
    ),
    Filter(
        "cool",
        "Cool",
        "Shifts the colours toward blue.",
        lambda t: _balance(t, rs=-0.10, gs=0.02, bs=0.14, rm=-0.08, bm=0.10, rh=-0.05, bh=0.06),
    ),
    Filter(
        "fade",
        "Fade",
        "Lifted blacks and softer colour, like a matte print.",
        lambda t: ",".join([_lift(0.18 * t, 1 - 0.08 * t), _tone(saturation=1 - 0.35 * t)]),
    ),
    Filter(
        "noir",
        "Noir",
        "Hard black and white with deep shadows.",
        lambda t: ",".join([f"hue=s={_n(1 - t)}", _tone(contrast=1 + 0.5 * t, brightness=-8 * t)]),
    ),
    Filter("vignette", "Vignette", "Darkens the corners to draw the eye in.", _vignette),
    Filter(
        "film_grain", "Film grain", "The moving grain of analogue film.", lambda t: _grain(t, 30)
    ),
    Filter(
        "vhs",
        "VHS",
        "Smeared colour, soft picture and tape noise of a home video.",
        lambda t: ",".join(
            [
                f"chromashift=cbh={-round(4 * t)}:crh={round(4 * t)}",
                f"gblur=sigma={_n(0.3 + 0.9 * t)}",
                _grain(t, 14),
                _tone(contrast=1 - 0.08 * t, saturation=1 + 0.25 * t),
            ]
        ),
    ),
    Filter(
        "teal_orange",
        "Teal & orange",
        "Blockbuster grade: teal shadows, orange skin tones.",
        lambda t: ",".join(
            [
                _balance(t, rs=-0.15, gs=0.02, bs=0.20, rh=0.18, gh=0.04, bh=-0.18),
                _tone(saturation=1 + 0.15 * t),
            ]
        ),
    ),
    Filter(
        "high_contrast",
        "High contrast",
        "Brighter brights and darker darks.",
        lambda t: _tone(contrast=1 + 0.7 * t, saturation=1 + 0.1 * t),
    ),
    Filter(
        "pastel",
        "Pastel",
        "Light, soft, low-saturation colour.",
        lambda t: ",".join(
            [
                _tone(contrast=1 - 0.18 * t, brightness=14 * t, saturation=1 - 0.45 * t),
                _balance(t, rh=0.04, bh=0.06),
            ]
        ),
    ),
    Filter("mirror", "Mirror", "The left half reflected onto the right.", _mirror),
    Filter(
        "sharpen",
        "Sharpen",
        "Crisper edges and detail.",
        lambda t: f"unsharp=luma_msize_x=5:luma_msize_y=5:luma_amount={_n(1.6 * t)}",
    ),
    Filter("glow", "Glow", "Highlights bloom softly into their surroundings.", _glow),
    Filter("soft_focus", "Soft focus", "A dreamy, gently blurred picture.", _soft_focus),
    Filter(
        "cyberpunk",
        "Cyberpunk",
        "Neon magenta and cyan with hard contrast.",
        lambda t: ",".join(
            [
                _balance(
                    t, rs=0.10, gs=-0.08, bs=0.28, rm=0.08, gm=-0.12, bm=0.15, rh=0.18, bh=0.22
                ),
                _tone(contrast=1 + 0.2 * t, saturation=1 + 0.45 * t),
            ]
        ),
    ),
    Filter(
        "golden_hour",
        "Golden hour",
        "The low, golden light just before sunset.",
        lambda t: ",".join(
            [
                _balance(
                    t, rs=0.05, bs=-0.08, rm=0.16, gm=0.06, bm=-0.16, rh=0.12, gh=0.05, bh=-0.10
                ),
                _tone(brightness=6 * t, saturation=1 + 0.15 * t),
                _vignette(t, 0.45),
            ]
        ),
    ),
    Filter("blur", "Blur", "An out-of-focus picture.", lambda t: f"gblur=sigma={_n(10 * t)}"),
    Filter("invert", "Invert", "A photographic negative.", _invert),
    Filter(
        "pixelate",
        "Pixelate",
        "Chunky blocks, like an old video game.",
        lambda t: f"pixelize=w={2 + round(22 * t)}:h={2 + round(22 * t)}",
    ),
    Filter("posterize", "Posterize", "Brightness in a few flat bands.", _posterize),
    Filter(
        "cinematic",
        "Cinematic",
        "Letterbox bars and a filmic colour grade.",
        lambda t: ",".join(
            [
                _balance(t, rs=-0.08, bs=0.10, rh=0.10, bh=-0.10),
                _tone(contrast=1 + 0.1 * t, saturation=1 - 0.1 * t),
                _letterbox(t),
            ]
        ),
    ),
    Filter(
        "lomo",
        "Lomo",
        "Saturated toy-camera colour with heavy dark corners.",
        lambda t: ",".join(
            [_tone(contrast=1 + 0.2 * t, saturation=1 + 0.4 * t), _vignette(t, 1.1)]
        ),
    ),
    Filter(
        "bleach_bypass",
        "Bleach bypass",
        "Silvery, desaturated and contrasty.",
        lambda t: _tone(contrast=1 + 0.35 * t, saturation=1 - 0.55 * t),
    ),
    Filter(
        "night_vision",
        "Night vision",
        "Green, grainy image-intensifier look.",
        lambda t: ",".join(
            [
                f"hue=s={_n(1 - t)}",
                _balance(t, rs=-0.3, gs=0.3, bs=-0.3, rm=-0.3, gm=0.3, bm=-0.3),
                _grain(t, 18),
            ]
        ),
    ),
)

FILTERS: dict[str, Filter] = {f.name: f for f in _FILTERS}


def get_filter(name: str) -> Filter:
    try:
        return FILTERS[name]
    except KeyError:
        raise InvalidInput(
            f"Unknown filter {name!r}. Choose one of: {', '.join(FILTERS)}.",
            code="unknown_filter",
        ) from None


def upright(rotation: int) -> str:
    """The fragment that turns decoded pictures upright, for a probe's `rotation`."""
    return {0: "null", 90: "transpose=cclock", 180: "hflip,vflip", 270: "transpose=clock"}[
        rotation % 360
    ]


# ---- linking a fragment into a PyAV graph --------------------------------------------------
# PyAV adds filters one by one and has no equivalent of avfilter_graph_parse, so the fragment
# syntax we emit (chains split by ';', filters by ',', [labels] around them, quoted args) is
# parsed here. It is a subset of FFmpeg's grammar: enough for every fragment above.


@dataclass
class _Node:
    name: str
    args: str | None
    inputs: list[str]
    outputs: list[str]


def _split_top(text: str, separator: str) -> list[str]:
    parts, current, quoted, depth = [], [], False, 0
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "[":
            depth += 1
        elif not quoted and char == "]":
            depth -= 1
        if char == separator and not quoted and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def _take_labels(text: str) -> tuple[list[str], str]:
    labels = []
    text = text.strip()
    while text.startswith("["):
        end = text.index("]")
        labels.append(text[1:end])
        text = text[end + 1 :].strip()
    return labels, text


def _parse_node(text: str) -> _Node:
    inputs, rest = _take_labels(text)
    outputs: list[str] = []
    while rest.endswith("]"):
        start = rest.rindex("[")
        outputs.insert(0, rest[start + 1 : -1])
        rest = rest[:start].rstrip()
    name, _, args = rest.partition("=")
    return _Node(name.strip(), args or None, inputs, outputs)


def link_fragment(graph: Graph, upstream: FilterContext, fragment: str) -> FilterContext:
    """Add a fragment's filters to `graph`, fed by `upstream`; return the fragment's last filter.

    The caller links the returned context's first output onward (to more filters or a sink).
    """
    chains = [
        [_parse_node(n) for n in _split_top(chain, ",")] for chain in _split_top(fragment, ";")
    ]
    producers: dict[str, tuple[FilterContext, int]] = {}
    consumers: dict[str, tuple[FilterContext, int]] = {}
    open_input: tuple[FilterContext, int] | None = None
    open_output: FilterContext | None = None
    for chain in chains:
        previous: FilterContext | None = None
        for position, node in enumerate(chain):
            context = graph.add(node.name, node.args)
            pad = 0
            if previous is not None:
                previous.link_to(context, 0, 0)
                pad = 1
            elif not node.inputs:
                open_input = (context, 0)
                pad = 1
            for label in node.inputs:
                consumers[label] = (context, pad)
                pad += 1
            for index, label in enumerate(node.outputs):
                producers[label] = (context, index)
            if position == len(chain) - 1 and not node.outputs:
                open_output = context
            previous = context if not node.outputs else None
    for label, (consumer, input_pad) in consumers.items():
        producer, output_pad = producers[label]
        producer.link_to(consumer, output_pad, input_pad)
    if open_input is None or open_output is None:
        raise ValueError(f"fragment {fragment!r} needs one open input and one open output")
    upstream.link_to(open_input[0], 0, open_input[1])
    return open_output


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Fit inside max_side keeping the aspect, never enlarging; even sides for 4:2:0."""
    scale = min(1.0, max_side / max(width, height))
    return _even(width * scale), _even(height * scale)


def _even(size: float) -> int:
    return max(2, math.floor(size / 2 + 0.5) * 2)


def render_preview(
    path: Path,
    *,
    filter_name: str | None,
    intensity: int,
    at_s: float,
    max_side: int = 720,
    limits: MediaLimits | None = None,
) -> bytes:
    """One JPEG of the video at `at_s`, upright, fitted into `max_side`, with the look applied.

    The picture is scaled down before the look runs: looks cost per pixel, and the preview only
    needs what the screen shows. Past the end, the last picture is used.
    """
    _check_intensity(intensity)
    fragment = get_filter(filter_name).graph(intensity) if filter_name else "null"
    if not at_s >= 0:
        raise InvalidInput("The preview time must be zero or more seconds.", code="invalid_time")
    container, _, _ = open_local_video(path, limits=limits)
    with container:
        video = pick_video_stream(container)
        frame = _frame_at(container, video, at_s)
    graph = Graph()
    source = graph.add_buffer(
        width=frame.width, height=frame.height, format=frame.format, time_base=Fraction(1, 1000)
    )
    width, height = _fit(frame.width, frame.height, max_side)
    scaled = graph.add("scale", f"w={width}:h={height}:out_range=full")
    source.link_to(scaled)
    turned = link_fragment(graph, scaled, upright(display_rotation(frame)))
    looked = link_fragment(graph, turned, fragment)
    pixel_format = graph.add("format", "yuvj420p")
    sink = graph.add("buffersink")
    looked.link_to(pixel_format)
    pixel_format.link_to(sink)
    graph.configure()
    frame.pts = 0
    frame.time_base = Fraction(1, 1000)
    graph.push(frame)
    picture = graph.vpull()
    return _encode_jpeg(picture)


def _frame_at(container: InputContainer, video: VideoStream, at_s: float) -> VideoFrame:
    if video.time_base is not None:
        container.seek(int(at_s / video.time_base), stream=video, backward=True)
    video.codec_context.thread_type = "AUTO"
    last: VideoFrame | None = None
    try:
        for frame in container.decode(video):
            last = frame
            if frame.time is not None and frame.time >= at_s - 0.001:
                break
    except av.FFmpegError as exc:
        if last is None:
            raise InvalidInput(
                "This video's pictures could not be decoded.", code="corrupt_file"
            ) from exc
    if last is None:
        raise InvalidInput("No picture could be decoded from this video.", code="corrupt_file")
    return last


def _encode_jpeg(picture: VideoFrame) -> bytes:
    encoder = av.CodecContext.create("mjpeg", "w")
    assert isinstance(encoder, VideoCodecContext)
    encoder.width = picture.width
    encoder.height = picture.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.qscale = True
    encoder.global_quality = 3 * 118  # FF_QP2LAMBDA * q: q=3 is a good, small JPEG
    picture.pts = 0
    out = io.BytesIO()
    for packet in encoder.encode(picture):
        out.write(bytes(packet))
    for packet in encoder.encode(None):
        out.write(bytes(packet))
    return out.getvalue()
