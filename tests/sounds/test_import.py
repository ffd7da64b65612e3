"""Importing songs: probe, transcode, one checked copy per region, clear refusals."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import av
import pytest
from sqlalchemy import func, select

from helpers import blob_path
from reelm.errors import Conflict, Forbidden, InvalidInput, NotFound
from reelm.residency.store import Platform
from reelm.sounds.audio import (
    LOUDNESS_LUFS,
    TRUE_PEAK_DBTP,
    WAVEFORM_POINTS,
    analyse,
    generated_cover,
)
from reelm.sounds.models import Song, song_blob_key
from reelm.sounds.service import (
    check_song_licensed,
    do_complete_songs,
    do_count_song_use,
    do_import_song,
    do_replicate_songs,
    get_song,
    is_licensed_in,
    song_file,
)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _song_count(platform: Platform) -> int:
    with platform.global_store.session() as g:
        return int(g.scalar(select(func.count()).select_from(Song)) or 0)


def _catalog_blobs(platform: Platform) -> list[str]:
    return [k for store in platform.regions.values() for k in store.blobs.keys("catalog")]


def test_imported_song_is_in_every_regions_blob_store_with_the_same_sha256(
    platform: Platform, tone_m4a: Path
) -> None:
    song = do_import_song(
        platform, path=tone_m4a, title="Test Tone", artist="Lab", territories="us, ca"
    )
    assert set(platform.regions) == {"us", "sg"}
    for store in platform.regions.values():
        key = f"catalog/songs/{song.id}.m4a"
        assert store.blobs.exists(key)
        assert _sha(blob_path(store, song_blob_key(song.id))) == song.sha256
        assert store.blobs.size(key) == song.size_bytes
    stored = get_song(platform, song.id)
    assert stored.territories == "CA,US"
    assert stored.duration_s == pytest.approx(12.0, abs=0.1)
    assert stored.use_count == 0
    with av.open(str(blob_path(platform.regions["sg"], song_blob_key(song.id)))) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        assert not c.streams.video
    # The preview and the cover are in every region too.
    for store in platform.regions.values():
        assert store.blobs.exists(f"catalog/songs/{song.id}.preview.m4a")
        assert store.blobs.read_bytes(f"catalog/songs/{song.id}.jpg")[:2] == b"\xff\xd8"


@pytest.mark.parametrize("fixture", ["song_wav", "song_mp3"])
def test_wav_and_mp3_are_transcoded_to_stereo_aac_in_m4a(
    platform: Platform, request: pytest.FixtureRequest, fixture: str
) -> None:
    source: Path = request.getfixturevalue(fixture)
    song = do_import_song(platform, path=source, title="Two Notes", artist="Lab", bpm=60)
    path = blob_path(platform.regions["us"], song_blob_key(song.id))
    with av.open(str(path)) as c:
        audio = c.streams.audio[0]
        assert c.format.name.startswith("mov")
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.channels == 2
        assert audio.codec_context.sample_rate in (44_100, 48_000)
        assert 90_000 < (audio.bit_rate or 0) < 160_000
    assert song.duration_s == pytest.approx(8.0, abs=0.1)
    assert song.bpm == 60
    assert (
        _sha(path) == song.sha256 == _sha(blob_path(platform.regions["sg"], song_blob_key(song.id)))
    )


@pytest.mark.parametrize(
    ("fixture", "code", "words"),
    [
        ("text_file", "not_audio", "not an audio file"),
        ("silent_video", "no_audio_stream", "no sound"),
        ("short_m4a", "too_short", "at least 5 seconds"),
        ("silent_wav", "silent_audio", "is silent"),
    ],
)
def test_a_bad_input_is_refused_clearly_and_nothing_is_stored(
    platform: Platform, request: pytest.FixtureRequest, fixture: str, code: str, words: str
) -> None:
    path: Path = request.getfixturevalue(fixture)
    with pytest.raises(InvalidInput) as caught:
        do_import_song(platform, path=path, title="Bad", artist="Input")
    assert caught.value.code == code
    assert words in caught.value.message
    assert _song_count(platform) == 0
    assert _catalog_blobs(platform) == []


def test_empty_and_missing_files_are_refused(platform: Platform, tmp_path: Path) -> None:
    empty = tmp_path / "empty.m4a"
    empty.touch()
    with pytest.raises(InvalidInput) as caught:
        do_import_song(platform, path=empty, title="x", artist="y")
    assert caught.value.code == "empty_file"
    with pytest.raises(InvalidInput) as caught:
        do_import_song(platform, path=tmp_path / "nope.m4a", title="x", artist="y")
    assert caught.value.code == "missing_file"


@pytest.mark.parametrize(
    ("territories", "words"),
    [
        ("US,XX", "Unknown territory XX"),
        ("*,US", "* alone"),
        (" , ", "Name the territories"),
    ],
)
def test_bad_territories_are_refused_before_any_work(
    platform: Platform, tone_m4a: Path, territories: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        do_import_song(platform, path=tone_m4a, title="T", artist="A", territories=territories)
    assert words in caught.value.message
    assert _catalog_blobs(platform) == []


def test_the_same_title_and_artist_cannot_be_imported_twice(
    platform: Platform, tone_m4a: Path
) -> None:
    do_import_song(platform, path=tone_m4a, title="Once", artist="Only")
    with pytest.raises(Conflict) as caught:
        do_import_song(platform, path=tone_m4a, title="ONCE", artist="only")
    assert "already in the catalog" in caught.value.message
    assert _song_count(platform) == 1


def test_licensing_worldwide_and_by_territory(platform: Platform, tone_m4a: Path) -> None:
    anywhere = do_import_song(platform, path=tone_m4a, title="Anywhere", artist="A")
    north = do_import_song(
        platform, path=tone_m4a, title="North", artist="A", territories=["ca", "US"]
    )
    assert is_licensed_in(anywhere, "BR")
    assert is_licensed_in(north, "US")
    assert is_licensed_in(north, "ca")
    assert not is_licensed_in(north, "SG")
    check_song_licensed(north, "CA")
    with pytest.raises(Forbidden) as caught:
        check_song_licensed(north, "SG")
    assert caught.value.code == "song_not_licensed"
    assert "not licensed in Singapore" in caught.value.message


def test_a_lost_copy_is_restored_from_another_region(platform: Platform, tone_m4a: Path) -> None:
    song = do_import_song(platform, path=tone_m4a, title="Restore Me", artist="A")
    sg = platform.regions["sg"]
    sg.blobs.delete(song.blob_key)
    with pytest.raises(NotFound) as caught, song_file(sg, song.id):
        pass
    assert caught.value.code == "song_file_missing"
    assert do_replicate_songs(platform) == 1
    assert _sha(blob_path(sg, song_blob_key(song.id))) == song.sha256
    # A copy of the right size but wrong content is found only when verifying.
    damaged = blob_path(sg, song_blob_key(song.id))
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    assert do_replicate_songs(platform) == 0
    assert do_replicate_songs(platform, verify=True) == 1
    assert _sha(blob_path(sg, song_blob_key(song.id))) == song.sha256


def test_use_count_moves_atomically_and_never_below_zero(
    platform: Platform, tone_m4a: Path
) -> None:
    song = do_import_song(platform, path=tone_m4a, title="Counted", artist="A")
    with platform.global_store.transaction() as g:
        do_count_song_use(g, song.id)
        do_count_song_use(g, song.id)
        do_count_song_use(g, song.id, -1)
    assert get_song(platform, song.id).use_count == 1
    with platform.global_store.transaction() as g:
        do_count_song_use(g, song.id, -5)
    assert get_song(platform, song.id).use_count == 1


def test_unknown_song_is_not_found(platform: Platform) -> None:
    with pytest.raises(NotFound):
        get_song(platform, "0" * 32)


def test_an_import_that_fails_to_copy_leaves_no_file_anywhere(
    platform: Platform, tone_m4a: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sg = platform.regions["sg"]
    real_put = sg.blobs.put_file

    def broken_put(key: str, source: Path) -> None:
        real_put(key, source)
        raise OSError("disk full")

    monkeypatch.setattr(sg.blobs, "put_file", broken_put)
    with pytest.raises(OSError, match="disk full"):
        do_import_song(platform, path=tone_m4a, title="Half", artist="Way")
    assert _catalog_blobs(platform) == []
    assert _song_count(platform) == 0


def _decoded_seconds(path: Path) -> float:
    with av.open(str(path)) as c:
        return sum(f.samples / f.sample_rate for f in c.decode(audio=0))


@pytest.mark.parametrize("fixture", ["quiet_m4a", "song_wav", "spiky_wav"])
def test_imported_songs_play_at_minus_14_lufs(
    platform: Platform, request: pytest.FixtureRequest, fixture: str
) -> None:
    """A quiet tone and a WAV are brought up by a plain gain; one whose clicks a gain would
    clip is normalised dynamically. Each is measured again, on the stored file."""
    source: Path = request.getfixturevalue(fixture)
    before = analyse(source)
    song = do_import_song(platform, path=source, title=fixture, artist="Lab")
    stored = analyse(blob_path(platform.regions["us"], song_blob_key(song.id)))
    assert abs(before.loudness_lufs - LOUDNESS_LUFS) > 1.5, "the fixture must need normalising"
    assert stored.loudness_lufs == pytest.approx(LOUDNESS_LUFS, abs=1.0)
    assert stored.true_peak_dbtp <= TRUE_PEAK_DBTP + 1.0
    assert song.loudness_lufs == pytest.approx(stored.loudness_lufs, abs=1.0)


def test_a_song_already_at_the_target_is_stored_as_it_is(
    platform: Platform, tone_m4a: Path
) -> None:
    assert analyse(tone_m4a).loudness_lufs == pytest.approx(LOUDNESS_LUFS, abs=0.5)
    song = do_import_song(platform, path=tone_m4a, title="Ready", artist="Lab")
    assert song.sha256 == _sha(tone_m4a)  # the very same bytes: no second lossy encode


def test_the_preview_is_the_loudest_30_seconds_and_the_waveform_its_shape(
    platform: Platform, loud_end_wav: Path
) -> None:
    song = do_import_song(platform, path=loud_end_wav, title="Late Drop", artist="Lab")
    assert song.duration_s == pytest.approx(40.0, abs=0.1)
    assert song.preview_start_s == pytest.approx(10.0, abs=0.5)
    preview = blob_path(platform.regions["sg"], f"catalog/songs/{song.id}.preview.m4a")
    assert _decoded_seconds(preview) == pytest.approx(30.0, abs=0.1)
    # The preview ends where the song does: in the loud part.
    assert analyse(preview).loudness_lufs == pytest.approx(LOUDNESS_LUFS + 1.5, abs=2.5)
    peaks = get_song(platform, song.id).peaks
    assert len(peaks) == WAVEFORM_POINTS
    assert all(0 <= p <= 1 for p in peaks)
    quiet, loud = peaks[10:130], peaks[150:190]  # 2-26 s and 30-38 s
    assert max(quiet) * 3 < min(loud)


def test_a_short_song_is_its_own_preview(platform: Platform, tone_m4a: Path) -> None:
    song = do_import_song(platform, path=tone_m4a, title="Short", artist="Lab")
    us = platform.regions["us"].blobs
    assert song.preview_start_s == 0.0
    assert us.read_bytes(f"catalog/songs/{song.id}.preview.m4a") == us.read_bytes(song.blob_key)


def test_cover_is_the_embedded_art_else_drawn_from_the_title(
    platform: Platform, tone_m4a: Path, art: bytes
) -> None:
    drawn = do_import_song(platform, path=tone_m4a, title="Drawn", artist="Lab")
    framed = do_import_song(platform, path=tone_m4a, title="Framed", artist="Lab", cover_art=art)
    broken = do_import_song(
        platform, path=tone_m4a, title="Broken Art", artist="Lab", cover_art=b"\x89PNG nope"
    )
    assert (drawn.cover, framed.cover, broken.cover) == ("generated", "embedded", "generated")
    us = platform.regions["us"].blobs
    covers = [us.read_bytes(f"catalog/songs/{s.id}.jpg") for s in (drawn, framed)]
    for jpeg in covers:
        with av.open(io.BytesIO(jpeg), format="jpeg_pipe") as c:
            picture = next(c.decode(video=0))
            assert (picture.width, picture.height) == (512, 512)
    assert covers[0] != covers[1]
    # Each song's colours are its own: a different title draws a different cover.
    assert generated_cover("Drawn", "Lab", []) != generated_cover("Other", "Lab", [])


def test_songs_from_before_previews_get_theirs_on_sync(platform: Platform, tone_m4a: Path) -> None:
    song = do_import_song(platform, path=tone_m4a, title="Older", artist="Lab")
    with platform.global_store.transaction() as g:  # as migration g0030 left older songs
        row = g.get(Song, song.id)
        assert row is not None
        row.preview_start_s = row.cover = row.waveform = row.loudness_lufs = None
    for store in platform.regions.values():
        store.blobs.delete(f"catalog/songs/{song.id}.preview.m4a")
        store.blobs.delete(f"catalog/songs/{song.id}.jpg")
    assert do_complete_songs(platform) == 1
    completed = get_song(platform, song.id)
    assert completed.preview_start_s == 0.0
    assert completed.cover == "generated"
    assert len(completed.peaks) == WAVEFORM_POINTS
    assert completed.loudness_lufs == pytest.approx(LOUDNESS_LUFS, abs=1.0)
    assert completed.sha256 == song.sha256  # the audio itself is kept as it was
    for store in platform.regions.values():
        assert store.blobs.exists(f"catalog/songs/{song.id}.preview.m4a")
        assert store.blobs.exists(f"catalog/songs/{song.id}.jpg")
    assert do_complete_songs(platform) == 0
