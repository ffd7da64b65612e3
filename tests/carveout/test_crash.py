"""Crash safety: the carve-out is killed with SIGKILL at every named point of its sequence, in a
child process, and each time run again; at the end every user is in exactly one region with the
same data as before, nothing is left behind, and the audit logs hold each move exactly once."""

from __future__ import annotations

import json
import os
import signal
import traceback
from pathlib import Path

from sqlalchemy import select

from carveout_seed import Seeded
from helpers import row_count
from reelm.audit.log import region_log
from reelm.carveout import models as m
from reelm.carveout.crash import ENV, POINTS
from reelm.carveout.manifest import compute_manifests
from reelm.carveout.service import RunOptions, do_run
from reelm.carveout.verify import do_check
from reelm.config import Settings
from reelm.residency.models import DirectoryEntry
from reelm.residency.policy import load_policy
from reelm.residency.service import active_policy_hash
from reelm.residency.store import Platform


def open_like_a_new_process(platform: Platform, settings: Settings) -> Platform:
    """What `reelm carveout run` opens: the deployment's policy file, the same databases."""
    return Platform(
        policy=load_policy(settings.resolved_policy_file, data_dir=settings.data_dir),
        global_url=platform.global_store.engine.url.render_as_string(hide_password=False),
        keys_dir=settings.data_dir / "keys",
        region_urls={
            name: store.url.render_as_string(hide_password=False)
            for name, store in platform.regions.items()
        },
    )


def run_child(seeded: Seeded, crash_at: str | None) -> int:
    """Run the carve-out in a forked child; its wait status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            if crash_at is None:
                os.environ.pop(ENV, None)
            else:
                os.environ[ENV] = crash_at
            child = open_like_a_new_process(seeded.platform, seeded.settings)
            demo = load_policy(seeded.demo.source, data_dir=seeded.settings.data_dir)
            do_run(child, seeded.settings, policy=demo, options=RunOptions(batch=2, drain=0))
        except BaseException:
            traceback.print_exc()
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


def killed(status: int) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def carveout_entries(seeded: Seeded, region: str, run_id: str) -> list[dict[str, str]]:
    log = region_log(seeded.settings, seeded.platform.regions[region])
    out = []
    for e in log.entries(0, log.size()):
        entry = json.loads(e.data)
        if entry.get("run_id") == run_id or entry.get("reason") == "carve_out":
            out.append(entry)
    return out


def test_killed_at_every_point_each_rerun_finishes_with_nothing_lost_or_left(
    seeded: Seeded,
) -> None:
    platform, settings = seeded.platform, seeded.settings
    people = list(seeded.people.values())
    before = compute_manifests(platform.regions["sg"], [p.user_id for p in people])
    assert len(POINTS) >= 20
    missed = []
    for point in POINTS:
        status = run_child(seeded, f"{point}:1")
        if not killed(status):
            missed.append(f"{point} (status {status})")
    assert not missed, f"never reached, so never killed at: {missed}"
    assert run_child(seeded, None) == 0

    with platform.global_store.session() as g:
        runs = g.scalars(select(m.CarveOutRun).order_by(m.CarveOutRun.started_at)).all()
        homes = dict(g.execute(select(DirectoryEntry.user_id, DirectoryEntry.home_region)).all())
        moved = [r for r in runs if r.state == m.DONE and r.policy_hash == seeded.demo.content_hash]
        first = next(r for r in moved if g.scalar(
            select(m.CarveOutUser.user_id).where(m.CarveOutUser.run_id == r.id).limit(1)
        ))  # fmt: skip
        steps = dict(
            g.execute(
                select(m.CarveOutUser.user_id, m.CarveOutUser.step).where(
                    m.CarveOutUser.run_id == first.id
                )
            ).all()
        )
    assert all(r.state == m.DONE for r in runs)
    assert steps == {p.user_id: m.FINISHED for p in seeded.movers()}
    # every user in exactly one region, the right one, with the very data they had before
    for p in people:
        home = "us" if p.moves else "sg"
        assert homes[p.user_id] == home
        assert row_count(platform, home, "accounts", p.user_id) == 1
        assert row_count(platform, "us" if home == "sg" else "sg", "accounts", p.user_id) == 0
        assert (
            compute_manifests(platform.regions[home], [p.user_id])[p.user_id] == before[p.user_id]
        )
    # scan clean, no orphan blobs, keys only at home, manifests as recorded, audit logs verify
    check = do_check(platform, settings, run_id=first.id)
    assert check.ok, check.problems()
    assert check.manifests_checked == 6
    # each move in the logs exactly once, on each side, with one key destruction at the source
    out = carveout_entries(seeded, "sg", first.id)
    into = carveout_entries(seeded, "us", first.id)
    assert sorted(e["kind"] for e in out) == ["carve_out_move"] * 6 + ["key_destruction"] * 6
    assert [e["direction"] for e in into] == ["in"] * 6
    assert len({e["subject"] for e in into}) == 6
    assert active_policy_hash(platform) == seeded.demo.content_hash
    assert not list(Path(settings.data_dir).rglob(".tmp-carveout-*"))
