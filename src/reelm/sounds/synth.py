"""Demo songs for the catalog, composed and synthesised here so the project downloads no music.

Each song is a small arrangement: a lead melody built from a repeated motif over a chord
progression, chords, a bass line and a drum pattern, at its own tempo, key and instruments.
Python renders each distinct note once (wavetables and envelopes, no per-sample Python loop) and
copies it into place on six mono tracks; one FFmpeg filter graph then pans and mixes the tracks to
stereo, adds the song's effects and resamples, and PyAV encodes AAC into an .m4a. Without numpy,
this split keeps a song to a fraction of a second of Python.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing
import os
import random
import shutil
import tempfile
import threading
from array import array
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache, lru_cache
from operator import add, mul
from pathlib import Path

import av
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream

SYNTH_RATE = 22_050  # notes are rendered at this rate, then resampled by FFmpeg
OUTPUT_RATE = 44_100
BITRATE = 128_000
TARGET_RMS_DB = -16.0
_TABLE_SIZE = 2048
_CHUNK = 4096  # samples per frame pushed into the mixing graph
_STEPS_PER_BAR = 16  # drum grid: sixteenth notes
_EIGHTHS_PER_BAR = 8  # melody and bass grid: eighth notes

# Tracks, in channel order of the six-channel frame that the graph pans to stereo.
LEAD, BASS, CHORDS, KICK, SNARE, HAT = range(6)
# (left gain, right gain) per track: lead a little left, chords a little right, hats wide.
_PAN: tuple[tuple[float, float], ...] = (
    (0.34, 0.26),
    (0.36, 0.36),
    (0.12, 0.17),
    (0.42, 0.42),
    (0.20, 0.24),
    (0.06, 0.11),
)

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
DORIAN = (0, 2, 3, 5, 7, 9, 10)
MIXOLYDIAN = (0, 2, 4, 5, 7, 9, 10)

# Harmonic amplitudes of each wavetable (band-limited: the lead stays below ~1.1 kHz, so the
# highest harmonic stays below the 11 kHz limit of the synthesis rate).
_WAVES: dict[str, tuple[float, ...]] = {
    "sine": (1.0,),
    "soft": (1.0, 0.35, 0.12, 0.05),
    "square": (1.0, 0.0, 1 / 3, 0.0, 1 / 5, 0.0, 1 / 7, 0.0, 1 / 9),
    "saw": (1.0, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 6, 1 / 7, 1 / 8),
    "organ": (1.0, 0.6, 0.0, 0.35, 0.0, 0.0, 0.0, 0.2),
    "bell": (1.0, 0.0, 0.0, 0.45, 0.0, 0.0, 0.25, 0.0, 0.0, 0.12),
    "reed": (1.0, 0.1, 0.5, 0.05, 0.3, 0.0, 0.15),
}

# Drum patterns on a sixteenth grid: kick, snare, hat.
_DRUMS: dict[str, tuple[str, str, str]] = {
    "four": ("x...x...x...x...", "....x.......x...", "..x...x...x...x."),
    "backbeat": ("x.......x.x.....", "....x.......x...", "x.x.x.x.x.x.x.x."),
    "boombap": ("x......x..x.....", "....x.......x...", "x.x.x.x.x.x.x.xx"),
    "chip": ("x...x...x...x...", "....x.......x...", "xxxxxxxxxxxxxxxx"),
    "halftime": ("x.........x.....", "........x.......", "x.x.x.x.x.x.x.x."),
    "dnb": ("x.........x.....", "....x.......x...", "x.x.x.x.x.x.x.x."),
    "sparse": ("x.......x.......", "................", "....x.......x..."),
    "disco": ("x...x...x...x...", "....x.......x...", "xx.xxx.xxx.xxx.x"),
    "trap": ("x......x..x.....", "........x.......", "x.x.x.x.xxx.x.xx"),
    "tropical": ("x...x...x...x...", "......x.......x.", "..x...x...x...x."),
}

# Bass patterns: (start, length) in eighths and the chord tone, as scale degrees above the root.
_BASS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "eighths": tuple((i, 1, 0) for i in range(8)),
    "root_fifth": ((0, 2, 0), (2, 2, 4), (4, 2, 0), (6, 2, 4)),
    "walking": ((0, 2, 0), (2, 2, 2), (4, 2, 4), (6, 2, 5)),
    "funk": ((0, 1, 0), (1, 1, 7), (3, 1, 0), (4, 1, 4), (6, 1, 7), (7, 1, 6)),
    "long": ((0, 8, 0),),
    "offbeat": ((1, 1, 0), (3, 1, 0), (5, 1, 4), (7, 1, 0)),
}

# Chord patterns: (start, length) in eighths.
_CHORDS: dict[str, tuple[tuple[int, int], ...]] = {
    "pad": ((0, 8),),
    "stabs": ((2, 1), (6, 1)),
    "offbeat": ((1, 1), (3, 1), (5, 1), (7, 1)),
    "halves": ((0, 4), (4, 4)),
    "pulse": tuple((i, 1) for i in range(8)),
}

# One bar of melody rhythm, in eighths; a negative length is a rest.
_RHYTHMS: tuple[tuple[int, ...], ...] = (
    (2, 2, 2, 2),
    (1, 1, 2, 1, 1, 2),
    (3, 1, 2, 2),
    (2, 1, 1, 4),
    (1, 1, 1, 1, 2, 2),
    (4, 2, 2),
    (2, 2, 4),
    (3, 3, 2),
    (-2, 2, 1, 1, 2),
    (2, -1, 1, 2, 2),
)


@dataclass(frozen=True)
class DemoSong:
    """A demo song's catalog entry and its score: enough to render it the same way every time."""

    title: str
    artist: str
    genre: str
    bpm: int
    tonic: int  # MIDI note of the key's tonic in the lead's octave (60 = middle C)
    scale: tuple[int, ...]
    progression: tuple[int, ...]  # one chord a bar, as scale degrees, cycled
    lead: tuple[str, str]  # (wavetable, envelope)
    bass: tuple[str, str]
    chords: tuple[str, str]
    drums: str
    bass_pattern: str
    chord_pattern: str
    seed: int
    effects: str = ""  # extra FFmpeg audio filters, e.g. an echo
    territories: str = "*"
    tags: tuple[str, ...] = field(default=())

    @property
    def bar_s(self) -> float:
        return 4 * 60 / self.bpm

    @property
    def bars(self) -> int:
        """A two-bar intro, one or two eight-bar sections, a closing bar: 20 to 40 seconds."""
        sections = 1 if 11 * self.bar_s >= 20 else 2
        return 2 + 8 * sections + 1

    @property
    def duration_s(self) -> float:
        return self.bars * self.bar_s


