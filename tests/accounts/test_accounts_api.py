"""Accounts through the HTTP API, as a client would use it."""

from __future__ import annotations

import os
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from helpers import row_count
from reelm.accounts.models import LoginSession
from reelm.config import Settings
from reelm.db import GlobalModel, utcnow
from reelm.residency.store import Platform

PASSWORD = "correct horse battery"


def sign_up(client: TestClient, handle: str = "ava", jurisdiction: str = "US", **extra: object):  # type: ignore[no-untyped-def]
    body = {
        "handle": handle,
        "password": PASSWORD,
        "email": f"{handle}@example.org",
        "birth_date": "2000-02-29",
        "jurisdiction": jurisdiction,
        **extra,
    }
    return client.post("/api/v1/accounts", json=body)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_sign_up_in_us_stores_account_in_us_region_and_returns_region_token(
    client: TestClient, platform: Platform
) -> None:
    r = sign_up(client, "ava", "US")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["token"].startswith("us.")
    assert body["account"]["region"] == "us"
    uid = body["account"]["id"]
    assert row_count(platform, "us", "accounts", uid) == 1
    assert row_count(platform, "sg", "accounts", uid) == 0
    assert "reelm_session" in r.cookies
    me = client.get("/api/v1/me", headers=bearer(body["token"]))
    assert me.json()["email"] == "ava@example.org"


def test_sign_up_in_germany_lands_in_sg(client: TestClient, platform: Platform) -> None:
    body = sign_up(client, "amelie", "DE").json()
    assert body["token"].startswith("sg.")
    assert row_count(platform, "sg", "accounts", body["account"]["id"]) == 1


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"birth_date": (date.today() - timedelta(days=365 * 12)).isoformat()}, "too_young"),
        ({"jurisdiction": "ZZ"}, "unknown_jurisdiction"),
        ({"handle": "a"}, "invalid_handle"),
        ({"handle": "bad handle!"}, "invalid_handle"),
        ({"handle": "admin"}, "handle_reserved"),
        ({"email": "not-an-email"}, "invalid_email"),
        ({"password": "short"}, "weak_password"),
    ],
)
def test_bad_sign_up_is_refused_with_clear_error_and_writes_nothing(
    client: TestClient, platform: Platform, change: dict[str, str], code: str
) -> None:
    body = {
        "handle": "ava",
        "password": PASSWORD,
        "email": "ava@example.org",
        "birth_date": "2000-01-01",
        "jurisdiction": "US",
        **change,
    }
    r = client.post("/api/v1/accounts", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["message"]
    assert row_count(platform, "us", "accounts") == 0
    assert client.get("/api/v1/users/ava").status_code == 404


def test_under_13_message_says_so(client: TestClient) -> None:
    r = sign_up(client, birth_date=(date.today() - timedelta(days=365 * 10)).isoformat())
    assert "at least 13" in r.json()["error"]["message"]


def test_handles_are_unique_case_insensitively(client: TestClient) -> None:
    assert sign_up(client, "Ava").status_code == 201
    r = sign_up(client, "aVA", "DE")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "handle_taken"


def test_login_logout_and_wrong_password(client: TestClient) -> None:
    sign_up(client, "Mei", "SG")
    bad = client.post("/api/v1/sessions", json={"handle": "mei", "password": "wrong password"})
    assert bad.status_code == 401
    assert bad.json() == {
        "error": {"code": "wrong_credentials", "message": "Wrong handle or password."}
    }
    unknown = client.post("/api/v1/sessions", json={"handle": "nobody", "password": "x" * 10})
    assert unknown.json() == bad.json()
    ok = client.post("/api/v1/sessions", json={"handle": "MEI", "password": PASSWORD})
    assert ok.status_code == 201
    token = ok.json()["token"]
    assert token.startswith("sg.")
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    assert client.delete("/api/v1/sessions/current", headers=bearer(token)).status_code == 204
    r = client.get("/api/v1/me", headers=bearer(token))
    assert r.status_code == 401


def test_login_is_rate_limited_per_handle(client: TestClient) -> None:
    sign_up(client, "ava")
    for _ in range(5):
        assert (
            client.post(
                "/api/v1/sessions", json={"handle": "ava", "password": "nope-nope"}
            ).status_code
            == 401
        )
    r = client.post("/api/v1/sessions", json={"handle": "ava", "password": PASSWORD})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) > 0


def test_login_is_rate_limited_per_client_address(client: TestClient) -> None:
    for i in range(20):
        client.post("/api/v1/sessions", json={"handle": f"user{i}", "password": "nope-nope"})
    sign_up(client, "fresh")
    r = client.post("/api/v1/sessions", json={"handle": "fresh", "password": PASSWORD})
    assert r.status_code == 429


def test_login_failures_are_counted_in_the_home_region_and_no_address_goes_global(
    client: TestClient, platform: Platform, settings: Settings
) -> None:
    from sqlalchemy import select

    from reelm.accounts.models import Account

    uid = sign_up(client, "mei", "SG").json()["account"]["id"]
    for _ in range(2):
        r = client.post("/api/v1/sessions", json={"handle": "mei", "password": "nope-nope"})
        assert r.status_code == 401
    with platform.region("sg").session() as s:
        failures, ends = s.execute(
            select(Account.login_failures, Account.login_window_ends_at).where(Account.id == uid)
        ).one()
    assert failures == 2
    assert ends is not None
    address = "testclient"  # what Starlette's TestClient connects from
    with platform.global_store.engine.connect() as conn:
        for table in GlobalModel.metadata.sorted_tables:
            for row in conn.execute(table.select()):
                text = " ".join(str(v) for v in row)
                assert address not in text, table.name
    ok = client.post("/api/v1/sessions", json={"handle": "mei", "password": PASSWORD})
    assert ok.status_code == 201
    with platform.region("sg").session() as s:
        assert s.scalar(select(Account.login_failures).where(Account.id == uid)) == 0
    assert address not in (settings.data_dir / "throttle.db").read_bytes().decode("latin-1")


