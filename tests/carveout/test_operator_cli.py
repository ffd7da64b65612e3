"""The 2020 deal as an operator runs it, from `reelm demo --policy before-2020` (everyone in
`sg`), with real `reelm` processes only: US, CA, AU and NZ moved to `us` (killed with -9 half-way,
then resumed), and, in a second deployment pair, handed to another operator's deployment with a
bundle and a receipt. Each deployment is a data folder of its own: SQLite files there (the
embedded default), or PostgreSQL databases of their own in the PostgreSQL pass."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import BACKEND
from reelm.config import Settings
from reelm.demo import DEMO_PASSWORD
from reelm.web.app import create_app

CHEAP = {
    "REELM_ARGON2_TIME_COST": "1",
    "REELM_ARGON2_MEMORY_KIB": "64",
    "REELM_ARGON2_PARALLELISM": "1",
}
MOVERS = ("ava", "liam", "olivia", "jack")  # US, CA, AU, NZ
STAYERS = ("mei", "lucas", "amelie", "aarav", "yuki")


@dataclass
class Deployment:
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def reelm(self, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REELM_")}
        env |= CHEAP | self.env | {"REELM_DATA_DIR": str(self.data_dir), "COLUMNS": "200"}
        if crash_at:
            env["REELM_CARVEOUT_CRASH_AT"] = crash_at
        exe = shutil.which("reelm", path=str(Path(sys.executable).parent)) or "reelm"
        return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=300)

    def ok(self, *args: str) -> str:
        done = self.reelm(*args)
        assert done.returncode == 0, f"reelm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    def homes(self) -> dict[str, str]:
        """handle → home region, from `reelm users list`."""
        out = {}
        for line in self.ok("users", "list").splitlines():
            cells = [c.strip() for c in line.split("│") if c.strip()]
            if len(cells) == 4 and cells[0] != "handle":
                out[cells[0]] = f"{cells[1]} {cells[2]}"
        return out

    def settings(self) -> Settings:
        return Settings(data_dir=self.data_dir, **_settings_kwargs(self.env))


def _settings_kwargs(env: dict[str, str]) -> dict[str, object]:
    import json

    if not env:
        return {}
    return {
        "global_database_url": env["REELM_GLOBAL_DATABASE_URL"],
        "region_database_urls": json.loads(env["REELM_REGION_DATABASE_URLS"]),
    }


@pytest.fixture
def deployment(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Make deployments by name: a data folder each and, on PostgreSQL, databases of its own."""
    import json

    made: list[str] = []
    server = None
    if BACKEND == "postgresql":
        import pgserver

        server = pgserver.get_server(
            Path(os.environ.get("REELM_TEST_PGDATA", "/tmp/reelm-test-pgdata")), cleanup_mode="stop"
        )

    def make(name: str) -> Deployment:
        data = tmp_path / name
        data.mkdir()
        if server is None:
            return Deployment(data)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        urls = {}
        for part in ("global", "us", "sg"):
            db = f"reelm_{worker}_op_{name}_{part}"
            server.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE);")
            server.psql(f"CREATE DATABASE {db};")
            made.append(db)
            urls[part] = server.get_uri(db)
        env = {
            "REELM_GLOBAL_DATABASE_URL": urls["global"],
            "REELM_REGION_DATABASE_URLS": json.dumps({"us": urls["us"], "sg": urls["sg"]}),
        }
        return Deployment(data, env)

    yield make
    if server is not None:
        for db in made:
            server.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE);")