DEMO_SONGS: tuple[DemoSong, ...] = (
    DemoSong(
        "Neon Drift", "Velvet Coupe", "Synthwave", 100, 69, MINOR, (0, 5, 2, 6),
        ("saw", "legato"), ("square", "legato"), ("soft", "pad"),
        "backbeat", "eighths", "pad", seed=1, effects="aecho=0.8:0.5:450:0.25",
    ),
    DemoSong(
        "Sunday Skate", "Kite Avenue", "Indie Pop", 118, 62, MAJOR, (0, 4, 5, 3),
        ("soft", "pluck"), ("soft", "legato"), ("organ", "stab"),
        "backbeat", "root_fifth", "stabs", seed=2,
    ),
    DemoSong(
        "Lo-Fi Library", "Mira Sol", "Lo-fi Hip Hop", 78, 65, MAJOR, (1, 4, 0, 5),
        ("soft", "keys"), ("sine", "legato"), ("soft", "keys"),
        "boombap", "long", "halves", seed=3, effects="lowpass=f=3200,aecho=0.8:0.4:380:0.2",
    ),
    DemoSong(
        "Hyperloop", "DJ Tamarind", "House", 124, 67, MINOR, (0, 5, 3, 4),
        ("square", "stab"), ("saw", "legato"), ("organ", "stab"),
        "four", "offbeat", "offbeat", seed=4, territories="AU,CA,NZ,US",
    ),
    DemoSong(
        "Golden Hour", "Lagoon Theory", "Chillout", 92, 63, MAJOR, (0, 3, 5, 4),
        ("bell", "pluck"), ("sine", "legato"), ("soft", "pad"),
        "halftime", "root_fifth", "pad", seed=5, effects="aecho=0.8:0.6:490:0.3",
    ),
    DemoSong(
        "Pixel Parade", "Bitwise Kids", "Chiptune", 140, 72, MAJOR, (0, 5, 3, 4),
        ("square", "legato"), ("square", "stab"), ("square", "stab"),
        "chip", "eighths", "pulse", seed=6,
    ),
    DemoSong(
        "Midnight Taxi", "Ollie & the Owls", "Jazz Hop", 84, 62, DORIAN, (0, 3, 1, 4),
        ("reed", "legato"), ("sine", "pluck"), ("soft", "keys"),
        "boombap", "walking", "halves", seed=7, territories="BR,DE,IN,JP,SG",
    ),
    DemoSong(
        "Rooftop Sunrise", "Nova Reyes", "Tropical House", 110, 70, MAJOR, (0, 4, 5, 3),
        ("sine", "marimba"), ("soft", "legato"), ("organ", "stab"),
        "tropical", "root_fifth", "offbeat", seed=8, effects="aecho=0.8:0.4:410:0.2",
    ),
    DemoSong(
        "Static Bloom", "Hollow Pines", "Ambient", 70, 64, MAJOR, (0, 5, 3, 4),
        ("bell", "pluck"), ("sine", "pad"), ("soft", "pad"),
        "sparse", "long", "pad", seed=9, effects="aecho=0.8:0.7:640:0.4",
    ),
    DemoSong(
        "Street Sprint", "Juno Park", "Drum & Bass", 172, 66, MINOR, (0, 5, 6, 4),
        ("saw", "stab"), ("saw", "legato"), ("soft", "pad"),
        "dnb", "eighths", "pad", seed=10,
    ),
    DemoSong(
        "Paper Planes Home", "The Paper Lanterns", "Folk Pop", 96, 67, MIXOLYDIAN, (0, 6, 3, 0),
        ("soft", "pluck"), ("soft", "pluck"), ("soft", "keys"),
        "backbeat", "root_fifth", "halves", seed=11,
    ),
    DemoSong(
        "Cosmic Bounce", "Static Harbor", "Disco Funk", 116, 64, DORIAN, (0, 3, 0, 4),
        ("organ", "stab"), ("square", "pluck"), ("saw", "stab"),
        "disco", "funk", "stabs", seed=12,
    ),
)  # fmt: skip


