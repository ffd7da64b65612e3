"""`reelm audit ...` as an operator, an auditor and a witness run it (HTTP on loopback only)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from reelm.audit.checkpoint import Signer, Verifier, verify_note
from reelm.audit.entries import StaffAccess
from reelm.audit.log import RegionLog
from reelm.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from reelm.audit.schemas import unb64
from reelm.cli import main
from reelm.config import Settings
from reelm.residency.policy import BUILTIN_POLICIES
from reelm.residency.store import Platform

MakeAccess = Callable[[int], StaffAccess]
Run = Callable[..., Result]


@pytest.fixture
def run(migrated: Any, settings: Settings, platform: Platform) -> Run:
    """`reelm --data-dir <the test data dir> ...` against the test databases."""
    env = {
        "REELM_GLOBAL_DATABASE_URL": migrated.global_url,
        "REELM_REGION_DATABASE_URLS": json.dumps(migrated.regions),
        "REELM_POLICY_FILE": str(BUILTIN_POLICIES / "demo.toml"),
    }
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, ["--data-dir", str(settings.data_dir), *args], env=env)

    return invoke


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.stdout


def clear(log: RegionLog) -> None:
    with log.store.unchecked_connection(reason="test: write below the hooks") as conn, conn.begin():
        for table in ("audit_entries", "audit_nodes", "audit_checkpoints", "audit_head"):
            conn.execute(text(f"DELETE FROM {table}"))


def fill(log: RegionLog, make_access: MakeAccess, start: int, count: int) -> None:
    log.record_now(*[make_access(i) for i in range(start, start + count)])


def test_key_checkpoint_proofs_and_entries(
    run: Run, us_log: RegionLog, make_access: MakeAccess
) -> None:
    fill(us_log, make_access, 0, 10)
    vkey = ok(run("audit", "key", "--region", "us")).strip()
    key = Verifier.from_vkey(vkey)
    assert key.name == "reelm.example/us"
    note = ok(run("audit", "checkpoint", "--region", "us"))
    checkpoint = verify_note(note, key)
    assert checkpoint.size == 10

    lines = ok(run("audit", "entries", "--region", "us", "--from", "2", "--to", "5")).splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["index"] for e in entries] == [2, 3, 4]
    assert entries[0]["entry"]["kind"] == "staff_access"

    proof: dict[str, Any] = json.loads(
        ok(run("audit", "prove-inclusion", "--region", "us", "--index", "3"))
    )
    data = bytes(us_log.entries(3, 4)[0].data)
    verify_inclusion(leaf_hash(data), 3, 10, [unb64(h) for h in proof["proof"]], checkpoint.root)
    c = json.loads(
        ok(run("audit", "prove-consistency", "--region", "us", "--from", "4", "--to", "10"))
    )
    verify_consistency(4, 10, [unb64(h) for h in c["proof"]], us_log.root(4), checkpoint.root)

    assert "10 entries and every stored node match" in run("audit", "fsck", "--region", "us").output


def test_cli_errors_are_one_clear_line(
    run: Run, us_log: RegionLog, make_access: MakeAccess
) -> None:
    fill(us_log, make_access, 0, 2)
    r = run("audit", "prove-inclusion", "--region", "us", "--index", "7")
    assert r.exit_code == 2
    assert "entry 7 is not in a tree of size 2" in r.output
    assert "Traceback" not in r.output
    ok(run("audit", "key", "--region", "us"))
    r = run("audit", "key", "--region", "us", "--origin", "other.example/us")
    assert r.exit_code == 2
    assert "already exists under the origin 'reelm.example/us'" in r.output


def test_verify_over_http_advances_then_fails_loudly_after_a_changed_entry(
    run: Run, live_url: str, tmp_path: Path, us_log: RegionLog, make_access: MakeAccess
) -> None:
    state = tmp_path / "auditor" / "us.checkpoint"
    vkey = ok(run("audit", "key", "--region", "us")).strip()
    url = f"{live_url}/audit/us"
    fill(us_log, make_access, 0, 7)
    r = run("audit", "verify", "--key", vkey, "--state", str(state), "--url", url)
    ok(r)
    assert "VERIFIED" in r.stderr
    assert "from nothing (first run) to size 7" in r.stderr
    assert verify_note(state.read_text(), Verifier.from_vkey(vkey)).size == 7

    fill(us_log, make_access, 7, 20)
    key_file = tmp_path / "us.vkey"
    key_file.write_text(vkey + "\n")
    r = run("audit", "verify", "--key", str(key_file), "--state", str(state), "--url", url)
    ok(r)
    assert "from size 7 to size 27; 20 new entries included (20 staff_access)" in r.stderr
    verified = state.read_text()

    fill(us_log, make_access, 27, 3)
    with (
        us_log.store.unchecked_connection(reason="test: write below the hooks") as conn,
        conn.begin(),
    ):
        conn.execute(
            text("UPDATE audit_entries SET data = :d, leaf_hash = :h WHERE idx = 28"),
            {
                "d": b'{"v":1,"kind":"staff_access"}',
                "h": leaf_hash(b'{"v":1,"kind":"staff_access"}'),
            },
        )
    r = run("audit", "verify", "--key", vkey, "--state", str(state), "--url", url)
    assert r.exit_code == 1
    assert "FAILED" in r.stderr
    assert "do not hash to the signed root" in r.stderr
    assert "left unchanged" in r.stderr
    assert state.read_text() == verified


def test_verify_reads_a_data_folder_too(
    run: Run, tmp_path: Path, settings: Settings, us_log: RegionLog, make_access: MakeAccess
) -> None:
    fill(us_log, make_access, 0, 3)
    vkey = ok(run("audit", "key", "--region", "us")).strip()
    state = tmp_path / "state"
    args = ("--key", vkey, "--state", str(state), "--data-dir", str(settings.data_dir))
    r = run("audit", "verify", *args, "--region", "us")
    ok(r)
    assert "to size 3" in r.stderr
    r = run("audit", "verify", "--key", vkey, "--state", str(state))
    assert r.exit_code == 2
    assert "--url" in r.output


def test_witness_cosigns_a_consistent_log_and_refuses_a_fork_and_a_rollback(
    run: Run,
    live_url: str,
    tmp_path: Path,
    platform: Platform,
    us_log: RegionLog,
    make_access: MakeAccess,
) -> None:
    witness_key = tmp_path / "witness.key"
    witness_vkey = ok(
        run("audit", "keygen", "--name", "witness.example.org", "--out", str(witness_key))
    )
    assert Signer.load(witness_key).verifier.vkey() == witness_vkey.strip()
    vkey = ok(run("audit", "key", "--region", "us")).strip()
    state = tmp_path / "witness-state"
    witness = (
        "audit",
        "witness",
        "--key",
        vkey,
        "--state",
        str(state),
        "--witness-key",
        str(witness_key),
    )
    url = f"{live_url}/audit/us"

    fill(us_log, make_access, 0, 5)
    cosigned = ok(run(*witness, "--url", url))
    verify_note(cosigned, Verifier.from_vkey(witness_vkey.strip()))  # the witness signed it
    fill(us_log, make_access, 5, 6)
    cosigned = ok(run(*witness, "--url", url))
    assert verify_note(cosigned, Verifier.from_vkey(vkey)).size == 11

    # a second log under the same key with other entries: the `sg` database, signed as us
    fork = RegionLog(platform.region("sg"), us_log.key_dir)
    clear(fork)
    fork.record_now(*[make_access(1000 + i) for i in range(14)])
    fork_note = tmp_path / "fork.checkpoint"
    fork_note.write_text(fork.sign_checkpoint())
    fork_proof = tmp_path / "fork.proof"
    fork_proof.write_text(json.dumps(fork.consistency_proof(11).model_dump()))
    r = run(*witness, "--checkpoint", str(fork_note), "--proof", str(fork_proof))
    assert r.exit_code == 1, r.output
    assert "REFUSED (fork)" in r.stderr
    assert "size 14 root" in r.stderr
    assert "size 11 root" in r.stderr
    assert verify_note(state.read_text(), Verifier.from_vkey(vkey)).size == 11

    clear(fork)
    fork.record_now(*[make_access(i) for i in range(3)])
    rollback = tmp_path / "rollback.checkpoint"
    rollback.write_text(fork.sign_checkpoint())
    r = run(*witness, "--checkpoint", str(rollback))
    assert r.exit_code == 1
    assert "REFUSED (rollback)" in r.stderr
    assert "size 3 root" in r.stderr

    # the honest log keeps being cosigned
    fill(us_log, make_access, 11, 2)
    assert verify_note(ok(run(*witness, "--url", url)), Verifier.from_vkey(vkey)).size == 13
