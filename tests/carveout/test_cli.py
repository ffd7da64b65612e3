"""The operator's and the auditor's commands, as real processes: plan, run (killed with -9, then
resumed), verify, and the offline `reelm audit verify-report`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from carveout_seed import Seeded
from reelm.residency.policy import BUILTIN_POLICIES


def reelm(
    seeded: Seeded, *args: str, crash_at: str | None = None
) -> subprocess.CompletedProcess[str]:
    platform, settings = seeded.platform, seeded.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELM_")}
    env |= {
        "REELM_DATA_DIR": str(settings.data_dir),
        "REELM_GLOBAL_DATABASE_URL": platform.global_store.engine.url.render_as_string(
            hide_password=False
        ),
        "REELM_REGION_DATABASE_URLS": json.dumps(
            {n: s.url.render_as_string(hide_password=False) for n, s in platform.regions.items()}
        ),
        "COLUMNS": "200",
    }
    if crash_at:
        env["REELM_CARVEOUT_CRASH_AT"] = crash_at
    exe = shutil.which("reelm", path=str(Path(sys.executable).parent)) or "reelm"
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=300)


def test_plan_run_killed_resume_verify_and_the_auditor_checks_the_report(
    seeded: Seeded, tmp_path: Path
) -> None:
    demo = str(BUILTIN_POLICIES / "demo.toml")
    plan = reelm(seeded, "carveout", "plan", "--policy", demo)
    assert plan.returncode == 0, plan.stderr
    assert "US" in plan.stdout
    assert "total" in plan.stdout

    killed = reelm(seeded, "carveout", "run", "--policy", demo, "--batch", "2", "--drain", "0",
                   crash_at="batch.verified:1")  # fmt: skip
    assert killed.returncode == -9, killed.stderr

    report = tmp_path / "report.txt"
    done = reelm(seeded, "carveout", "run", "--drain", "0", "--report", str(report))
    assert done.returncode == 0, done.stderr
    assert "6 users moved, 0 failed" in done.stdout

    verify = reelm(seeded, "carveout", "verify", "--manifests")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "carve-out verified" in verify.stdout
    assert reelm(seeded, "residency", "scan").returncode == 0

    key = reelm(seeded, "carveout", "key").stdout.strip()
    ok = reelm(seeded, "audit", "verify-report", str(report), "--key", key)
    assert ok.returncode == 0, ok.stderr
    assert "VERIFIED" in ok.stderr

    report.write_text(report.read_text().replace('"moved":6', '"moved":7'))
    bad = reelm(seeded, "audit", "verify-report", str(report), "--key", key)
    assert bad.returncode == 1
    assert "FAILED" in bad.stderr
