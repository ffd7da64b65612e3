"""The HTTP API's key flows against `reelm serve --workers 2`, each step sent to a chosen one of
the two web processes: login rate limits, CSRF, For You paging and the moving-user fence hold
across them, because nothing they rely on lives in one process's memory."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from conftest import BACKEND, free_port
from helpers import make_user, make_video
from reelm.config import Settings
from reelm.residency.models import ACTIVE, MOVING, DirectoryEntry
from reelm.residency.service import do_init
from reelm.residency.store import Platform
from reelm.social.models import Like

pytestmark = pytest.mark.skipif(BACKEND != "sqlite", reason="processes, not the database")
PASSWORD = "correct horse battery"
PER_ACCOUNT, PER_ADDRESS = 3, 10
ENV = {
    "REELM_ARGON2_TIME_COST": "1",
    "REELM_ARGON2_MEMORY_KIB": "64",
    "REELM_ARGON2_PARALLELISM": "1",
    "REELM_LOGIN_MAX_FAILURES_PER_HANDLE": str(PER_ACCOUNT),
    "REELM_LOGIN_MAX_FAILURES_PER_ADDRESS": str(PER_ADDRESS),
}


class Process:
    """Requests that reach one given web process: before each one, `/healthz` on the same
    kept-alive connection says which process holds it, and a new connection is made until it is
    the wanted one (the kernel hands connections to the two processes as they accept)."""

    def __init__(self, base: str, pid: int | None = None) -> None:
        self.base = base
        self.client = httpx.Client(base_url=base, timeout=30, limits=httpx.Limits(max_connections=1))
        self.pid = pid if pid is not None else self._holder()

    def _holder(self) -> int:
        pid: int = self.client.get("/healthz").json()["process"]
        return pid

    def _pin(self) -> None:
        for _ in range(500):
            if self._holder() == self.pid:
                return
            self.client.close()
            self.client = httpx.Client(
                base_url=self.base, timeout=30, limits=httpx.Limits(max_connections=1)
            )
        raise AssertionError(f"no connection reached web process {self.pid}")

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        self._pin()
        return self.client.request(method, url, **kw)

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, Settings, str]]:
    data = tmp_path_factory.mktemp("two") / "data"
    settings = Settings(
        data_dir=data, argon2_time_cost=1, argon2_memory_kib=64, argon2_parallelism=1
    )
    platform = do_init(settings)
    for i in range(8):  # creators in both regions, a few videos each, each with its own tag
        uid, region, _ = make_user(
            platform, settings, handle=f"maker{i}", jurisdiction="US" if i % 2 else "SG"
        )
        for j in range(5):
            make_video(platform, owner_id=uid, region=region, caption=f"clip {j} #topic{i}")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELM_")}
    log = (data.parent / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "reelm.cli", "--data-dir", str(data), "serve", "--no-workers",
         "--workers", "2", "--port", str(port)],
        env={**env, **ENV},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        pids: set[int] = set()
        while len(pids) < 2:  # both web processes answer
            assert proc.poll() is None, (data.parent / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the two web processes did not start"
            try:
                pids.add(httpx.get(f"{base}/healthz", timeout=2).json()["process"])
            except httpx.HTTPError:
                time.sleep(0.2)
        yield platform, settings, base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        platform.close()


@pytest.fixture
def two(served: tuple[Platform, Settings, str]) -> tuple[Process, Process]:
    base = served[2]
    a = Process(base)
    for _ in range(500):
        b = Process(base)
        if b.pid != a.pid:
            return a, b
        b.client.close()
    raise AssertionError("every connection reached the same web process")


def sign_up(p: Process, handle: str, jurisdiction: str = "US") -> httpx.Response:
    r = p.post(
        "/api/v1/accounts",
        json={"handle": handle, "password": PASSWORD, "email": f"{handle}@example.org",
              "birth_date": "2000-01-01", "jurisdiction": jurisdiction},
    )
    assert r.status_code == 201, r.text
    return r


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_for_you_pages_never_repeat_a_video_when_each_page_is_served_by_the_other_process(
    two: tuple[Process, Process], served: tuple[Platform, Settings, str]
) -> None:
    a, b = two
    liked: list[str] = []
    token = sign_up(a, "fan").json()["token"]
    seen: list[str] = []
    cursor: str | None = None
    for page in range(8):
        served_by, other = (a, b) if page % 2 == 0 else (b, a)
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        r = served_by.get("/api/v1/feed/for-you", params=params, headers=bearer(token))
        assert r.status_code == 200, r.text
        body = r.json()
        ids = [item["video"]["id"] for item in body["items"]]
        assert not set(ids) & set(seen), f"page {page} repeats {set(ids) & set(seen)}"
        seen += ids
        if ids:  # what the viewer likes between pages changes what a rebuilt session ranks
            r = other.post(f"/api/v1/videos/{ids[0]}/like", headers=bearer(token))
            assert r.status_code == 200, r.text
            liked.append(ids[0])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) >= 24
    assert len(seen) == len(set(seen))
    from reelm.media.models import PublishedVideo

    with served[0].global_store.session() as g:  # each like counted once, by one process
        counts = g.execute(
            select(PublishedVideo.like_count).where(PublishedVideo.id.in_(liked))
        ).scalars()
        assert list(counts) == [1] * len(liked)


def test_a_csrf_token_from_one_process_is_accepted_by_the_other(
    two: tuple[Process, Process],
) -> None:
    a, b = two
    r = sign_up(a, "cookie", "SG")
    cookies = {"Cookie": f"reelm_session={r.cookies['reelm_session']}"}
    page = a.get("/settings", headers=cookies)
    assert page.status_code == 200
    match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert match is not None
    body = {"display_name": "Cookie", "bio": ""}
    refused = b.request("PATCH", "/api/v1/me/profile", json=body, headers=cookies)
    assert refused.status_code == 403
    ok = b.request(
        "PATCH", "/api/v1/me/profile", json=body,
        headers={**cookies, "X-CSRF-Token": match.group(1)},
    )
    assert ok.status_code == 200, ok.text


def test_a_moving_user_is_refused_writes_by_both_processes_and_nothing_is_written(
    two: tuple[Process, Process], served: tuple[Platform, Settings, str]
) -> None:
    a, b = two
    platform = served[0]
    r = sign_up(a, "mover", "US").json()
    token, uid = r["token"], r["account"]["id"]
    with platform.global_store.session() as g:
        maker = g.scalar(select(DirectoryEntry.user_id).where(DirectoryEntry.handle_key == "maker1"))
    from reelm.media.models import PublishedVideo

    with platform.global_store.session() as g:
        video = g.scalar(select(PublishedVideo.id).where(PublishedVideo.creator_id == maker))
    assert video is not None
    with platform.global_store.transaction() as g:  # what a carve-out's mark does
        g.execute(update(DirectoryEntry).where(DirectoryEntry.user_id == uid)
                  .values(state=MOVING, moving_to="sg"))  # fmt: skip
    platform.region("us").wait_for_writers()  # the fence: no write that read "active" is left
    for p in (a, b):
        r = p.post(f"/api/v1/videos/{video}/like", headers=bearer(token))
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "user_moving"
        assert int(r.headers["Retry-After"]) > 0
        assert p.get("/api/v1/me", headers=bearer(token)).status_code == 200  # reads go on
        login = p.post("/api/v1/sessions", json={"handle": "mover", "password": PASSWORD})
        assert login.status_code == 503
    with platform.region("us").session() as s:
        assert s.scalar(select(func.count()).select_from(Like).where(Like.owner_id == uid)) == 0
    with platform.global_store.transaction() as g:
        g.execute(update(DirectoryEntry).where(DirectoryEntry.user_id == uid)
                  .values(state=ACTIVE, moving_to=None))  # fmt: skip
    assert b.post(f"/api/v1/videos/{video}/like", headers=bearer(token)).status_code == 200
    r = a.request("DELETE", f"/api/v1/videos/{video}/like", headers=bearer(token))
    assert r.status_code == 204


def test_failed_logins_on_both_processes_count_together(  # last: it locks the address out
    two: tuple[Process, Process], served: tuple[Platform, Settings, str]
) -> None:
    a, b = two
    sign_up(b, "ava")
    for p in (a, b, a):  # PER_ACCOUNT failures, split over the processes
        r = p.post("/api/v1/sessions", json={"handle": "ava", "password": "wrong password"})
        assert r.status_code == 401
    r = b.post("/api/v1/sessions", json={"handle": "ava", "password": PASSWORD})
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) > 0

    # the address: PER_ADDRESS failures in all (three above), on both processes, any handles
    for i in range(PER_ADDRESS - PER_ACCOUNT):
        r = (a, b)[i % 2].post(
            "/api/v1/sessions", json={"handle": f"nobody{i}", "password": "wrong password"}
        )
        assert r.status_code == 401
    sign_up(a, "fresh", "SG")
    r = b.post("/api/v1/sessions", json={"handle": "fresh", "password": PASSWORD})
    assert r.status_code == 429, r.text
    platform = served[0]
    with platform.global_store.engine.connect() as conn:  # no address, no failed handle
        text = " ".join(
            str(v)
            for t in ("directory", "public_profiles")
            for row in conn.exec_driver_sql(f"SELECT * FROM {t}")
            for v in row
        )
    assert "127.0.0.1" not in text
    assert "nobody" not in text