def test_demo_before_the_deal_then_us_ca_au_nz_move_to_us_killed_resumed_and_verified(
    deployment,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    op = deployment("deal")
    op.ok("demo", "--policy", "before-2020", "--no-videos")
    assert set(op.homes().values()) == {"sg active"}

    plan = op.ok("carveout", "plan", "--policy", "demo")
    for jurisdiction in ("US", "CA", "AU", "NZ"):
        assert f"│ {jurisdiction} " in plan
    assert "│ total        │      │    │ 4 " in plan

    killed = op.reelm("carveout", "run", "--policy", "demo", "--batch", "1", "--drain", "0",
                      crash_at="clean.rows_mid:2")  # fmt: skip
    assert killed.returncode == -9, killed.stdout + killed.stderr
    status = op.ok("carveout", "status")
    assert "running" in status
    assert "planned" in status

    report = tmp_path / "report.txt"
    done = op.ok("carveout", "run", "--drain", "0", "--report", str(report))
    assert "4 users moved, 0 failed" in done

    homes = op.homes()
    assert {h: homes[h] for h in MOVERS} == dict.fromkeys(MOVERS, "us active")
    assert {h: homes[h] for h in STAYERS} == dict.fromkeys(STAYERS, "sg active")
    assert "0 violations" in op.ok("residency", "scan")
    assert "carve-out verified" in op.ok("carveout", "verify", "--manifests")
    key = op.ok("carveout", "key").strip()
    assert "VERIFIED" in op.ok("audit", "verify-report", str(report), "--key", key)

    # the moved users sign in where they now live, with the password they had
    with TestClient(create_app(op.settings())) as client:
        r = client.post("/api/v1/sessions", json={"handle": "ava", "password": DEMO_PASSWORD})
        assert r.status_code == 201, r.text
        assert r.json()["token"].startswith("us.")


def test_demo_users_of_the_deal_are_handed_to_another_operators_deployment(
    deployment,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    source, recipient = deployment("global"), deployment("usds")
    source.ok("demo", "--policy", "before-2020", "--no-videos")
    recipient.ok("init")
    recipient_key = recipient.ok("carveout", "recipient-key").strip()
    recipient_vkey = recipient.ok("carveout", "key").strip()
    source_vkey = source.ok("carveout", "key").strip()

    bundle = tmp_path / "handover.bundle"
    source.ok("carveout", "export", "--jurisdictions", "US,CA,AU,NZ", "--recipient-key",
              recipient_key, "--recipient-url", "https://usds.example", "--out", str(bundle))  # fmt: skip
    homes = source.homes()
    assert {h: homes[h].split()[1] for h in MOVERS} == dict.fromkeys(MOVERS, "moving")

    # a bundle changed on the way is refused, and the recipient keeps nothing of it
    tampered = tmp_path / "tampered.bundle"
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    refused = recipient.reelm("carveout", "import", str(tampered), "--source-key", source_vkey,
                              "--receipt", str(tmp_path / "no-receipt.txt"))  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "error:" in refused.stderr
    assert recipient.homes() == {}

    receipt = tmp_path / "receipt.txt"
    recipient.ok("carveout", "import", str(bundle), "--source-key", source_vkey,
                 "--receipt", str(receipt))  # fmt: skip
    report = tmp_path / "report.txt"
    source.ok("carveout", "finish", "--receipt", str(receipt), "--key", recipient_vkey,
              "--report", str(report))  # fmt: skip

    assert set(source.homes()) == set(STAYERS)
    assert recipient.homes() == dict.fromkeys(MOVERS, "us active")
    for d in (source, recipient):
        assert "0 violations" in d.ok("residency", "scan")
    assert "VERIFIED" in source.ok("audit", "verify-report", str(report), "--key", source_vkey)

    # each deployment runs on its own: the handed-over users sign in at the recipient only
    login = {"handle": "liam", "password": DEMO_PASSWORD}
    with TestClient(create_app(recipient.settings())) as client:
        assert client.post("/api/v1/sessions", json=login).status_code == 201
    with TestClient(create_app(source.settings())) as client:
        assert client.post("/api/v1/sessions", json=login).status_code in (401, 404)
        mei = {"handle": "mei", "password": DEMO_PASSWORD}
        assert client.post("/api/v1/sessions", json=mei).status_code == 201
