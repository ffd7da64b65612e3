"""The one way around the residency hooks is named: `RegionStore.unchecked_connection(reason=...)`.

A region's engine is private; ruff's SLF001 refuses `store._engine` outside the store, and no module
but the store opens a database engine of its own.
"""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from reelm.residency.store import Platform, RegionStore

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "reelm"


def test_a_region_store_has_no_public_engine(platform: Platform) -> None:
    store = platform.regions["us"]
    assert not hasattr(store, "engine")
    assert "engine" not in vars(RegionStore)


def test_unchecked_connection_needs_a_reason_and_logs_it(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    store = platform.regions["us"]
    with pytest.raises(TypeError):
        store.unchecked_connection().__enter__()  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="reason"), store.unchecked_connection(reason="  "):
        pass
    with (
        caplog.at_level(logging.DEBUG, logger="reelm.residency.store"),
        store.unchecked_connection(reason="test: count accounts") as conn,
    ):
        assert conn.execute(text("SELECT count(*) FROM accounts")).scalar_one() >= 0
    assert any(
        "region us" in r.getMessage() and "test: count accounts" in r.getMessage()
        for r in caplog.records
    )


def test_only_the_store_opens_database_engines() -> None:
    """`make_engine` / `create_engine` elsewhere in src would be a door around the hooks."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "residency" / "store.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in ("make_engine", "create_engine"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert found == []


def test_ruff_refuses_the_private_engine_outside_the_store() -> None:
    source = "def rows(store):\n    return store._engine.connect()\n"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--stdin-filename",
            "src/reelm/carveout/sneaky.py",
            "-",
        ],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "SLF001" in result.stdout
