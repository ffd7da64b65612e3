"""Tags and file names: what an import knows about a song before anyone types it in."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelm.residency.store import Platform
from reelm.sounds.service import do_import_file, find_audio_files, get_song
from reelm.sounds.tags import name_from_file, read_tags


def test_id3_tags_and_front_cover_of_an_mp3(tagged_mp3: Path, art: bytes) -> None:
    tags = read_tags(tagged_mp3)
    assert (tags.title, tags.artist, tags.genre, tags.bpm) == (
        "Tagged Tune",
        "Zoë Tagger",
        "Electro",
        128,
    )
    assert tags.cover == art


def test_mp4_and_flac_tags(tagged_m4a: Path, tagged_flac: Path) -> None:
    mp4 = read_tags(tagged_m4a)
    assert (mp4.title, mp4.artist, mp4.genre, mp4.bpm) == ("Mp4 Title", "Mp4 Artist", "Ambient", 90)
    assert mp4.cover == b"not a picture at all"  # read as it is; the import checks it
    flac = read_tags(tagged_flac)
    assert (flac.title, flac.artist, flac.bpm) == ("Flac Title", "Flac Artist", 98)


def test_a_file_without_tags_or_with_broken_ones_has_none(song_wav: Path, text_file: Path) -> None:
    for path in (song_wav, text_file):
        tags = read_tags(path)
        assert (tags.title, tags.artist, tags.genre, tags.bpm, tags.cover) == (None,) * 5


@pytest.mark.parametrize(
    ("name", "title", "artist"),
    [
        ("Velvet Coupe - Neon Drift.mp3", "Neon Drift", "Velvet Coupe"),
        ("03 Neon_Drift.flac", "Neon Drift", None),
        ("07 - Kite Avenue – Sunday Skate.m4a", "Sunday Skate", "Kite Avenue"),
        ("1999.wav", "1999", None),
    ],
)
def test_title_and_artist_from_a_file_name(name: str, title: str, artist: str | None) -> None:
    assert name_from_file(Path(name)) == (title, artist)


def test_tags_fill_in_what_the_options_do_not_say(
    platform: Platform, tagged_mp3: Path, tmp_path: Path, song_wav: Path
) -> None:
    tagged = do_import_file(platform, tagged_mp3, genre="House", territories="US")
    assert tagged.song is not None, tagged.error
    song = get_song(platform, tagged.song.id)
    assert (song.title, song.artist, song.genre, song.bpm) == (
        "Tagged Tune",
        "Zoë Tagger",
        "House",
        128,
    )
    assert song.territories == "US"
    assert song.cover == "embedded"
    named = tmp_path / "Mira Sol - Lo-Fi Library.wav"
    named.write_bytes(song_wav.read_bytes())
    by_name = do_import_file(platform, named, bpm=78)
    assert by_name.song is not None, by_name.error
    assert (by_name.song.title, by_name.song.artist, by_name.song.bpm) == (
        "Lo-Fi Library",
        "Mira Sol",
        78,
    )
    plain = tmp_path / "untitled.wav"
    plain.write_bytes(song_wav.read_bytes())
    overridden = do_import_file(platform, plain, title="Given", artist="By Hand")
    assert overridden.song is not None
    assert (overridden.song.title, overridden.song.artist) == ("Given", "By Hand")
    unknown = do_import_file(platform, plain)
    assert unknown.song is not None
    assert (unknown.song.title, unknown.song.artist) == ("untitled", "Unknown artist")


def test_one_bad_file_is_an_outcome_not_an_exception(
    platform: Platform, text_file: Path, tagged_mp3: Path
) -> None:
    bad = do_import_file(platform, text_file)
    assert bad.song is None
    assert bad.error is not None
    assert "not an audio file" in bad.error
    assert do_import_file(platform, tagged_mp3).song is not None
    again = do_import_file(platform, tagged_mp3)
    assert again.song is None
    assert again.skipped is not None
    assert "already in the catalog" in again.skipped


def test_a_folder_is_searched_recursively_for_audio_files(tmp_path: Path) -> None:
    for name in ("a.mp3", "sub/b.FLAC", "sub/deeper/c.m4a", "notes.txt", ".hidden/d.mp3", "e.ogg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_audio_files(tmp_path)]
    assert found == ["a.mp3", "e.ogg", "sub/b.FLAC", "sub/deeper/c.m4a"]
    assert find_audio_files(tmp_path / "notes.txt") == [tmp_path / "notes.txt"]
