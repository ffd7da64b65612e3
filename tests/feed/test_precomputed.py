"""For You from precomputed candidate sets: ranked by the region's worker after training, stored
in the viewer's home region, used by the first page of a session while fresh; a missing or stale
set falls back to a live build; the viewer's blocks, mutes and "not interested" of now hold on
whatever a set holds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, update

from helpers import make_user, make_video, row_count
from reelm.accounts.service import CurrentUser, access_session
from reelm.config import Settings
from reelm.db import utcnow
from reelm.feed import candidates
from reelm.feed.foryou import for_you_feed, forget_sessions
from reelm.feed.model import train_region
from reelm.feed.models import ForYouCandidates
from reelm.feed.precompute import do_precompute_candidates
from reelm.residency.store import Platform
from reelm.social import service as social
from reelm.social.models import Like

User = tuple[str, str, CurrentUser]


@pytest.fixture
def user(platform: Platform, settings: Settings) -> Callable[..., User]:
    def make(handle: str, jurisdiction: str = "US") -> User:
        uid, region, token = make_user(platform, settings, handle=handle, jurisdiction=jurisdiction)
        return uid, region, access_session(platform, token)

    return make


def walk(platform: Platform, settings: Settings, viewer: CurrentUser) -> dict[str, str]:
    """Every page of one new session: video id → reason, in the order served."""
    forget_sessions(platform)
    out: dict[str, str] = {}
    cursor = None
    for _ in range(100):
        page = for_you_feed(platform, settings, viewer, cursor=cursor, limit=10)
        out.update((i.video.id, i.reason) for i in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return out
    raise AssertionError("the feed did not end")


@pytest.fixture
def world(platform: Platform, user: Callable[..., User]) -> dict[str, Any]:
    """ava (US) likes skate videos; creators of skate, food and music; ava follows the cook."""
    _, _, ava = user("ava", "US")
    skater_id, skater_region, _ = user("skater", "US")
    cook_id, cook_region, _ = user("cook", "SG")
    pop_id, pop_region, _ = user("popstar", "US")
    skate = [
        make_video(platform, owner_id=skater_id, region=skater_region, caption=f"flip {i} #skate")
        for i in range(5)
    ]
    food = [
        make_video(platform, owner_id=cook_id, region=cook_region, caption=f"laksa {i} #food")
        for i in range(4)
    ]
    hits = [
        make_video(platform, owner_id=pop_id, region=pop_region, caption=f"hit {i} #music")
        for i in range(4)
    ]
    for i in range(6):  # other creators, so the diversity rule can always space the ones above
        oid, oregion, _ = user(f"other{i}", "US")
        make_video(platform, owner_id=oid, region=oregion, caption=f"other {i} #misc")
    social.do_like(platform, ava, skate[0])
    social.do_follow(platform, ava, "cook")
    for region in platform.regions:
        train_region(platform, region)
    return {"ava": ava, "skate": skate, "food": food, "hits": hits, "user": user}


def forget_likes(platform: Platform, viewer: CurrentUser) -> None:
    """Drop the viewer's likes below the services: a live build no longer knows their taste,
    a session served from the stored set still does (that is how a test tells them apart)."""
    with platform.region(viewer.region).transaction() as s:
        s.execute(delete(Like).where(Like.owner_id == viewer.user_id))


def test_sets_are_precomputed_after_training_in_each_users_home_region_and_resume(
    platform: Platform, settings: Settings, user: Callable[..., User], world: dict[str, Any]
) -> None:
    sg_id, _, _ = user("siti", "SG")
    reports = {r: do_precompute_candidates(platform, settings, r) for r in platform.regions}
    us_users, sg_users = reports["us"].users, reports["sg"].users
    assert reports["us"].built == us_users > 0
    assert reports["sg"].built == sg_users > 0
    ava = world["ava"]
    assert row_count(platform, "us", "foryou_candidates", ava.user_id) == 1
    assert row_count(platform, "sg", "foryou_candidates", ava.user_id) == 0
    assert row_count(platform, "sg", "foryou_candidates", sg_id) == 1
    assert row_count(platform, "us", "foryou_candidates", sg_id) == 0
    stored = candidates.load(platform.region("us"), ava.user_id)
    assert stored is not None
    assert world["skate"][0] in stored.seen
    assert world["skate"][0] not in {v for v, _, _, _ in stored.main}  # already liked
    # a second run with the same model has nothing left to do (an interrupted run resumes)
    again = do_precompute_candidates(platform, settings, "us")
    assert (again.built, again.skipped) == (0, us_users)


def test_a_fresh_set_serves_the_session_and_what_arrived_since_is_added(
    platform: Platform, settings: Settings, world: dict[str, Any]
) -> None:
    ava = world["ava"]
    do_precompute_candidates(platform, settings, "us")
    forget_likes(platform, ava)  # only the stored set still knows ava likes #skate
    new_id, new_region, _ = world["user"]("newcomer", "SG")  # a creator no one has seen yet
    later = make_video(platform, owner_id=new_id, region=new_region, caption="new one #music")
    reasons = walk(platform, settings, ava)
    assert any(r == "Because you liked #skate" for r in reasons.values())
    assert all(reasons[v] == "You follow @cook" for v in world["food"] if v in reasons)
    assert later in reasons  # published after the set was built: offered for discovery
    assert world["skate"][0] not in reasons


def test_a_missing_or_stale_set_falls_back_to_a_live_build(
    platform: Platform, settings: Settings, world: dict[str, Any]
) -> None:
    ava = world["ava"]
    do_precompute_candidates(platform, settings, "us")
    forget_likes(platform, ava)
    assert any(r == "Because you liked #skate" for r in walk(platform, settings, ava).values())
    too_old = timedelta(minutes=settings.feed_candidates_max_age_minutes + 1)
    with platform.region("us").transaction() as s:
        s.execute(
            update(ForYouCandidates)
            .where(ForYouCandidates.owner_id == ava.user_id)
            .values(built_at=utcnow() - too_old)
        )
    stale = walk(platform, settings, ava)
    assert stale  # a live build: the likes are gone, so is the hashtag reason
    assert not any(r.startswith("Because you liked") for r in stale.values())
    with platform.region("us").transaction() as s:
        s.execute(delete(ForYouCandidates).where(ForYouCandidates.owner_id == ava.user_id))
    missing = walk(platform, settings, ava)  # no set at all: built live too
    assert missing
    assert not any(r.startswith("Because you liked") for r in missing.values())


def test_blocks_mutes_and_not_interested_since_the_set_was_built_are_kept(
    platform: Platform, settings: Settings, world: dict[str, Any]
) -> None:
    ava = world["ava"]
    do_precompute_candidates(platform, settings, "us")
    stored = candidates.load(platform.region("us"), ava.user_id)
    assert stored is not None
    in_set = {v for v, _, _, _ in stored.main} | {v for v, _, _ in stored.explore}
    assert set(world["skate"][1:]) & in_set  # the set does hold skater's videos
    assert set(world["food"]) & in_set
    social.do_block(platform, ava, "skater", blocked=True)
    social.do_mute(platform, ava, "popstar", muted=True)
    social.do_unfollow(platform, ava, "cook")
    nope = next(v for v in world["food"] if v in in_set)
    social.do_not_interested(platform, ava, nope)
    served = walk(platform, settings, ava)
    assert not set(served) & set(world["skate"])  # blocked: never served from the set
    assert not set(served) & set(world["hits"])  # muted
    assert nope not in served
    assert all(r != "You follow @cook" for r in served.values())
