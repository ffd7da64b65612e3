"""Effects waiting when a carve-out moves their owner or their recipient: they move with their
owner, apply once in the new home, and the applied keys keep a crossed-off-late one from
applying twice."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from carveout_seed import Seeded, user_of
from helpers import row_count
from reelm.carveout.service import RunOptions, do_run
from reelm.carveout.verify import do_check
from reelm.effects import service as effects
from reelm.media.models import PublishedVideo
from reelm.residency.scan import do_scan
from reelm.social.models import Notification
from reelm.social.service import do_like


class Killed(BaseException):
    """The process dies at a dispatcher's crash point."""


def like_and_die_at(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch, point: str, liker: str, creator: str
) -> str:
    """`liker` likes `creator`'s first video; the dispatch after its commit dies at `point`."""
    def die(name: str) -> None:
        if name == point:
            raise Killed(name)

    video = seeded.people[creator].videos[0]
    monkeypatch.setattr(effects, "crash_point", die)
    with pytest.raises(Killed):
        do_like(seeded.platform, user_of(seeded.platform, seeded.people[liker]), video)
    monkeypatch.undo()
    return video


def test_pending_effects_move_with_their_owner_and_apply_once_in_the_new_home(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = seeded.platform
    ava, finn, gus = (seeded.people[h] for h in ("ava_us", "finn_nz", "gus_sg"))
    effects.dispatch_all(platform, "sg")  # the seeding's effects, crossed off by the worker
    # ava (moves to us) liked ida's video; nothing of it applied yet
    not_applied = like_and_die_at(seeded, monkeypatch, "effects.target_writing", "ava_us", "ida_de")
    # finn (moves) liked gus's video; applied, not crossed off
    applied = like_and_die_at(seeded, monkeypatch, "effects.target_committed", "finn_nz", "gus_sg")
    # gus (stays) liked finn's video: a notification for finn, waiting in gus's outbox
    for_mover = like_and_die_at(seeded, monkeypatch, "effects.target_writing", "gus_sg", "finn_nz")
    assert effects.pending_count(platform, "sg") == 9
    with platform.global_store.session() as g:
        counts = {v: g.get(PublishedVideo, v).like_count for v in (not_applied, applied, for_mover)}  # type: ignore[union-attr]

    result = do_run(platform, seeded.settings, policy=seeded.demo, options=RunOptions(batch=2, drain=0))
    assert result.moved == len(seeded.movers())
    assert do_check(platform, seeded.settings, run_id=result.run_id).ok
    # the movers' waiting effects went with them
    assert row_count(platform, "us", "outbox", ava.user_id) == 3
    assert row_count(platform, "us", "outbox", finn.user_id) == 3
    assert row_count(platform, "sg", "outbox", gus.user_id) == 3

    for _ in range(2):
        for region in platform.regions:
            effects.dispatch_all(platform, region, due_only=False)
    assert sum(effects.pending_count(platform, r) for r in platform.regions) == 0
    with platform.global_store.session() as g:
        after = {v: g.get(PublishedVideo, v).like_count for v in counts}  # type: ignore[union-attr]
    assert after[not_applied] == counts[not_applied] + 1
    assert after[applied] == counts[applied]  # it had been counted already: not twice
    assert after[for_mover] == counts[for_mover] + 1
    # gus's like reached finn in finn's new home, once
    with platform.region("us").session() as s:
        kinds = list(s.scalars(select(Notification.kind).where(
            Notification.owner_id == finn.user_id, Notification.actor_id == gus.user_id)))
    assert kinds == ["like"]
    assert row_count(platform, "sg", "notifications", finn.user_id) == 0
    assert do_scan(platform).violations == []
