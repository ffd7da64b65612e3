"""The carve-out runs while the platform serves: clients only ever see success or a 503 with a
Retry-After, never an error, and no acknowledged write is lost."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import httpx
import pytest
from carveout_seed import Seeded
from sqlalchemy import update

from reelm.accounts.models import Account
from reelm.carveout.report import operator_signer, verify_report
from reelm.carveout.service import RunOptions, do_run
from reelm.carveout.verify import do_check
from reelm.errors import TryAgainLater
from reelm.residency.models import MOVING, DirectoryEntry
from reelm.residency.store import wait_for_writers


class Client(threading.Thread):
    """Hammers the API as the seeded people: reads, profile writes, public video pages."""

    def __init__(self, base: str, seeded: Seeded) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.people = list(seeded.people.values())
        self.stop = threading.Event()
        self.seen: Counter[str] = Counter()
        self.bad: list[str] = []
        self.acked: dict[str, str] = {}
        self.n = 0

    def check(self, what: str, r: httpx.Response) -> None:
        self.seen[f"{r.status_code}"] += 1
        if r.status_code == 503 and r.headers.get("retry-after", "").isdigit():
            return
        if r.status_code >= 300:
            self.bad.append(f"{what}: {r.status_code} {r.text[:200]}")

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as c:
            while not self.stop.is_set():
                for p in self.people:
                    auth = {"Authorization": f"Bearer {p.token}"}
                    r = c.get("/api/v1/me", headers=auth)
                    self.check(f"GET /me as {p.handle}", r)
                    self.n += 1
                    bio = f"bio {self.n}"
                    r = c.patch("/api/v1/me/profile", headers=auth, json={"bio": bio})
                    self.check(f"PATCH /me/profile as {p.handle}", r)
                    if r.status_code == 200:
                        self.acked[p.handle] = bio
                    for v in p.videos:
                        self.check(f"GET video {v}", c.get(f"/api/v1/videos/{v}"))
                        self.check(f"GET poster {v}", c.get(f"/media/{v}/poster.jpg"))


def test_move_is_online_clients_see_only_success_or_retry_after(
    seeded: Seeded, live_url: str
) -> None:
    client = Client(live_url, seeded)
    client.start()
    try:
        while client.n < 20:  # traffic before the run starts
            threading.Event().wait(0.05)
        result = do_run(
            seeded.platform,
            seeded.settings,
            policy=seeded.demo,
            options=RunOptions(batch=1, rate=5, drain=0.5),
        )
        after = client.n
        while client.n < after + 20:  # and after it ends
            threading.Event().wait(0.05)
    finally:
        client.stop.set()
        client.join(timeout=30)
    assert not client.bad, client.bad[:10]
    assert client.seen["503"] > 0, f"no request ever met a moving user: {client.seen}"
    assert client.seen["200"] > 100
    assert result.moved == 6 and not result.failed
    check = do_check(seeded.platform, seeded.settings)  # (users kept writing: no manifests)
    assert check.ok, check.problems()
    assert result.report is not None
    verify_report(result.report, operator_signer(seeded.settings).verifier)
    # every write a client saw acknowledged is there, in the user's new home
    with httpx.Client(base_url=live_url) as c:
        for p in seeded.people.values():
            r = c.get("/api/v1/me", headers={"Authorization": f"Bearer {p.token}"})
            assert r.status_code == 200
            body: dict[str, Any] = r.json()
            assert body["region"] == ("us" if p.moves else "sg")
            assert body["bio"] == client.acked[p.handle], p.handle


def _mark_moving(seeded: Seeded, user_id: str) -> None:
    with seeded.platform.global_store.transaction() as g:
        g.execute(
            update(DirectoryEntry)
            .where(DirectoryEntry.user_id == user_id)
            .values(state=MOVING, moving_to="us")
        )


def test_writes_of_a_moving_user_get_503_reads_keep_working(seeded: Seeded, client: Any) -> None:
    ava = seeded.people["ava_us"]
    _mark_moving(seeded, ava.user_id)
    auth = {"Authorization": f"Bearer {ava.token}"}
    assert client.get("/api/v1/me", headers=auth).status_code == 200
    r = client.patch("/api/v1/me/profile", headers=auth, json={"bio": "x"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "user_moving"
    assert int(r.headers["retry-after"]) <= 5
    r = client.post("/api/v1/sessions", json={"handle": "ava_us", "password": "correct horse battery"})
    assert r.status_code == 503
    # below the request layer too: an ORM write, a bulk UPDATE, in either region
    store = seeded.platform.regions["sg"]
    with pytest.raises(TryAgainLater), store.transaction() as s:
        account = s.get(Account, ava.user_id)
        assert account is not None
        account.bio = "changed"
    with pytest.raises(TryAgainLater), store.transaction() as s:
        s.execute(update(Account).where(Account.id == ava.user_id).values(bio="changed"))


def test_the_fence_waits_for_a_write_that_checked_the_directory_before_the_mark(
    seeded: Seeded,
) -> None:
    store = seeded.platform.regions["sg"]
    ava = seeded.people["ava_us"]
    flushed, release, fenced = threading.Event(), threading.Event(), threading.Event()

    def writer() -> None:
        with store.transaction() as s:
            account = s.get(Account, ava.user_id)
            assert account is not None
            account.bio = "written before the mark"
            s.flush()  # checked the Directory (active) and holds the fence
            flushed.set()
            release.wait(10)

    def fence() -> None:
        wait_for_writers(store.engine)
        fenced.set()

    w = threading.Thread(target=writer)
    w.start()
    assert flushed.wait(10)
    _mark_moving(seeded, ava.user_id)
    f = threading.Thread(target=fence)
    f.start()
    assert not fenced.wait(0.5), "the fence did not wait for the write in flight"
    release.set()
    w.join(10)
    assert fenced.wait(10)
    f.join(10)
    with store.session() as s:
        account = s.get(Account, ava.user_id)
        assert account is not None and account.bio == "written before the mark"
