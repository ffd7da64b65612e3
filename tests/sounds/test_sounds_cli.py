"""`reelm sounds import` and `reelm sounds list` on an embedded data folder."""

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
    assert "imported “Cli Tone” by Lab" in said
    assert "copied to 2 regions" in said
    for region in ("us", "sg"):
        assert len(list((tmp_path / "data" / "regions" / region / "blobs").rglob("*.m4a"))) == 1
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
