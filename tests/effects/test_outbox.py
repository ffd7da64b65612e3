"""An action commits once, in the actor's region; its effects travel through the region's outbox
and apply exactly once, whatever happens to the recipient or the databases on the way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, update

from helpers import make_user, make_video, row_count
from reelm.accounts.service import access_session
from reelm.config import Settings
from reelm.effects import service as effects
from reelm.effects.models import AppliedEffect, Effect, EffectState
from reelm.media.models import PublishedVideo
from reelm.residency.models import ACTIVE, MOVING, DirectoryEntry
from reelm.residency.scan import do_scan
from reelm.residency.store import Platform, RegionStore
from reelm.social.models import Notification
from reelm.social.service import do_like


def h(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


@pytest.fixture
def people(platform: Platform, settings: Settings) -> dict[str, str]:
    ava_id, _, ava = make_user(platform, settings, handle="ava", jurisdiction="US")
    mei_id, _, mei = make_user(platform, settings, handle="mei", jurisdiction="SG")
    return {
        "ava": ava,
        "mei": mei,
        "ava_id": ava_id,
        "mei_id": mei_id,
        "mei_video": make_video(platform, owner_id=mei_id, region="sg", caption="laksa"),
        "ava_video": make_video(platform, owner_id=ava_id, region="us", caption="skate"),
    }


def set_state(platform: Platform, user_id: str, state: str, moving_to: str | None = None) -> None:
    """What a carve-out does to the Directory when it marks a user, and when it gives them back."""
    with platform.global_store.transaction() as g:
        g.execute(
            update(DirectoryEntry)
            .where(DirectoryEntry.user_id == user_id)
            .values(state=state, moving_to=moving_to)
        )


def catalog_video(platform: Platform, video_id: str) -> PublishedVideo:
    with platform.global_store.session() as g:
        row = g.get(PublishedVideo, video_id)
    assert row is not None
    return row


def notifications(platform: Platform, region: str, owner_id: str) -> list[str]:
    with platform.region(region).session() as s:
        return list(s.scalars(select(Notification.kind).where(Notification.owner_id == owner_id)))


def pending(platform: Platform) -> int:
    return sum(effects.pending_count(platform, r) for r in platform.regions)


def drain(platform: Platform) -> None:
    """What the region workers' passes do over the next seconds, at once."""
    for region in platform.regions:
        effects.dispatch_all(platform, region, due_only=False)


def post_as_a_retrying_client(client: TestClient, url: str, headers: dict[str, str], **kw: Any) -> Any:
    """Send, and send again as Retry-After tells on a 503, as a phone app does."""
    for _ in range(4):
        r = client.post(url, headers=headers, **kw)
        if r.status_code != 503:
            return r
        time.sleep(min(1, int(r.headers.get("Retry-After", "1"))))
    return r


def test_like_and_comment_on_a_moving_creators_video_apply_once_after_the_move(
    client: TestClient, platform: Platform, people: dict[str, str]
) -> None:
    video = people["mei_video"]
    set_state(platform, people["mei_id"], MOVING, moving_to="us")  # a carve-out marked mei

    like = post_as_a_retrying_client(client, f"/api/v1/videos/{video}/like", h(people["ava"]))
    comment = post_as_a_retrying_client(
        client, f"/api/v1/videos/{video}/comments", h(people["ava"]), json={"text": "so good"}
    )
    # the actor's region took the action: a success, never a 503 after a commit
    assert like.status_code == 200, like.text
    assert comment.status_code == 201, comment.text
    # the public side is there at once; the notifications wait for mei
    assert catalog_video(platform, video).like_count == 1
    assert catalog_video(platform, video).comment_count == 1
    assert notifications(platform, "sg", people["mei_id"]) == []
    drain(platform)  # the worker's passes while mei is moving change nothing
    assert notifications(platform, "sg", people["mei_id"]) == []
    # the two notifications wait in ava's outbox (mei's own rows are frozen while she moves)
    assert [e.kind for e in effects.list_effects(platform, regions=["us"])] == [
        "NotificationRecord",
        "NotificationRecord",
    ]

    set_state(platform, people["mei_id"], ACTIVE)  # the move ends
    drain(platform)
    drain(platform)  # a second pass applies nothing twice

    assert row_count(platform, "us", "likes", people["ava_id"]) == 1
    assert row_count(platform, "us", "comments", people["ava_id"]) == 1
    row = catalog_video(platform, video)
    assert (row.like_count, row.comment_count) == (1, 1)
    assert sorted(notifications(platform, "sg", people["mei_id"])) == ["comment", "like"]
    assert pending(platform) == 0
    assert do_scan(platform).violations == []