def midi_hz(note: int) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


@cache
def _wavetable(name: str) -> array[float]:
    """One cycle of a band-limited wave, peak-normalised."""
    harmonics = _WAVES[name]
    step = 2 * math.pi / _TABLE_SIZE
    cycle = [
        sum(a * math.sin((h + 1) * i * step) for h, a in enumerate(harmonics) if a)
        for i in range(_TABLE_SIZE)
    ]
    peak = max(abs(v) for v in cycle)
    return array("f", (v / peak for v in cycle))


def _ramp(n: int, start: float, end: float) -> list[float]:
    if n <= 0:
        return []
    return [start + (end - start) * i / n for i in range(n)]


@lru_cache(maxsize=512)
def _envelope(kind: str, n: int) -> array[float]:
    """Amplitude over a note of `n` samples; every kind starts and ends at zero (no clicks)."""
    ms = SYNTH_RATE // 1000
    release = min(n // 4, 8 * ms)
    if kind in ("pluck", "marimba", "keys"):
        attack = min(n // 8, 2 * ms)
        tau = {"pluck": 0.18, "marimba": 0.07, "keys": 0.45}[kind] * SYNTH_RATE
        decay = math.exp(-1 / tau).__pow__
        body = list(map(decay, range(n - attack - release)))
        last = body[-1] if body else 1.0
        env = _ramp(attack, 0.0, 1.0) + body + _ramp(release, last, 0.0)
    elif kind == "stab":
        attack = min(n // 8, 3 * ms)
        hold = min(n - attack - release, int(0.12 * SYNTH_RATE))
        tail = n - attack - hold - release
        env = _ramp(attack, 0, 1) + [1.0] * hold + _ramp(tail, 1.0, 0.25) + _ramp(release, 0.25, 0)
    elif kind == "pad":
        attack = min(n // 3, int(0.25 * SYNTH_RATE))
        release = min(n // 4, int(0.2 * SYNTH_RATE))
        sustain = n - attack - release
        env = _ramp(attack, 0, 1) + [1.0] * sustain + _ramp(release, 1.0, 0)
    else:  # legato
        attack = min(n // 8, 10 * ms)
        sustain = n - attack - release
        env = _ramp(attack, 0, 1) + _ramp(sustain, 1.0, 0.75) + _ramp(release, 0.75, 0)
    return array("f", env)


@lru_cache(maxsize=1024)
def _cycle(freq: float, wave: str) -> array[float]:
    """A whole number of periods of `freq` that loops seamlessly, detuned by under a cent.

    Long notes are this loop repeated (a C-level copy), so their cost is the envelope's alone.
    """
    period = SYNTH_RATE / freq
    cycles = min(range(1, 33), key=lambda k: abs(round(k * period) - k * period) / k)
    length = round(cycles * period)
    table = _wavetable(wave)
    increment = _TABLE_SIZE * cycles / length
    indices = map(_TABLE_SIZE.__rmod__, map(int, map(increment.__mul__, range(length))))
    return array("f", map(table.__getitem__, indices))


def _wave(freq: float, n: int, wave: str) -> array[float]:
    cycle = _cycle(freq, wave)
    out = cycle * (n // len(cycle) + 1)
    del out[n:]
    return out


@lru_cache(maxsize=2048)
def _tone(freqs: tuple[float, ...], n: int, voice: tuple[str, str]) -> array[float]:
    """A note (or a chord) of `n` samples in the voice's wave, shaped by its envelope."""
    mixed = _wave(freqs[0], n, voice[0])
    for f in freqs[1:]:
        mixed = array("f", map(add, mixed, _wave(f, n, voice[0])))
    return array("f", map(mul, mixed, _envelope(voice[1], n)))


def _drum_hits(seed: int) -> tuple[array[float], array[float], array[float]]:
    """Kick (a falling sine), snare (noise and a body tone), hat (high-passed noise)."""
    rng = random.Random(seed)
    sr = SYNTH_RATE
    n = int(0.2 * sr)
    tau, f0, f1 = 0.035, 130.0, 45.0
    kick = array(
        "f",
        (
            math.sin(2 * math.pi * (f1 * t + (f0 - f1) * tau * (1 - math.exp(-t / tau))))
            * math.exp(-t / 0.13)
            for t in (i / sr for i in range(n))
        ),
    )
    n = int(0.16 * sr)
    snare = array(
        "f",
        (
            (0.8 * rng.uniform(-1, 1) * math.exp(-t / 0.05))
            + 0.5 * math.sin(2 * math.pi * 185 * t) * math.exp(-t / 0.03)
            for t in (i / sr for i in range(n))
        ),
    )
    n = int(0.05 * sr)
    noise = [rng.uniform(-1, 1) for _ in range(n + 1)]
    hat = array(
        "f", ((noise[i + 1] - noise[i]) * 0.5 * math.exp(-i / sr / 0.012) for i in range(n))
    )
    for hit in (kick, snare, hat):  # fade the last millisecond out
        for k in range(1, 23):
            hit[-k] *= k / 23
    return kick, snare, hat


def _place(track: array[float], start: int, sound: array[float]) -> None:
    end = min(len(track), start + len(sound))
    if start < end:
        track[start:end] = sound[: end - start]


def _degree_note(song: DemoSong, degree: int, octave_shift: int = 0) -> int:
    n = len(song.scale)
    return song.tonic + song.scale[degree % n] + 12 * (degree // n + octave_shift)


def _motif(rng: random.Random, song: DemoSong, bars: int, start: int) -> list[tuple[int, int]]:
    """`bars` bars of melody from scale degree `start`: (length in eighths, degree or None)."""
    notes: list[tuple[int, int]] = []
    degree = start
    for bar in range(bars):
        chord_root = song.progression[bar % len(song.progression)]
        rhythm = rng.choice(_RHYTHMS)
        for i, length in enumerate(rhythm):
            if length < 0:
                notes.append((-length, -999))
                continue
            if i == 0:  # strong beat: the nearest tone of the bar's chord
                tones = [chord_root + k + 7 * o for k in (0, 2, 4) for o in (-1, 0, 1)]
                degree = min(tones, key=lambda t: (abs(t - degree), t))
            else:
                degree += rng.choice((-2, -1, -1, 1, 1, 2, 0, 3, -3))
            degree = max(-3, min(9, degree))
            notes.append((length, degree))
    return notes


def compose(song: DemoSong) -> dict[int, list[tuple[float, float, tuple[float, ...]]]]:
    """The score: per track, (start in seconds, length in seconds, frequencies) of every note.

    Sections repeat a two-bar motif (A A' B A), as songs do, so the tune is recognisable.
    """
    rng = random.Random(song.seed)
    eighth = song.bar_s / _EIGHTHS_PER_BAR
    a = _motif(rng, song, 2, 0)
    a_var = a[: len(a) // 2] + _motif(rng, song, 1, 4)
    b = _motif(rng, song, 2, 4)
    sections = (song.bars - 3) // 8
    melody = (a + a_var + b + a) * sections + [(_EIGHTHS_PER_BAR, 0)]
    score: dict[int, list[tuple[float, float, tuple[float, ...]]]] = {t: [] for t in range(6)}
    t = 2 * _EIGHTHS_PER_BAR  # the lead enters after the intro
    for length, degree in melody:
        if degree != -999:
            score[LEAD].append(
                (t * eighth, length * eighth, (midi_hz(_degree_note(song, degree)),))
            )
        t += length
    for bar in range(song.bars):
        root = song.progression[bar % len(song.progression)]
        last = bar == song.bars - 1
        if last:
            root = 0
        bar_t = bar * song.bar_s
        for start, length, tone in _BASS[song.bass_pattern] if not last else ((0, 8, 0),):
            note = _degree_note(song, root + tone, -2)
            score[BASS].append((bar_t + start * eighth, length * eighth, (midi_hz(note),)))
        for start, length in _CHORDS[song.chord_pattern] if not last else ((0, 8),):
            notes = tuple(midi_hz(_degree_note(song, root + k, -1)) for k in (0, 2, 4))
            score[CHORDS].append((bar_t + start * eighth, length * eighth, notes))
        if last:
            continue
        for track, pattern in zip((KICK, SNARE, HAT), _DRUMS[song.drums], strict=True):
            if bar == 0 and track != HAT:
                continue  # the first bar is hats and chords only
            step = song.bar_s / _STEPS_PER_BAR
            score[track] += [
                (bar_t + i * step, step, ()) for i, c in enumerate(pattern) if c == "x"
            ]
    return score


def _render_tracks(song: DemoSong) -> tuple[list[array[float]], int]:
    total = math.ceil(song.duration_s * SYNTH_RATE) + SYNTH_RATE  # one second of tail
    tracks = [array("f", bytes(4 * total)) for _ in range(6)]
    drums = dict(zip((KICK, SNARE, HAT), _drum_hits(song.seed), strict=True))
    voices = {LEAD: song.lead, BASS: song.bass, CHORDS: song.chords}
    for track, notes in compose(song).items():
        for start_s, length_s, freqs in notes:
            start = round(start_s * SYNTH_RATE)
            if track in drums:
                _place(tracks[track], start, drums[track])
                continue
            n = round(length_s * SYNTH_RATE)
            _place(tracks[track], start, _tone(freqs, n, voices[track]))
    return tracks, total


def _filter(
    frames: Iterable[AudioFrame], layout: str, chain: Sequence[tuple[str, str]]
) -> Iterator[AudioFrame]:
    """Run frames at the synthesis rate through a chain of FFmpeg audio filters."""
    graph = av.filter.Graph()
    source = graph.add_abuffer(
        format="fltp", sample_rate=SYNTH_RATE, layout=layout, time_base=Fraction(1, SYNTH_RATE)
    )
    nodes = [source, *(graph.add(name, args) for name, args in chain), graph.add("abuffersink")]
    graph.link_nodes(*nodes)
    graph.configure()
    sink = nodes[-1]

    def drain() -> Iterator[AudioFrame]:
        while True:
            try:
                out = sink.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            assert isinstance(out, AudioFrame)
            yield out

    for frame in frames:
        graph.push(frame)
        yield from drain()
    graph.push(None)
    yield from drain()


def _mix(song: DemoSong, tracks: list[array[float]], total: int) -> list[AudioFrame]:
    """The six tracks panned to stereo, with the song's effects, still at the synthesis rate."""
    left = "+".join(f"{g[0]}*c{i}" for i, g in enumerate(_PAN))
    right = "+".join(f"{g[1]}*c{i}" for i, g in enumerate(_PAN))
    chain = [("pan", f"stereo|FL={left}|FR={right}")]
    for effect in filter(None, song.effects.split(",")):
        name, _, args = effect.partition("=")
        chain.append((name, args))
    return list(_filter(_frames(tracks, total), "5.1", chain))


def _gain_db(frames: Sequence[AudioFrame], target_db: float) -> float:
    """The gain that brings the mix's RMS level to `target_db`, measured on every 8th sample."""
    squares = 0.0
    count = 0
    for frame in frames:
        for plane in frame.planes[:2]:
            samples = array("f", bytes(plane)[: 4 * frame.samples])[::8]
            squares += sum(map(mul, samples, samples))
            count += len(samples)
    rms_db = 10 * math.log10(squares / count) if squares > 0 else target_db
    return target_db - rms_db


def _frames(tracks: list[array[float]], total: int) -> Iterator[AudioFrame]:
    for pos in range(0, total, _CHUNK):
        n = min(_CHUNK, total - pos)
        frame = AudioFrame(format="fltp", layout="5.1", samples=n)
        for plane, track in zip(frame.planes, tracks, strict=True):
            plane.update(track[pos : pos + n].tobytes())
        frame.sample_rate = SYNTH_RATE
        frame.pts = pos
        frame.time_base = Fraction(1, SYNTH_RATE)
        yield frame


def render_song(song: DemoSong, path: Path) -> Path:
    """Write one demo song as stereo AAC (128 kbit/s, 44.1 kHz) in an .m4a with its index first.

    Every song is brought to the same level (-16 dBFS RMS, which these mixes measure as about
    -14 LUFS), so no demo track is much louder than another; a limiter then keeps the peaks at
    -3 dBFS, leaving the headroom that keeps the true peak after AAC encoding under -1.5 dBTP.
    So the catalog's import finds them at its loudness target and stores them as they are.
    """
    tracks, total = _render_tracks(song)
    mixed = _mix(song, tracks, total)
    end = total / SYNTH_RATE
    finish = [
        ("volume", f"{_gain_db(mixed, TARGET_RMS_DB):.2f}dB"),
        ("afade", "t=in:d=0.02"),
        ("afade", f"t=out:st={end - 2.5:.3f}:d=2.5"),
        ("alimiter", "limit=0.71:attack=3:release=50:level=false"),
        ("aresample", str(OUTPUT_RATE)),
        ("aformat", f"sample_fmts=fltp:channel_layouts=stereo:sample_rates={OUTPUT_RATE}"),
    ]
    with av.open(str(path), "w", format="ipod", options={"movflags": "+faststart"}) as output:
        output.metadata.update(
            {"title": song.title, "artist": song.artist, "genre": song.genre,
             "comment": "Synthesised by reelm; free to use."}
        )  # fmt: skip
        stream = output.add_stream("aac", rate=OUTPUT_RATE)
        assert isinstance(stream, AudioStream)
        stream.layout = "stereo"
        stream.bit_rate = BITRATE
        stream.options = {"aac_coder": "fast"}  # a third of the default's time; fine for demos
        for frame in _filter(mixed, "stereo", finish):
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path


def file_name(song: DemoSong) -> str:
    return "".join(c if c.isalnum() else "-" for c in song.title.lower()) + ".m4a"


def render_demo_songs(
    folder: Path, songs: Sequence[DemoSong] = DEMO_SONGS, *, workers: int | None = None
) -> list[tuple[DemoSong, Path]]:
    """Render `songs` into `folder`, in one process per core (at most two).

    Processes, because the synthesis is Python and PyAV's encoder holds the GIL. They are
    forked, which needs no importable `__main__`, and only from a single-threaded caller (the
    CLI, a test): forking a threaded process can copy a held lock. Otherwise the songs render
    here, one after the other.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / file_name(s) for s in songs]
    workers = min(workers or 2, os.cpu_count() or 1, len(songs))
    forkable = "fork" in multiprocessing.get_all_start_methods()
    if workers <= 1 or not forkable or threading.active_count() > 1:
        return [(s, render_song(s, p)) for s, p in zip(songs, paths, strict=True)]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(zip(songs, pool.map(render_song, songs, paths), strict=True))


_cache_lock = threading.Lock()
_cache_dir: Path | None = None
_rendered: dict[DemoSong, Path] = {}


def demo_song_files(songs: Sequence[DemoSong] = DEMO_SONGS) -> list[tuple[DemoSong, Path]]:
    """The rendered files of `songs`, each rendered once per process into a temporary folder
    removed at exit: seeding several data folders in one process (tests) renders once."""
    global _cache_dir
    with _cache_lock:
        if _cache_dir is None:
            _cache_dir = Path(tempfile.mkdtemp(prefix="reelm-demo-songs-"))
            atexit.register(shutil.rmtree, _cache_dir, True)
        todo = [s for s in songs if s not in _rendered or not _rendered[s].is_file()]
        if todo:
            _rendered.update(render_demo_songs(_cache_dir, todo))
        return [(s, _rendered[s]) for s in songs]
