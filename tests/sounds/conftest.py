"""Audio generated once per run: a tone (already AAC in .m4a), a WAV (transcoded on import),
tagged files, songs with a loud part, silence and spikes, and the bad inputs an operator might
hand `reelm sounds import`."""

from __future__ import annotations

import math
import wave
from array import array
from pathlib import Path

import av
import pytest
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from mutagen.flac import FLAC
from mutagen.id3 import APIC, ID3, TBPM, TCON, TIT2, TPE1
from mutagen.mp4 import MP4, MP4Cover

from reelm.media.synth import make_test_clip, make_tone
from reelm.sounds.audio import analyse, generated_cover, probe_song, write_song


def write_wav(path: Path, seconds: float, level: object, rate: int = 16_000) -> Path:
    """Mono 16-bit PCM: `level(t)` gives the amplitude (0..1) of a 330 Hz tone at time t."""
    amplitude = level if callable(level) else (lambda t: level)
    samples = array(
        "h",
        (
            int(32000 * amplitude(i / rate) * math.sin(2 * math.pi * 330 * i / rate))
            for i in range(round(seconds * rate))
        ),
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="session")
def quiet_m4a(audio_dir: Path) -> Path:
    """12 s of 440 Hz, stereo AAC in an .m4a at about -22 LUFS: normalised on import."""
    return make_tone(audio_dir / "quiet.m4a", 12.0, 440.0)


@pytest.fixture(scope="session")
def tone_m4a(audio_dir: Path, quiet_m4a: Path) -> Path:
    """The same tone at the catalog's -14 LUFS: imported as it is (quick)."""
    path = audio_dir / "tone.m4a"
    write_song(quiet_m4a, path, probe_song(quiet_m4a), analyse(quiet_m4a))
    return path


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


@pytest.fixture(scope="session")
def art() -> bytes:
    """A JPEG to embed as cover art."""
    return generated_cover("Embedded", "Art", [0.5] * 200)


@pytest.fixture(scope="session")
def tagged_mp3(audio_dir: Path, song_mp3: Path, art: bytes) -> Path:
    """The MP3 with ID3 tags: title, artist, genre, tempo and a front cover."""
    path = audio_dir / "tagged.mp3"
    path.write_bytes(song_mp3.read_bytes())
    tags = ID3()
    tags.add(TIT2(encoding=3, text="Tagged Tune"))
    tags.add(TPE1(encoding=3, text="Zoë Tagger"))
    tags.add(TCON(encoding=3, text="Electro"))
    tags.add(TBPM(encoding=3, text="128"))
    tags.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="cover", data=art))
    tags.save(path)
    return path


@pytest.fixture(scope="session")
def tagged_m4a(audio_dir: Path, tone_m4a: Path) -> Path:
    path = audio_dir / "tagged.m4a"
    path.write_bytes(tone_m4a.read_bytes())
    tags = MP4(path)
    tags["\xa9nam"] = ["Mp4 Title"]
    tags["\xa9ART"] = ["Mp4 Artist"]
    tags["\xa9gen"] = ["Ambient"]
    tags["tmpo"] = [90]
    tags["covr"] = [MP4Cover(b"not a picture at all", imageformat=MP4Cover.FORMAT_PNG)]
    tags.save()
    return path


@pytest.fixture(scope="session")
def tagged_flac(audio_dir: Path, song_wav: Path) -> Path:
    path = audio_dir / "tagged.flac"
    with av.open(str(song_wav)) as source, av.open(str(path), "w") as out:
        flac = out.add_stream("flac", rate=22_050)
        assert isinstance(flac, AudioStream)
        flac.layout = "mono"
        for frame in source.decode(audio=0):
            frame.pts = None
            out.mux(flac.encode(frame))
        out.mux(flac.encode(None))
    tags = FLAC(path)
    tags["title"] = "Flac Title"
    tags["artist"] = "Flac Artist"
    tags["bpm"] = "97.6"
    tags.save()
    return path


@pytest.fixture(scope="session")
def loud_end_wav(audio_dir: Path) -> Path:
    """40 s: quiet for 28 s, then 12 s four times as loud; its loudest 30 s start at 10 s."""
    return write_wav(audio_dir / "loud-end.wav", 40.0, lambda t: 0.05 if t < 28 else 0.2)


@pytest.fixture(scope="session")
def silent_wav(audio_dir: Path) -> Path:
    return write_wav(audio_dir / "silence.wav", 6.0, 0.0)


@pytest.fixture(scope="session")
def spiky_wav(audio_dir: Path) -> Path:
    """A quiet tone with a full-scale click every second: a plain gain up to -14 LUFS would
    clip the clicks, so loudnorm must work dynamically."""
    return write_wav(audio_dir / "spiky.wav", 8.0, lambda t: 1.0 if (t % 1.0) < 0.002 else 0.1)
