"""Property: whatever social actions happen across regions, whoever is being moved meanwhile and
wherever the dispatcher dies, once the moves end and the dispatcher has run, every public count
equals its rows, every notification exists exactly once, and the residency scan is clean."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from conftest import empty_all
from helpers import make_user, make_video
from reelm.accounts.service import CurrentUser
from reelm.config import Settings
from reelm.effects import service as effects
from reelm.errors import Forbidden, InvalidInput, TryAgainLater, VideoNotFound
from reelm.media.models import PublishedVideo
from reelm.residency.models import ACTIVE, MOVING, DirectoryEntry
from reelm.residency.scan import do_scan
from reelm.residency.service import do_activate_policy
from reelm.residency.store import Platform
from reelm.social import service as social
from reelm.social.models import (
    Comment,
    Follow,
    Like,
    Notification,
    PublicComment,
    PublicCounts,
)
from reelm.social.schemas import CommentCreate

PEOPLE = [("ava", "US"), ("liam", "US"), ("mei", "SG"), ("yuki", "JP")]
POINTS = ("effects.target_writing", "effects.target_committed")


class Killed(BaseException):
    """The dispatcher's process dies here (a BaseException: nothing in reelm catches it)."""


action = st.one_of(
    st.tuples(
        st.sampled_from(
            ["like", "unlike", "comment", "uncomment", "follow", "unfollow", "block", "unblock"]
        ),
        st.integers(0, 3),
        st.integers(0, 3),
    ),
    st.tuples(st.sampled_from(["move", "arrive"]), st.integers(0, 3), st.just(0)),
    st.tuples(st.just("kill"), st.sampled_from(range(len(POINTS))), st.integers(1, 3)),
)


@contextmanager
def killable(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    armed: dict[str, int] = {}

    def point(name: str) -> None:
        if name in armed:
            armed[name] -= 1
            if armed[name] <= 0:
                del armed[name]
                raise Killed(name)

    monkeypatch.setattr(effects, "crash_point", point)
    try:
        yield armed
    finally:
        monkeypatch.undo()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=st.lists(action, min_size=5, max_size=25))
