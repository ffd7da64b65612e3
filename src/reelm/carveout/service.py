"""Running a carve-out: move every user a new policy assigns elsewhere, online, in batches.

This module starts or resumes a run (`do_run`: plan, journal, checkpoints); `move.Mover` carries
it through its batches. Per batch of users going from region S to region T (each journaled step
recorded only once its effect is durable, every effect idempotent, so a run killed anywhere
finishes when run again):

1. mark: Directory `moving` (to T). From now on every write of these users is refused with 503
   (`RegionStore` hooks, request layer); reads keep being served from S. Then wait for S's
   write fence: every write that checked the Directory before the mark has committed.
   (Not journaled: marking again finds the users already moving to T.)
2. copy: rows (one T transaction that first drops any earlier partial copy), blobs (fsynced),
   the data key re-wrapped under T's key-encryption key. (Not journaled: copied again.)
3. verify: the manifest of each user computed on S and on T, independently → equal: journal
   `verified` with the root; different: copy again once, then give the user back to S
   (journal `failed`).
4. flip: Directory home T, `active`; PublicCatalog rows repointed to T; journal `flipped`, in
   one global transaction.
5. clean (after `drain` seconds, so requests routed to S before the flip have finished):
   delete the rows and blobs at S, destroy S's copy of the key. (Not journaled: idempotent.)
6. log: `carve_out_move` (out) and `key_destruction` (carve_out) in S's audit log,
   `carve_out_move` (in) in T's → journal `done`. A rerun skips entries already appended.

When no user is left (and sign-ups made during the run under the old policy were picked up),
the new policy is activated and written as the deployment's policy, and the signed report is
made (reelm.carveout.report).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from sqlalchemy import insert, select

from reelm.audit.log import region_log
from reelm.carveout import models as m
from reelm.carveout.crash import crash_point
from reelm.carveout.journal import (
    RUNS,
    RunOptions,
    RunResult,
    journal_insert,
    run_dir,
)
from reelm.carveout.move import Mover
from reelm.carveout.plan import check_policy_fits, select_users
from reelm.config import Settings
from reelm.db import new_id, utcnow
from reelm.errors import Conflict, NotFound
from reelm.residency.policy import ResidencyPolicy, load_policy
from reelm.residency.service import (
    active_policy_hash,
)
from reelm.residency.store import Platform


def _running(platform: Platform, kind: str) -> m.CarveOutRun | None:
    with platform.global_store.session() as g:
        return g.scalar(
            select(m.CarveOutRun)
            .where(m.CarveOutRun.kind == kind, m.CarveOutRun.state == m.RUNNING)
            .order_by(m.CarveOutRun.started_at)
            .limit(1)
        )


def _keep_policy(settings: Settings, run_id: str, policy: ResidencyPolicy) -> Path:
    """Copy the new policy (and its staff-access file) into the run's folder, so a resumed run
    uses exactly the policy it started with."""
    folder = run_dir(settings, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "policy.toml"
    target.write_text(policy.text, encoding="utf-8")
    if policy.staff_access_file is not None:
        relative = os.path.relpath(policy.staff_access_file, policy.source.parent.resolve())
        dest = folder / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(policy.staff_access_file, dest)
    return target


def start_run(platform: Platform, settings: Settings, policy: ResidencyPolicy) -> str:
    """Plan the move to `policy` and record it (run, checkpoints before, journal); the run id."""
    check_policy_fits(platform, policy)
    moves = select_users(platform, policy=policy)
    checkpoints: dict[str, str] = {}
    for name, store in platform.regions.items():
        checkpoints[name] = region_log(settings, store).sign_checkpoint()
    crash_point("run.checkpointed")
    run_id = new_id()
    kept = _keep_policy(settings, run_id, policy)
    detail = {
        "checkpoints_before": checkpoints,
        "policy_file": str(kept),
        "version": policy.version,
    }
    now = utcnow()
    with platform.global_store.engine.begin() as g:
        g.execute(
            insert(RUNS).values(
                id=run_id,
                kind=m.MOVE,
                state=m.RUNNING,
                policy_hash=policy.content_hash,
                previous_hash=active_policy_hash(platform),
                policy_text=policy.text,
                detail=json.dumps(detail),
                started_at=now,
            )
        )
        journal_insert(g, run_id, {u: (f, t) for u, (f, t, _j) in moves.items()}, now)
    crash_point("run.created")
    return run_id


def do_run(
    platform: Platform,
    settings: Settings,
    *,
    policy: ResidencyPolicy | None = None,
    options: RunOptions | None = None,
) -> RunResult:
    """Start (with `policy`) or resume the carve-out in progress, and carry it to the end."""
    options = options or RunOptions()
    running = _running(platform, m.MOVE)
    if running is not None:
        if policy is not None and policy.content_hash != running.policy_hash:
            raise Conflict(
                f"carve-out {running.id} to policy {running.policy_hash[:12] if running.policy_hash else '?'}… "
                "is still in progress; finish it first (`reelm carveout run` without --policy)",
                code="carveout_in_progress",
            )
        run_id = running.id
        detail = json.loads(running.detail)
        policy = load_policy(Path(detail["policy_file"]), data_dir=settings.data_dir)
    else:
        if policy is None:
            raise NotFound(
                "No carve-out is in progress; start one with `reelm carveout run --policy NEW.toml`.",
                code="no_carveout",
            )
        t0 = time.perf_counter()
        run_id = start_run(platform, settings, policy)
        planned = time.perf_counter() - t0
    mover = Mover(platform, settings, run_id, policy, options)
    if running is None:
        mover.timings["plan and journal"] += planned
    return mover.run()