def test_the_same_idempotency_key_creates_one_comment_and_a_new_body_is_refused(
    client: TestClient, platform: Platform, people: dict[str, str]
) -> None:
    url = f"/api/v1/videos/{people['mei_video']}/comments"
    first = client.post(url, headers=h(people["ava"], **{"Idempotency-Key": "k-1"}), json={"text": "hi"})
    again = client.post(url, headers=h(people["ava"], **{"Idempotency-Key": "k-1"}), json={"text": "hi"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    other = client.post(url, headers=h(people["ava"], **{"Idempotency-Key": "k-1"}), json={"text": "bye"})
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert row_count(platform, "us", "comments", people["ava_id"]) == 1
    assert catalog_video(platform, people["mei_video"]).comment_count == 1
    assert notifications(platform, "sg", people["mei_id"]) == ["comment"]
    # another user may use the same key: keys are per user
    mine = client.post(
        f"/api/v1/videos/{people['ava_video']}/comments",
        headers=h(people["mei"], **{"Idempotency-Key": "k-1"}),
        json={"text": "hi"},
    )
    assert mine.status_code == 201
    assert mine.json()["id"] != first.json()["id"]
    bad = client.post(url, headers=h(people["ava"], **{"Idempotency-Key": "x" * 300}), json={"text": "x"})
    assert bad.status_code == 422


def test_the_same_idempotency_key_shares_once_and_makes_one_upload(
    client: TestClient, platform: Platform, people: dict[str, str]
) -> None:
    url = f"/api/v1/videos/{people['mei_video']}/share"
    key = h(people["ava"], **{"Idempotency-Key": "share-1"})
    a = client.post(url, headers=key, json={"channel": "link"})
    b = client.post(url, headers=key, json={"channel": "link"})
    assert a.json() == b.json() == {"url": f"/v/{people['mei_video']}", "share_count": 1}
    assert catalog_video(platform, people["mei_video"]).share_count == 1
    assert row_count(platform, "us", "shares", people["ava_id"]) == 1

    tus = {"Tus-Resumable": "1.0.0", "Upload-Length": "1000", "Idempotency-Key": "up-1"}
    before = row_count(platform, "us", "uploads", people["ava_id"])
    first = client.post("/api/v1/uploads", headers=h(people["ava"], **tus))
    again = client.post("/api/v1/uploads", headers=h(people["ava"], **tus))
    assert first.status_code == again.status_code == 201
    assert first.headers["Location"] == again.headers["Location"]
    assert row_count(platform, "us", "uploads", people["ava_id"]) == before + 1
    bigger = client.post(
        "/api/v1/uploads", headers=h(people["ava"], **{**tus, "Upload-Length": "2000"})
    )
    assert bigger.status_code == 422


def test_like_follow_and_save_stay_idempotent_without_a_key(
    client: TestClient, platform: Platform, people: dict[str, str]
) -> None:
    video = people["mei_video"]
    for _ in range(3):
        assert client.post(f"/api/v1/videos/{video}/like", headers=h(people["ava"])).json() == {
            "like_count": 1
        }
        client.post("/api/v1/users/mei/follow", headers=h(people["ava"]))
        client.post(f"/api/v1/videos/{video}/save", headers=h(people["ava"]))
    assert catalog_video(platform, video).like_count == 1
    assert row_count(platform, "us", "follows", people["ava_id"]) == 1
    assert row_count(platform, "us", "saves", people["ava_id"]) == 1
    assert sorted(notifications(platform, "sg", people["mei_id"])) == ["follow", "like"]


@contextmanager
def unreachable(store: RegionStore, tmp_path: Path) -> Iterator[None]:
    """The region's database cannot be reached: every connection fails, as when its server is
    down (SQLite: a file that cannot be opened; PostgreSQL: nothing listens on the port)."""
    engine = store.session().get_bind()
    if engine.dialect.name == "sqlite":
        down = create_engine(f"sqlite:///{tmp_path}/no-such-dir/region.db")
    else:
        down = create_engine("postgresql+psycopg://reelm@127.0.0.1:9/region", connect_args={"connect_timeout": 2})
    sessions: Any = store._sessions  # noqa: SLF001 - the test swaps the connection, not the code
    sessions.configure(bind=down)
    try:
        yield
    finally:
        sessions.configure(bind=engine)
        down.dispose()


def test_a_region_that_is_down_holds_only_the_effects_bound_for_it(
    client: TestClient, platform: Platform, people: dict[str, str], tmp_path: Path
) -> None:
    # mei (sg) commented on ava's (us) video; then sg's database goes down
    parent = client.post(
        f"/api/v1/videos/{people['ava_video']}/comments", headers=h(people["mei"]), json={"text": "hey"}
    ).json()
    with unreachable(platform.region("sg"), tmp_path):
        # ava replies in us, and likes her own video: both succeed
        reply = client.post(
            f"/api/v1/videos/{people['ava_video']}/comments",
            headers=h(people["ava"]),
            json={"text": "hello back", "parent_id": parent["id"]},
        )
        assert reply.status_code == 201, reply.text
        assert client.post(
            f"/api/v1/videos/{people['ava_video']}/like", headers=h(people["ava"])
        ).status_code == 200
        assert catalog_video(platform, people["ava_video"]).comment_count == 2
        effects.dispatch_all(platform, "us", due_only=False)  # us's worker; sg's is down too
        # the reply's notification for mei waits in us, and is never dropped
        assert effects.pending_count(platform, "us") == 1
    drain(platform)
    drain(platform)
    assert notifications(platform, "sg", people["mei_id"]) == ["reply"]
    assert effects.pending_count(platform, "us") == 0


def test_a_dispatcher_that_dies_after_applying_applies_nothing_twice(
    client: TestClient, platform: Platform, people: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Died(BaseException):
        """The process dies there: nothing in reelm catches it."""

    def die(name: str) -> None:
        if name == "effects.target_committed":
            raise Died(name)

    drain(platform)  # the videos' publications, crossed off
    monkeypatch.setattr(effects, "crash_point", die)
    ava = access_session(platform, people["ava"])
    with pytest.raises(Died):  # the process dies in the dispatch right after the commit
        do_like(platform, ava, people["mei_video"])
    assert row_count(platform, "us", "likes", people["ava_id"]) == 1  # the like stands
    assert catalog_video(platform, people["mei_video"]).like_count == 1
    assert notifications(platform, "sg", people["mei_id"]) == []  # died before that one
    assert pending(platform) == 3  # the counts applied, not crossed off; the notification not
    monkeypatch.undo()
    drain(platform)
    assert pending(platform) == 0
    assert catalog_video(platform, people["mei_video"]).like_count == 1
    assert notifications(platform, "sg", people["mei_id"]) == ["like"]


def poison(platform: Platform, owner_id: str) -> str:
    """An effect whose record cannot be read back (written by an older reelm, say)."""
    with platform.region("us").transaction() as s:
        e = Effect(owner_id=owner_id, kind="CountChange", payload='{"target": "video"}')
        s.add(e)
        s.flush()
        return e.id


def test_a_poison_effect_is_parked_with_its_error_and_holds_up_nothing_else(
    client: TestClient, platform: Platform, people: dict[str, str]
) -> None:
    bad = poison(platform, people["ava_id"])
    for _ in range(effects.MAX_FAILURES):
        with platform.region("us").transaction() as s:  # due now, as when its backoff ends
            s.execute(update(Effect).values(next_attempt_at=Effect.created_at))
        effects.dispatch_all(platform, "us")
    client.post(f"/api/v1/videos/{people['mei_video']}/like", headers=h(people["ava"]))
    assert catalog_video(platform, people["mei_video"]).like_count == 1
    parked = effects.list_effects(platform, parked_only=True)
    assert [e.id for e in parked] == [bad]
    assert parked[0].state == EffectState.PARKED
    assert "ValidationError" in (parked[0].last_error or "")
    assert effects.do_retry(platform, ids=[bad]) == 1
    assert effects.list_effects(platform, parked_only=True) == []


def test_effects_cli_lists_parked_effects_and_puts_them_back(tmp_path: Path) -> None:
    """`reelm effects list|retry|dispatch` as an operator runs them, and a dispatcher process
    killed (-9) between applying and crossing off, then run again."""
    data = tmp_path / "data"
    env = {
        **os.environ,
        "REELM_DATA_DIR": str(data),
        "REELM_ARGON2_TIME_COST": "1",
        "REELM_ARGON2_MEMORY_KIB": "64",
        "REELM_ARGON2_PARALLELISM": "1",
    }

    def reelm(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reelm.cli", *args],
            env={**env, **extra}, capture_output=True, text=True, timeout=300,
        )

    assert reelm("demo", "--no-videos").returncode == 0
    from reelm.residency.service import open_platform

    platform = open_platform(Settings(data_dir=data))
    try:
        with platform.global_store.session() as g:
            ava = g.scalar(select(DirectoryEntry.user_id).where(DirectoryEntry.handle_key == "ava"))
        assert ava is not None
        bad = poison(platform, ava)
        # an effect queued and not yet applied (as a crash right after its commit leaves it)
        with platform.region("us").transaction() as s:
            s.add(Effect(owner_id=ava, kind="CountChange",
                         payload=f'{{"target":"user","id":"{ava}","field":"following","delta":1}}'))
    finally:
        platform.close()
    # a dispatcher killed right after applying it, then run again
    killed = reelm("effects", "dispatch", "--region", "us",
                   REELM_CARVEOUT_CRASH_AT="effects.target_committed")
    assert killed.returncode == -signal.SIGKILL
    done = reelm("effects", "dispatch", "--region", "us")
    assert done.returncode == 0, done.stderr
    platform = open_platform(Settings(data_dir=data))
    try:
        from reelm.social.models import PublicCounts

        with platform.global_store.session() as g:
            counts = g.get(PublicCounts, ava)
            assert counts is not None
            assert counts.following == 1  # once, not twice
            assert g.scalar(select(AppliedEffect.id).limit(1)) is not None
        with platform.region("us").transaction() as s:
            s.execute(update(Effect).values(next_attempt_at=Effect.created_at, failures=effects.MAX_FAILURES - 1))
        effects.dispatch_all(platform, "us")
    finally:
        platform.close()
    listed = reelm("effects", "list", "--parked")
    assert listed.returncode == 0
    assert bad in listed.stdout
    assert "parked" in listed.stdout
    assert reelm("effects", "retry").returncode == 2  # names nothing: a clear error
    retried = reelm("effects", "retry", bad)
    assert retried.returncode == 0
    assert "1 effect(s) put back" in retried.stdout


def test_the_workers_hourly_prune_drops_old_keys_and_replies_only(
    client: TestClient, platform: Platform, people: dict[str, str]
) -> None:
    from datetime import timedelta

    from reelm.effects.idempotency import prune_replies
    from reelm.effects.models import IdempotentReply, ReceivedEffect

    url = f"/api/v1/videos/{people['mei_video']}/comments"
    for key in ("old", "new"):
        client.post(url, headers=h(people["ava"], **{"Idempotency-Key": key}), json={"text": key})
    with platform.region("us").transaction() as s:
        s.execute(update(IdempotentReply).where(IdempotentReply.key == "old")
                  .values(created_at=effects.utcnow() - timedelta(hours=25)))  # fmt: skip
    assert prune_replies(platform, "us") == 1
    assert row_count(platform, "us", "idempotent_replies", people["ava_id"]) == 1
    later = effects.utcnow() + effects.KEY_RETENTION + timedelta(minutes=1)
    with platform.region("sg").session() as s:
        assert s.scalar(select(ReceivedEffect.id)) is not None  # mei's notifications' keys
    assert effects.prune_keys(platform, "us") == 0  # nothing is old enough yet
    assert effects.prune_keys(platform, "sg", now=later) > 0
    with platform.global_store.session() as g:
        assert g.scalar(select(AppliedEffect.id)) is None
