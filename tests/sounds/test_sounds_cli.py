"""`reelm sounds import` (a file or a folder), `list` and `sync` on an embedded data folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reelm.cli import main


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, ["--data-dir", str(tmp_path / "data"), *args])

    assert invoke("init").exit_code == 0
    return invoke


def test_import_then_list(run, tmp_path: Path, tone_m4a: Path) -> None:  # type: ignore[no-untyped-def]
    r = run(
        "sounds", "import", str(tone_m4a), "--title", "Cli Tone", "--artist", "Lab",
        "--genre", "Test", "--territories", "US,CA",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())  # the console wraps long lines
    assert "tone.m4a: “Cli Tone” by Lab, 12.0 s, -14.0 LUFS" in said
    assert "imported 1 of 1 file into 2 regions; 0 already in the catalog; 0 failed" in said
    for region in ("us", "sg"):
        blobs = tmp_path / "data" / "regions" / region / "blobs"
        assert len(list(blobs.rglob("*.preview.m4a"))) == 1
        assert len(list(blobs.rglob("*.m4a"))) == 2
        assert len(list(blobs.rglob("*.jpg"))) == 1
    listed = run("sounds", "list")
    assert listed.exit_code == 0
    assert "Cli Tone" in listed.output
    assert "CA,US" in listed.output
    assert "Cli Tone" not in run("sounds", "list", "--search", "nothing").output


def test_import_of_a_bad_file_is_one_clear_line(run, text_file: Path) -> None:  # type: ignore[no-untyped-def]
    r = run("sounds", "import", str(text_file), "--title", "T", "--artist", "A")
    assert r.exit_code == 2
    assert "not an audio file" in r.output
    assert "Traceback" not in r.output
    r = run(
        "sounds", "import", str(text_file), "--title", "T", "--artist", "A", "--territories", "ZZ"
    )
    assert r.exit_code == 2
    assert "Unknown territory ZZ" in r.output


def test_a_folder_imports_every_song_and_reports_each_failure(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, tagged_mp3: Path, song_wav: Path, text_file: Path
) -> None:
    folder = tmp_path / "music"
    (folder / "albums" / "lofi").mkdir(parents=True)
    (folder / "copies").mkdir()
    (folder / "tagged.mp3").write_bytes(tagged_mp3.read_bytes())
    (folder / "copies" / "again.mp3").write_bytes(tagged_mp3.read_bytes())
    (folder / "albums" / "lofi" / "Mira Sol - Lo-Fi Library.wav").write_bytes(song_wav.read_bytes())
    (folder / "albums" / "lyrics.mp3").write_bytes(text_file.read_bytes())
    (folder / "cover.txt").write_text("not a song")
    r = run("sounds", "import", str(folder), "--territories", "US,SG")
    said = " ".join(r.output.split())
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert "albums/lofi/Mira Sol - Lo-Fi Library.wav: “Lo-Fi Library” by Mira Sol" in said
    assert "tagged.mp3: “Tagged Tune” by Zoë Tagger" in said
    assert "= tagged.mp3: “Tagged Tune” by Zoë Tagger is already in the catalog" in said
    assert "error: albums/lyrics.mp3: lyrics.mp3 is not an audio file" in said
    assert "imported 2 of 4 files into 2 regions; 1 already in the catalog; 1 failed" in said
    listed = " ".join(run("sounds", "list", "--search", "lo-fi lib").output.split())
    assert "Mira Sol" in listed  # the table wraps long titles
    # Running it again imports nothing twice.
    again = " ".join(run("sounds", "import", str(folder)).output.split())
    assert "imported 0 of 4 files into 2 regions; 3 already in the catalog; 1 failed" in again


def test_a_title_cannot_name_a_whole_folder(run, tmp_path: Path, tagged_mp3: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("a.mp3", "b.mp3"):
        (folder / name).write_bytes(tagged_mp3.read_bytes())
    r = run("sounds", "import", str(folder), "--title", "Same")
    assert r.exit_code == 2
    assert "--title and --artist name one song" in r.output
    r = run("sounds", "import", str(tmp_path / "nowhere"))
    assert r.exit_code == 2
    assert "No such file or folder" in r.output


def test_sync_restores_every_file_of_a_song(run, tmp_path: Path, tone_m4a: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("sounds", "import", str(tone_m4a), "--title", "T", "--artist", "A").exit_code == 0
    sg = tmp_path / "data" / "regions" / "sg" / "blobs"
    for path in sg.rglob("*"):
        if path.is_file():
            path.unlink()
    r = run("sounds", "sync")
    assert r.exit_code == 0, r.output
    assert "copied 3 song files" in r.output
    assert len([p for p in sg.rglob("*") if p.is_file()]) == 3
