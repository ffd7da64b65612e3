"""`reelm federation allow|block|instances|deliveries|retry` as an operator runs them."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from reelm.cli import main

CHEAP = {"REELM_ARGON2_TIME_COST": "1", "REELM_ARGON2_MEMORY_KIB": "64",
         "REELM_ARGON2_PARALLELISM": "1"}  # fmt: skip


def test_allow_block_list_instances_and_empty_dead_letter_list(tmp_path: Path) -> None:
    runner = CliRunner()

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, ["--data-dir", str(tmp_path / "data"), *args], env=CHEAP)

    assert run("init").exit_code == 0
    assert run("federation", "allow", "peertube.example").exit_code == 0
    assert run("federation", "block", "Spam.Example").exit_code == 0
    r = run("federation", "instances")
    assert r.exit_code == 0, r.output
    assert "peertube.example" in r.output
    assert "allowed" in r.output
    assert "spam.example" in r.output
    assert "blocked" in r.output
    assert "mode: allowlist" in r.output
    r = run("federation", "allow", "https://x.example/path")
    assert r.exit_code != 0
    assert "not a URL" in r.output
    r = run("federation", "deliveries", "--parked")
    assert r.exit_code == 0
    assert "no parked deliveries" in r.output
    r = run("federation", "retry")
    assert r.exit_code != 0
    assert "--all" in r.output