def test_counts_equal_rows_and_notifications_exist_once_after_moves_and_crashes(
    platform: Platform,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    actions: list[tuple[str, int, int]],
) -> None:
    empty_all(platform)
    do_activate_policy(platform, platform.policy)
    users: list[CurrentUser] = []
    videos: list[str] = []
    for handle, country in PEOPLE:
        uid, region, _ = make_user(platform, settings, handle=handle, jurisdiction=country)
        users.append(CurrentUser(uid, handle, region, session_id="-"))
        videos.append(make_video(platform, owner_id=uid, region=region))
    other = {"us": "sg", "sg": "us", "jp": "us"}

    likes: set[tuple[int, int]] = set()
    follows: set[tuple[int, int]] = set()
    expected_notes: Counter[tuple[str, str]] = Counter()
    moving: set[int] = set()
    blocks: set[tuple[int, int]] = set()

    with killable(monkeypatch) as armed:
        for kind, a, b in actions:
            if kind == "kill":
                armed[POINTS[a]] = b
                continue
            if kind in ("move", "arrive"):
                moving.add(a) if kind == "move" else moving.discard(a)
                with platform.global_store.transaction() as g:
                    g.execute(
                        update(DirectoryEntry)
                        .where(DirectoryEntry.user_id == users[a].user_id)
                        .values(
                            state=MOVING if kind == "move" else ACTIVE,
                            moving_to=other[users[a].region] if kind == "move" else None,
                        )
                    )
                continue
            me, them = users[a], users[b]
            blocked = a != b and ((a, b) in blocks or (b, a) in blocks)
            try:
                committed = _act(platform, kind, me, them, videos[b], a, b)
            except (VideoNotFound, Forbidden):
                assert blocked, "refused although nobody blocked anybody"
                continue
            except InvalidInput:
                assert kind in ("block", "unblock"), "only blocking oneself is invalid"
                assert a == b
                continue
            except TryAgainLater:
                # the actor (or, for an answer in their region, the author) is moving:
                # an error, and nothing changed
                assert a in moving or kind == "uncomment"
                continue
            except Killed:
                committed = True  # the process died after the commit: the action stands
            if not committed:
                continue
            assert not blocked or kind in ("unlike", "unfollow", "uncomment", "block", "unblock")
            if kind == "block":
                if (a, b) not in blocks:
                    follows -= {(a, b), (b, a)}
                blocks.add((a, b))
            elif kind == "unblock":
                blocks.discard((a, b))
            elif kind == "like" and (a, b) not in likes:
                likes.add((a, b))
                if a != b:
                    expected_notes[(them.user_id, "like")] += 1
            elif kind == "unlike":
                likes.discard((a, b))
            elif kind == "follow" and a != b and (a, b) not in follows:
                follows.add((a, b))
                expected_notes[(them.user_id, "follow")] += 1
            elif kind == "unfollow":
                follows.discard((a, b))
            elif kind == "comment" and a != b:
                expected_notes[(them.user_id, "comment")] += 1

    # the moves end; the region workers run (a block's effects in the blocked user's region
    # emit their own; the last pass must find nothing left)
    with platform.global_store.transaction() as g:
        g.execute(update(DirectoryEntry).values(state=ACTIVE, moving_to=None))
    for _ in range(3):
        for region in platform.regions:
            effects.dispatch_all(platform, region, due_only=False)

    assert sum(effects.pending_count(platform, r) for r in platform.regions) == 0
    like_rows = _all(platform, lambda s: s.execute(select(Like.owner_id, Like.video_id)).all())
    assert {(o, v) for o, v in like_rows} == {
        (users[a].user_id, videos[b]) for a, b in likes
    }
    with platform.global_store.session() as g:
        catalog = {v.id: v for v in g.scalars(select(PublishedVideo))}
        public_comments = Counter(g.scalars(select(PublicComment.video_id)))
        counts = {c.user_id: c for c in g.scalars(select(PublicCounts))}
    for b, video_id in enumerate(videos):
        row = catalog[video_id]
        assert row.like_count == sum(1 for _, v in likes if v == b), "like_count vs likes"
        assert row.comment_count == public_comments[video_id], "comment_count vs comments"
    live = _all(
        platform,
        lambda s: s.scalars(select(Comment.id).where(Comment.deleted_at.is_(None))).all(),
    )
    with platform.global_store.session() as g:
        assert set(g.scalars(select(PublicComment.id))) == set(live)
    follow_rows = _all(
        platform,
        lambda s: s.execute(select(Follow.owner_id, Follow.followee_id, Follow.state)).all(),
    )
    assert {(o, f) for o, f, st_ in follow_rows if st_ == "active"} == {
        (users[a].user_id, users[b].user_id) for a, b in follows
    }
    for i, u in enumerate(users):
        c = counts.get(u.user_id)
        followers = sum(1 for _, b in follows if b == i)
        following = sum(1 for a, _ in follows if a == i)
        received = sum(1 for _, b in likes if b == i)
        assert (c.followers if c else 0) == followers
        assert (c.following if c else 0) == following
        assert (c.likes_received if c else 0) == received
    notes = _all(
        platform, lambda s: s.execute(select(Notification.owner_id, Notification.kind)).all()
    )
    assert Counter((o, k) for o, k in notes) == expected_notes
    assert do_scan(platform).violations == []


def _act(
    platform: Platform,
    kind: str,
    me: CurrentUser,
    them: CurrentUser,
    video: str,
    a: int,
    b: int,
) -> bool:
    if kind == "like":
        social.do_like(platform, me, video)
    elif kind == "unlike":
        social.do_unlike(platform, me, video)
    elif kind == "follow":
        if a == b:
            return False
        social.do_follow(platform, me, them.handle)
    elif kind == "unfollow":
        social.do_unfollow(platform, me, them.handle)
    elif kind in ("block", "unblock"):
        social.do_block(platform, me, them.handle, blocked=kind == "block")
    elif kind == "comment":
        social.do_comment(platform, me, video, CommentCreate(text=f"from {me.handle}"))
    elif kind == "uncomment":
        with platform.region(me.region).session() as s:
            mine = s.scalar(
                select(Comment.id).where(
                    Comment.owner_id == me.user_id, Comment.deleted_at.is_(None)
                )
            )
        if mine is None:
            return False
        social.do_delete_comment(platform, me, mine)
    return True


def _all(platform: Platform, read):  # type: ignore[no-untyped-def]
    out = []
    for store in platform.regions.values():
        with store.session() as s:
            out += list(read(s))
    return out

