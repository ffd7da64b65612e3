"""The carve-out runs while the platform serves: clients only ever see success or a 503 with a
Retry-After, never an error, and no acknowledged write is lost."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from carveout_seed import Person, Seeded
from reelm.accounts.models import Account
from reelm.carveout.manifest import compute_manifests
from reelm.carveout.report import operator_signer, verify_report
from reelm.carveout.service import RunOptions, do_run
from reelm.carveout.verify import do_check
from reelm.errors import TryAgainLater
from reelm.residency.models import MOVING, DirectoryEntry


class Client(threading.Thread):
    """Hammers the API as one seeded person: reads, profile writes, their public videos."""

    def __init__(self, base: str, person: Person, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.person = person
        self.stop = stop
        self.seen: Counter[str] = Counter()
        self.bad: list[str] = []
        self.acked = ""
        self.n = 0

    def check(self, what: str, r: httpx.Response) -> None:
        self.seen[f"{r.status_code}"] += 1
        if r.status_code == 503 and r.headers.get("retry-after", "").isdigit():
            return
        if r.status_code >= 300:
            self.bad.append(f"{what}: {r.status_code} {r.text[:200]}")

    def run(self) -> None:
        p = self.person
        auth = {"Authorization": f"Bearer {p.token}"}
        with httpx.Client(base_url=self.base, timeout=30) as c:
            while not self.stop.is_set():
                self.check(f"GET /me as {p.handle}", c.get("/api/v1/me", headers=auth))
                self.n += 1
                bio = f"bio {self.n}"
                r = c.patch("/api/v1/me/profile", headers=auth, json={"bio": bio})
                self.check(f"PATCH /me/profile as {p.handle}", r)
                if r.status_code == 200:
                    self.acked = bio
                for v in p.videos:
                    self.check(f"GET video {v}", c.get(f"/api/v1/videos/{v}"))
                    self.check(f"GET poster {v}", c.get(f"/media/{v}/poster.jpg"))


def test_move_is_online_clients_see_only_success_or_retry_after(
    seeded: Seeded, live_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reelm.carveout.move as move

    def slow_manifests(store: Any, owners: Any) -> Any:
        # a slower copy: each user stays `moving` long enough to be hit, even when a loaded
        # machine makes each client's round of requests take half a second
        time.sleep(0.6)
        return compute_manifests(store, owners)

    monkeypatch.setattr(move, "compute_manifests", slow_manifests)
    stop = threading.Event()
    clients = [Client(live_url, p, stop) for p in seeded.people.values()]
    for c in clients:
        c.start()
    try:
        while min(c.n for c in clients) < 3:  # traffic before the run starts
            time.sleep(0.05)
        result = do_run(
            seeded.platform,
            seeded.settings,
            policy=seeded.demo,
            options=RunOptions(batch=1, drain=0.5),
        )
        after = [c.n for c in clients]
        while any(c.n < n + 3 for c, n in zip(clients, after, strict=True)):  # and after it
            time.sleep(0.05)
    finally:
        stop.set()
        for c in clients:
            c.join(timeout=30)
    seen = sum((c.seen for c in clients), Counter())
    bad = [b for c in clients for b in c.bad]
    assert not bad, bad[:10]
    for c in clients:
        if c.person.moves:
            assert c.seen["503"] > 0, f"{c.person.handle} was never met while moving: {c.seen}"
    assert seen["200"] > 100
    assert result.moved == 6
    assert not result.failed
    check = do_check(seeded.platform, seeded.settings)  # (users kept writing: no manifests)
    assert check.ok, check.problems()
    assert result.report is not None
    verify_report(result.report, operator_signer(seeded.settings).verifier)
    # every write a client saw acknowledged is there, in the user's new home
    acked = {c.person.handle: c.acked for c in clients}
    with httpx.Client(base_url=live_url) as web:
        for p in seeded.people.values():
            r = web.get("/api/v1/me", headers={"Authorization": f"Bearer {p.token}"})
            assert r.status_code == 200
            body: dict[str, Any] = r.json()
            assert body["region"] == ("us" if p.moves else "sg")
            assert body["bio"] == acked[p.handle], p.handle


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
    r = client.post(
        "/api/v1/sessions", json={"handle": "ava_us", "password": "correct horse battery"}
    )
    assert r.status_code == 503
    # below the request layer too: an ORM write, a bulk UPDATE, in either region
    store = seeded.platform.regions["sg"]
    with store.session() as s:
        account = s.get(Account, ava.user_id)
        assert account is not None
        account.bio = "changed"
        with pytest.raises(TryAgainLater):
            s.flush()
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
        store.wait_for_writers()
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
        assert account is not None
        assert account.bio == "written before the mark"
