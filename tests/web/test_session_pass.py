"""The signed session pass: reads skip the session-table lookup for `session_pass_seconds`, a
revoked session stops reading within that window and never writes again, and a pass is worth
nothing with another token, tampered with, or once the user's home moved."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from helpers import make_user
from reelm.accounts.models import LoginSession
from reelm.config import Settings
from reelm.db import utcnow
from reelm.residency.models import MOVING, DirectoryEntry
from reelm.residency.store import Platform
from reelm.web import deps
from reelm.web.security import PASS_COOKIE, csrf_token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def with_pass(client: TestClient, value: str) -> TestClient:
    """The client holding exactly this pass (as a browser whose jar holds it)."""
    client.cookies.clear()
    client.cookies.set(PASS_COOKIE, value)
    return client


def revoke_in_the_table(platform: Platform, region: str, token_user: str) -> None:
    """Revoke every session of the user straight in their region's table (as another device's
    'log out everywhere' would), so only a pass can still vouch for one."""
    with platform.region(region).transaction() as s:
        s.execute(
            update(LoginSession)
            .where(LoginSession.account_id == token_user)
            .values(revoked_at=utcnow())
        )


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1_900_000_000.0]
    monkeypatch.setattr(deps, "_clock", lambda: now[0])
    return now


def test_a_revoked_session_keeps_reading_only_within_the_pass_window_and_never_writes(
    client: TestClient, platform: Platform, settings: Settings, clock: list[float]
) -> None:
    uid, region, token = make_user(platform, settings, handle="ava")
    first = client.get("/api/v1/me", headers=bearer(token))
    assert first.status_code == 200
    assert PASS_COOKIE in first.cookies  # looked up: a pass comes with the answer
    revoke_in_the_table(platform, region, uid)

    # a read with the pass does not look the session up: it still works, within the window
    clock[0] += settings.session_pass_seconds - 1
    assert client.get("/api/v1/me", headers=bearer(token)).json()["handle"] == "ava"
    # a write always looks the session up
    r = client.patch("/api/v1/me/profile", json={"bio": "x"}, headers=bearer(token))
    assert r.status_code == 401
    # without the pass the revocation holds at once; after the window it holds with it too
    assert with_pass(client, "").get("/api/v1/me", headers=bearer(token)).status_code == 401
    clock[0] += 2
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_a_pass_is_worth_nothing_with_another_token_or_tampered(
    client: TestClient, platform: Platform, settings: Settings, clock: list[float]
) -> None:
    ava_id, ava_region, ava = make_user(platform, settings, handle="ava")
    _, _, bob = make_user(platform, settings, handle="bob")
    issued = client.get("/api/v1/me", headers=bearer(ava)).cookies[PASS_COOKIE]
    client.cookies.clear()
    # ava's pass sent with bob's token: bob's session is looked up, bob is who answers
    me = with_pass(client, issued).get("/api/v1/me", headers=bearer(bob))
    assert me.json()["handle"] == "bob"
    # a pass whose payload was changed (or its MAC) is ignored: ava's revoked session is refused
    revoke_in_the_table(platform, ava_region, ava_id)
    payload, mac = issued.split(".")
    for forged in (payload[:-2] + "AA." + mac, payload + "." + mac[:-2] + "AA"):
        r = with_pass(client, forged).get("/api/v1/me", headers=bearer(ava))
        assert r.status_code == 401
    assert with_pass(client, issued).get("/api/v1/me", headers=bearer(ava)).status_code == 200


def test_a_pass_is_not_used_once_the_users_home_moved(
    client: TestClient, platform: Platform, settings: Settings, clock: list[float]
) -> None:
    uid, region, token = make_user(platform, settings, handle="ava")
    issued = client.get("/api/v1/me", headers=bearer(token)).cookies[PASS_COOKIE]
    revoke_in_the_table(platform, region, uid)
    # being moved (home unchanged): the pass still serves reads, and says the user is moving
    with platform.global_store.session() as g, g.begin():
        g.execute(update(DirectoryEntry).where(DirectoryEntry.user_id == uid).values(state=MOVING))
    assert with_pass(client, issued).get("/api/v1/me", headers=bearer(token)).status_code == 200
    # moved: the Directory names another home, so the pass's region is not trusted any more
    other = next(r for r in platform.regions if r != region)
    with platform.global_store.session() as g, g.begin():
        g.execute(
            update(DirectoryEntry)
            .where(DirectoryEntry.user_id == uid)
            .values(home_region=other, state="active")
        )
    r = with_pass(client, issued).get("/api/v1/me", headers=bearer(token))
    assert r.status_code == 401


def test_a_cookie_session_gets_its_pass_and_logout_clears_both(
    client: TestClient, platform: Platform, settings: Settings, clock: list[float]
) -> None:
    _, _, token = make_user(platform, settings, handle="ava")
    client.cookies.set("reelm_session", token)
    assert PASS_COOKIE in client.get("/api/v1/me").cookies
    r = client.delete(
        "/api/v1/sessions/current", headers={"X-CSRF-Token": csrf_token(settings, token)}
    )
    assert r.status_code == 204
    cleared = sorted(c.split(";")[0] for c in r.headers.get_list("set-cookie"))
    assert cleared == ['reelm_pass=""', 'reelm_session=""']
    client.cookies.clear()
    client.cookies.set("reelm_session", token)  # the old token sent again: revoked at once
    assert client.get("/api/v1/me").status_code == 401


def test_passes_off_with_zero_seconds(platform: Platform, settings: Settings) -> None:
    from reelm.web.app import create_app

    off = settings.model_copy(update={"session_pass_seconds": 0})
    with TestClient(create_app(off, platform=platform)) as c:
        _, _, token = make_user(platform, off, handle="ava")
        r = c.get("/api/v1/me", headers=bearer(token))
        assert r.status_code == 200
        assert PASS_COOKIE not in r.cookies
