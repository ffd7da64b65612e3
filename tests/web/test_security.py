"""Browser-facing defences of the web app: CSRF for cookie sessions, cross-site refusal, the
Content-Security-Policy and friends on every response, and pages that render errors as pages."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from helpers import make_user, make_video
from reelm.config import Settings
from reelm.residency.store import Platform
from reelm.web.security import csrf_token

SIGN_UP = {
    "handle": "ava",
    "password": "correct horse battery",
    "email": "ava@example.org",
    "birth_date": "2000-01-01",
    "jurisdiction": "US",
}


def test_every_response_carries_a_script_policy_without_inline_code(client: TestClient) -> None:
    for path in ("/", "/login", "/api/v1/ping", "/static/reelm.css"):
        r = client.get(path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp, path
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    page = client.get("/signup").text
    assert not re.search(r"<script(?![^>]*\b(src|type=\"application/json\"))", page)
    assert not re.search(r"\son[a-z]+=", page), "no inline event handlers"
    assert " style=" not in page


def test_cookie_session_needs_the_csrf_token_for_unsafe_requests(
    client: TestClient, settings: Settings
) -> None:
    token = client.post("/api/v1/accounts", json=SIGN_UP).json()["token"]  # sets the cookie
    r = client.patch("/api/v1/me/profile", json={"bio": "forged"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "csrf_failed"
    r = client.patch(
        "/api/v1/me/profile", json={"bio": "wrong"}, headers={"X-CSRF-Token": "0" * 64}
    )
    assert r.status_code == 403
    good = {"X-CSRF-Token": csrf_token(settings, token)}
    assert client.patch("/api/v1/me/profile", json={"bio": "mine"}, headers=good).status_code == 200
    # the page hands the same token to its scripts and to htmx
    page = client.get("/settings").text
    assert f'<meta name="csrf-token" content="{csrf_token(settings, token)}">' in page
    # reads need no token
    assert client.get("/api/v1/me").status_code == 200


def test_bearer_requests_are_exempt_and_cross_site_posts_are_refused(
    client: TestClient, platform: Platform, settings: Settings
) -> None:
    _, _, token = make_user(platform, settings, handle="mei", jurisdiction="SG")
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.patch("/api/v1/me/profile", json={"bio": "b"}, headers=bearer).status_code == 200
    # a login posted from another site (login CSRF) is refused before it runs
    r = client.post(
        "/api/v1/sessions",
        json={"handle": "mei", "password": "correct horse battery"},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "cross_site"
    same = client.post(
        "/api/v1/sessions",
        json={"handle": "mei", "password": "correct horse battery"},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert same.status_code == 201


def test_pages_render_for_visitors_and_errors_as_pages(
    client: TestClient, platform: Platform, settings: Settings
) -> None:
    ava_id, _, _ = make_user(platform, settings, handle="ava", jurisdiction="US")
    video = make_video(platform, owner_id=ava_id, region="us", caption="hello #world @ava")
    for path in (
        "/",
        "/following",
        "/search",
        "/search?q=hello",
        "/@ava",
        "/tag/world",
        f"/v/{video}",
        "/signup",
        "/login",
        "/transparency",
    ):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html"), path
    for path in ("/inbox", "/create", "/settings"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == f"/login?next={path}"
    missing = client.get("/@nobody_here")
    assert missing.status_code == 404
    assert "text/html" in missing.headers["content-type"]
    assert "No user @nobody_here" in missing.text
    og = client.get(f"/v/{video}").text
    assert re.search(
        rf'<meta property="og:video" content="http://testserver/media/v/{video}/[0-9a-f]{{16}}/video.mp4">',
        og,
    )
    assert '<a class="tag" href="/tag/world">#world</a>' in og
