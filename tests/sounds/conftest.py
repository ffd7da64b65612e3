"""Audio generated once per run: a tone (already AAC in .m4a), a WAV (transcoded on import),
and the bad inputs an operator might hand `reelm sounds import`."""

from __future__ import annotations

import math
import wave
from array import array
from pathlib import Path

import av
import pytest
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream

from reelm.media.synth import make_test_clip, make_tone


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="session")
def tone_m4a(audio_dir: Path) -> Path:
    """12 s of 440 Hz, stereo AAC in an .m4a: imported as is."""
    return make_tone(audio_dir / "tone.m4a", 12.0, 440.0)


@pytest.fixture(scope="session")
def short_m4a(audio_dir: Path) -> Path:
    return make_tone(audio_dir / "short.m4a", 2.0, 330.0)


@pytest.fixture(scope="session")
def song_wav(audio_dir: Path) -> Path:
    """8 s of mono 16-bit PCM at 22.05 kHz, two alternating notes: transcoded on import."""
    rate = 22_050
    samples = array(
        "h",
        (
            int(8000 * math.sin(2 * math.pi * (262 if (i // rate) % 2 else 392) * i / rate))
            for i in range(8 * rate)
        ),
    )
    path = audio_dir / "song.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


@pytest.fixture(scope="session")
def song_mp3(audio_dir: Path, song_wav: Path) -> Path:
    """The WAV as a 44.1 kHz mono MP3 (LAME): transcoded on import."""
    path = audio_dir / "song.mp3"
    with av.open(str(song_wav)) as source, av.open(str(path), "w") as out:
        mp3 = out.add_stream("libmp3lame", rate=44_100)
        assert isinstance(mp3, AudioStream)
        mp3.layout = "mono"
        resampler = AudioResampler(format="s16p", layout="mono", rate=44_100)
        for frame in source.decode(audio=0):
            frame.pts = None
            for ready in resampler.resample(frame):
                out.mux(mp3.encode(ready))
        out.mux(mp3.encode(None))
    return path


@pytest.fixture(scope="session")
def text_file(audio_dir: Path) -> Path:
    path = audio_dir / "lyrics.mp3"
    path.write_text("Never gonna give you up\n" * 200)
    return path


@pytest.fixture(scope="session")
def silent_video(audio_dir: Path) -> Path:
    """6 s of 64x64 H.264 without any sound."""
    return make_test_clip(
        audio_dir / "silent.mp4", seconds=6.0, width=64, height=64, fps=10, with_audio=False
    )