def test_revoked_session_no_longer_works(client: TestClient) -> None:
    first = sign_up(client, "ava").json()["token"]
    second = client.post("/api/v1/sessions", json={"handle": "ava", "password": PASSWORD}).json()[
        "token"
    ]
    listed = client.get("/api/v1/sessions", headers=bearer(second)).json()
    assert len(listed) == 2
    other = next(s for s in listed if not s["current"])
    assert (
        client.delete(f"/api/v1/sessions/{other['id']}", headers=bearer(second)).status_code == 204
    )
    assert client.get("/api/v1/me", headers=bearer(first)).status_code == 401
    assert client.get("/api/v1/me", headers=bearer(second)).status_code == 200
    assert len(client.get("/api/v1/sessions", headers=bearer(second)).json()) == 1


def test_cannot_revoke_someone_elses_session(client: TestClient) -> None:
    ava = sign_up(client, "ava").json()["token"]
    liam = sign_up(client, "liam", "CA").json()["token"]
    liam_session = client.get("/api/v1/sessions", headers=bearer(liam)).json()[0]["id"]
    r = client.delete(f"/api/v1/sessions/{liam_session}", headers=bearer(ava))
    assert r.status_code == 404
    assert client.get("/api/v1/me", headers=bearer(liam)).status_code == 200


def test_token_of_one_region_presented_for_another_is_refused(client: TestClient) -> None:
    token = sign_up(client, "ava", "US").json()["token"]
    forged = "sg." + token.split(".", 1)[1]
    r = client.get("/api/v1/me", headers=bearer(forged))
    assert r.status_code == 401
    assert (
        client.get("/api/v1/me", headers=bearer("mars." + token.split(".", 1)[1])).status_code
        == 401
    )
    assert client.get("/api/v1/me", headers=bearer("no-region-at-all")).status_code == 401


def test_expired_session_is_refused_with_a_clear_message(
    client: TestClient, platform: Platform
) -> None:
    token = sign_up(client, "ava").json()["token"]
    with platform.regions["us"].transaction() as s:
        s.execute(update(LoginSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    r = client.get("/api/v1/me", headers=bearer(token))
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "session_expired"


def test_cookie_session_authenticates_like_bearer(client: TestClient) -> None:
    sign_up(client, "ava")  # TestClient keeps the HttpOnly cookie
    assert client.get("/api/v1/me").json()["handle"] == "ava"


def test_profile_edit_publishes_public_part_only(client: TestClient) -> None:
    token = sign_up(client, "ava").json()["token"]
    r = client.patch(
        "/api/v1/me/profile", headers=bearer(token), json={"display_name": "Ava J", "bio": "skater"}
    )
    assert r.status_code == 200
    public = client.get("/api/v1/users/AVA").json()
    assert public == {
        "handle": "ava",
        "display_name": "Ava J",
        "bio": "skater",
        "avatar_url": None,
        "region": "us",
    }


def test_unknown_profile_field_is_refused(client: TestClient) -> None:
    token = sign_up(client, "ava").json()["token"]
    r = client.patch("/api/v1/me/profile", headers=bearer(token), json={"email": "x@y.z"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_input"


def test_error_shape_for_unknown_route_and_missing_auth(client: TestClient) -> None:
    assert client.get("/api/v1/nope").json()["error"]["code"] == "not_found"
    r = client.get("/api/v1/me")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "not_signed_in"


def test_openapi_and_health_are_served(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "process": os.getpid()}
    spec = client.get("/api/openapi.json").json()
    assert "/api/v1/accounts" in spec["paths"]
    assert client.get("/api/v1/jurisdictions").json()["NZ"] == "New Zealand"


def test_home_page_shows_where_data_lives(client: TestClient) -> None:
    sign_up(client, "ava")
    page = client.get("/")
    assert page.status_code == 200
    assert "USDS Joint Venture LLC" in page.text
    assert "everyone else" in page.text


def test_sign_up_reports_every_wrong_field_at_once(client: TestClient, platform: Platform) -> None:
    assert sign_up(client, "ava").status_code == 201
    r = sign_up(client, "AVA", "DE", password="short", email="nope")
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_fields"
    assert {k: v["code"] for k, v in error["fields"].items()} == {
        "handle": "handle_taken",
        "password": "weak_password",
        "email": "invalid_email",
    }
    assert "taken" in error["message"]
    assert "at least 8" in error["message"]
    assert row_count(platform, "sg", "accounts") == 0


def test_an_age_refusal_sticks_to_the_browser_for_a_day(
    client: TestClient, platform: Platform
) -> None:
    young = (date.today() - timedelta(days=365 * 10)).isoformat()
    r = sign_up(client, "kid", birth_date=young)
    assert r.status_code == 422
    assert r.json()["error"]["fields"]["birth_date"]["code"] == "too_young"
    cookie = r.headers["set-cookie"]
    assert "reelm_age_refused=1" in cookie
    assert "Max-Age=86400" in cookie
    # the same browser (its cookie jar) with a changed year is still refused, and nothing is kept
    again = sign_up(client, "kid", birth_date="2000-01-01")
    assert again.status_code == 422
    assert again.json()["error"]["code"] == "age_refused"
    assert row_count(platform, "us", "accounts") == 0
    page = client.get("/signup").text
    assert 'id="signup-form" data-endpoint="/api/v1/accounts" novalidate hidden' in page
    # another browser is not
    other = TestClient(client.app)
    assert sign_up(other, "teen", birth_date="2000-01-01").status_code == 201
