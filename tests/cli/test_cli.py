"""The `reelm` command as an operator uses it, on an embedded (SQLite) data folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, insert

from reelm.accounts.models import Account
from reelm.cli import main
from reelm.db import utcnow
from reelm.residency.policy import BUILTIN_POLICIES, builtin_policy_text

CHEAP = {
    "REELM_ARGON2_TIME_COST": "1",
    "REELM_ARGON2_MEMORY_KIB": "64",
    "REELM_ARGON2_PARALLELISM": "1",
}


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, ["--data-dir", str(tmp_path / "data"), *args], env=CHEAP)

    return invoke


def test_policy_check_prints_the_assignment_table(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "p.toml"
    path.write_text(builtin_policy_text("demo"))
    (tmp_path / "staff-access.cedar").write_text(
        (BUILTIN_POLICIES / "staff-access.cedar").read_text()
    )
    r = run("policy", "check", str(path))
    assert r.exit_code == 0, r.output
    assert "USDS Joint Venture LLC" in r.output
    assert "everyone else" in r.output
    assert "policy is valid" in r.output


def test_policy_check_rejects_a_bad_policy_with_a_clear_message(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.toml"
    path.write_text(builtin_policy_text("demo").replace('location = "SG"', 'location = "CN"'))
    r = run("policy", "check", str(path))
    assert r.exit_code == 2
    assert "never_store_in" in r.output
    assert "Fix:" in r.output
    assert "Traceback" not in r.output


def test_demo_then_scan_is_clean_and_a_planted_row_is_found(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    r = run("demo", "--no-videos")  # the demo videos have their own test (tests/test_demo.py)
    assert r.exit_code == 0, r.output
    assert "reelm-demo-password" in r.output
    listed = run("users", "list")
    assert "ava" in listed.output
    assert "yuki" in listed.output
    clean = run("residency", "scan")
    assert clean.exit_code == 0, clean.output
    assert "0 violations" in clean.output

    # A US user's account copied into the SG database by hand.
    ava_id = next(
        line.split("│")[4].strip() for line in listed.output.splitlines() if "│ ava " in line
    )
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'regions' / 'sg.db'}")
    with engine.begin() as conn:
        conn.execute(
            insert(Account.__table__).values(
                id="planted-row",
                owner_id=ava_id,
                handle="ava",
                email_ct=b"x",
                password_hash="x",
                birth_date_ct=b"x",
                jurisdiction="US",
                display_name="",
                bio="",
                is_private=False,
                created_at=utcnow(),
            )
        )
    dirty = run("residency", "scan")
    assert dirty.exit_code == 1
    assert "VIOLATION" in dirty.output
    assert "planted-row" in dirty.output
    assert "home region 'us'" in dirty.output
    assert "1 violation" in dirty.output


def test_demo_is_idempotent(run) -> None:  # type: ignore[no-untyped-def]
    assert run("demo", "--no-videos").exit_code == 0
    again = run("demo", "--no-videos")
    assert again.exit_code == 0
    assert run("users", "list").output.count("│ ava ") == 1


def test_demo_with_before_policy_keeps_everyone_in_sg(run) -> None:  # type: ignore[no-untyped-def]
    r = run("demo", "--policy", "before-2020", "--no-videos")
    assert r.exit_code == 0, r.output
    listed = run("users", "list").output
    assert "│ us " not in listed
    assert listed.count("│ sg ") == 9


def test_unknown_builtin_policy_is_a_clear_error(run) -> None:  # type: ignore[no-untyped-def]
    r = run("init", "--policy", "nonsense")
    assert r.exit_code == 2
    assert "No built-in policy named 'nonsense'" in r.output


def test_policy_check_rejects_a_bad_staff_access_file(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "p.toml"
    path.write_text(builtin_policy_text("demo"))
    (tmp_path / "staff-access.cedar").write_text(
        "permit (principal is Staff, action, resource) when { principal.shoe_size > 3 };"
    )
    r = run("policy", "check", str(path))
    assert r.exit_code == 2
    assert "staff-access.cedar" in r.output
    assert "staff_access.policies" in r.output
    assert "Fix:" in r.output


def test_init_creates_each_regions_audit_key_and_logs_the_policy(run) -> None:  # type: ignore[no-untyped-def]
    assert run("init").exit_code == 0
    for region in ("us", "sg"):
        key = run("audit", "key", "--region", region)
        assert key.exit_code == 0, key.output
        assert key.output.strip().startswith(f"reelm.example/{region}+")
        entries = run("audit", "entries", "--region", region)
        assert "policy_change" in entries.output
