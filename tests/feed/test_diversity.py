"""Property: over random catalogues, For You never serves two items in a row from the same creator
or with the same sound, never repeats an item and serves only what the viewer may see."""

from __future__ import annotations

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from conftest import empty_all
from helpers import make_user, make_video
from reelm.accounts.service import access_session
from reelm.config import Settings
from reelm.feed import ranking
from reelm.feed.foryou import for_you_feed, forget_sessions
from reelm.feed.model import train_region
from reelm.feed.ranking import Candidate, Queue
from reelm.residency.store import Platform
from reelm.social import service as social

CATALOGUE = st.lists(
    st.tuples(st.integers(0, 4), st.one_of(st.none(), st.integers(0, 2)), st.booleans()),
    min_size=1,
    max_size=24,
)  # (creator, sound or none, liked by some other user)


def _assert_diverse(items: list[tuple[str, str, str | None]]) -> None:
    for (_, c1, s1), (_, c2, s2) in zip(items, items[1:], strict=False):
        assert c1 != c2, "two items in a row from one creator"
        assert s1 is None or s1 != s2, "two items in a row with one sound"


@hsettings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(catalogue=CATALOGUE, limit=st.integers(1, 6), trained=st.booleans())
def test_diversity_holds_across_pages_of_random_catalogues(
    platform: Platform,
    settings: Settings,
    catalogue: list[tuple[int, int | None, bool]],
    limit: int,
    trained: bool,
) -> None:
    empty_all(platform)
    forget_sessions(platform)
    creators = [
        make_user(platform, settings, handle=f"maker{i}", jurisdiction="US" if i % 2 else "SG")
        for i in range(5)
    ]
    _, _, token = make_user(platform, settings, handle="viewer", jurisdiction="US")
    viewer = access_session(platform, token)
    _, _, fan_token = make_user(platform, settings, handle="fan", jurisdiction="US")
    fan = access_session(platform, fan_token)
    videos = {}
    for creator, sound, liked in catalogue:
        uid, region, _ = creators[creator]
        sound_id = f"sound{sound}" if sound is not None else None
        vid = make_video(platform, owner_id=uid, region=region, sound_id=sound_id)
        videos[vid] = (uid, sound_id)
        if liked:
            social.do_like(platform, fan, vid)
    social.do_mute(platform, viewer, "maker3", muted=True)
    if trained:
        train_region(platform, "us")

    served: list[tuple[str, str, str | None]] = []
    cursor = None
    while True:
        page = for_you_feed(platform, settings, viewer, cursor=cursor, limit=limit)
        for item in page.items:
            creator_id, sound_id = videos[item.video.id]
            served.append((item.video.id, creator_id, sound_id))
        cursor = page.next_cursor
        if cursor is None:
            break
    _assert_diverse(served)
    assert len({vid for vid, _, _ in served}) == len(served)
    assert creators[3][0] not in {c for _, c, _ in served}


@st.composite
def queues(draw: st.DrawFn) -> tuple[Queue, set[str]]:
    def cands(prefix: str) -> list[Candidate]:
        n = draw(st.integers(0, 40))
        return [
            Candidate(
                f"{prefix}{i}",
                f"c{draw(st.integers(0, 5))}",
                draw(st.one_of(st.none(), st.sampled_from(["s0", "s1", "s2"]))),
                ranking.EXPLORE if prefix == "x" else ranking.TRENDING,
                "r",
            )
            for i in range(n)
        ]

    main, explore = cands("m"), cands("x")
    refused = {c.video_id for c in main + explore if draw(st.integers(0, 9)) == 0}
    return Queue(main, explore), refused


@hsettings(max_examples=300, deadline=None)
@given(q=queues(), limits=st.lists(st.integers(1, 12), min_size=1, max_size=10))
def test_take_keeps_the_rules_and_the_exploration_share(
    q: tuple[Queue, set[str]], limits: list[int]
) -> None:
    queue, refused = q
    explore_ids = {c.video_id for c in queue.explore}
    served: list[Candidate] = []
    for limit in limits:
        served += ranking.take(queue, limit, lambda c: c.video_id not in refused)
    _assert_diverse([(c.video_id, c.creator_id, c.sound_id) for c in served])
    assert len({c.video_id for c in served}) == len(served)
    assert not {c.video_id for c in served} & refused
    if queue.explore and all(c.video_id not in refused for c in queue.explore):
        # exploration was never short: at least every 5th item came from it
        n_explore = sum(c.video_id in explore_ids for c in served)
        assert n_explore >= len(served) // ranking.EXPLORE_EVERY - 1
