"""The demo songs: generated here, distinct, really audible tunes; seeding is idempotent."""

from __future__ import annotations

import math
from array import array
from operator import mul
from pathlib import Path

import av
from av.audio.frame import AudioFrame

from helpers import blob_path
from reelm.residency.store import Platform
from reelm.sounds.models import song_blob_key
from reelm.sounds.service import do_seed_demo_songs
from reelm.sounds.synth import DEMO_SONGS, compose


def _levels(path: Path, window_s: float = 0.05) -> tuple[float, list[float], float]:
    """Decoded length in seconds, RMS per window of the left channel, overall RMS in dBFS.
    Every 4th sample is enough to measure a level."""
    windows: list[float] = []
    squares = 0.0
    count = 0
    samples = 0
    rate = 0
    pending = array("f")
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        per_window = int(rate * window_s) // 4
        for frame in container.decode(stream):
            assert isinstance(frame, AudioFrame)
            assert frame.format.name == "fltp"
            samples += frame.samples
            left = array("f", bytes(frame.planes[0])[: 4 * frame.samples])[::4]
            pending.extend(left)
            while len(pending) >= per_window:
                chunk, pending = pending[:per_window], pending[per_window:]
                energy = sum(map(mul, chunk, chunk))
                squares += energy
                count += len(chunk)
                windows.append(math.sqrt(energy / len(chunk)))
    return samples / rate, windows, 10 * math.log10(squares / count)


def test_seeding_demo_songs_is_idempotent_and_they_are_real_tunes(platform: Platform) -> None:
    songs = do_seed_demo_songs(platform)
    assert [s.title for s in songs] == [d.title for d in DEMO_SONGS]
    assert len(songs) >= 12
    assert len({s.sha256 for s in songs}) == len(songs)
    assert len({(d.bpm, d.tonic, d.lead) for d in DEMO_SONGS}) == len(DEMO_SONGS)
    again = do_seed_demo_songs(platform)
    assert [s.id for s in again] == [s.id for s in songs]

    for song, demo in zip(songs, DEMO_SONGS, strict=True):
        assert song.bpm == demo.bpm
        assert song.genre == demo.genre
        assert 20 <= song.duration_s <= 41
        for store in platform.regions.values():
            assert store.blobs.exists(song.blob_key)
        path = blob_path(platform.regions["us"], song_blob_key(song.id))
        with av.open(str(path)) as c:
            audio = c.streams.audio[0]
            assert audio.codec_context.name == "aac"
            assert audio.codec_context.channels == 2
        seconds, windows, rms_db = _levels(path)
        assert abs(seconds - song.duration_s) < 0.2, song.title
        assert -22 < rms_db < -10, (song.title, rms_db)
        # Music, not a steady tone (whose ratio is 1.00): the level moves with beat and notes.
        body = sorted(windows[len(windows) // 10 : -len(windows) // 10])
        assert body[len(body) * 9 // 10] > 1.15 * body[len(body) // 10], song.title


def test_a_song_is_a_melody_over_bass_chords_and_drums() -> None:
    for demo in DEMO_SONGS:
        score = compose(demo)
        lead = score[0]
        assert len({f for _, _, f in lead}) >= 5, demo.title  # a tune, not one note
        assert score[1], demo.title  # a bass line
        assert score[2], demo.title  # chords
        assert score[3] or score[4], demo.title  # a beat
        end = max(start + length for notes in score.values() for start, length, _ in notes)
        assert end <= demo.duration_s + 1e-6
