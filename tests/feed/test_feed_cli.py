"""`reelm feed train` as an operator runs it, on an embedded (SQLite) data folder."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from reelm.cli import main

CHEAP = {
    "REELM_ARGON2_TIME_COST": "1",
    "REELM_ARGON2_MEMORY_KIB": "64",
    "REELM_ARGON2_PARALLELISM": "1",
}


def test_feed_train_writes_one_model_per_region_into_its_work_folder(tmp_path: Path) -> None:
    runner = CliRunner()
    data = tmp_path / "data"
    assert runner.invoke(main, ["--data-dir", str(data), "init"], env=CHEAP).exit_code == 0
    result = runner.invoke(main, ["--data-dir", str(data), "feed", "train"], env=CHEAP)
    assert result.exit_code == 0, result.output
    assert "region us:" in result.output
    assert "region sg:" in result.output
    models = sorted(p.relative_to(data).as_posix() for p in data.rglob("foryou.npz"))
    assert len(models) == 2
    assert len({m.split("/model/")[0] for m in models}) == 2  # one per region's work folder
    only = runner.invoke(main, ["--data-dir", str(data), "feed", "train", "--region", "sg"])
    assert only.exit_code == 0, only.output
    assert "region sg:" in only.output
    assert "region us:" not in only.output
