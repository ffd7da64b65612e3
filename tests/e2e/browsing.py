"""Helpers of the browser tests: Playwright for Python driving Debian's Chromium against the app served by uvicorn
on a loopback port (`live_url`, with jobs run inside the request so a posted video is ready when
the request returns). `make test` installs Chromium when it is missing (`playwright install`
cannot download browsers here). Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from playwright.sync_api import ConsoleMessage, Dialog, Page, expect

from reelm.residency.store import Platform

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1440, "height": 900}}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "e2e password 123"


@dataclass
class Watched:
    """What went wrong in a page: script errors, CSP violations, dialogs that fired."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.dialogs == [], f"a dialog fired: {self.dialogs}"
        assert self.errors == [], "\n".join(self.errors)


def watch(page: Page) -> Watched:
    w = Watched()

    def console(msg: ConsoleMessage) -> None:
        if msg.type == "error" and re.search(r"Content.Security.Policy|Refused to", msg.text):
            w.errors.append(f"CSP: {msg.text}")

    def dialog(d: Dialog) -> None:
        w.dialogs.append(d.message)
        d.dismiss()

    page.on("console", console)
    page.on("pageerror", lambda exc: w.errors.append(f"page error: {exc}"))
    page.on("dialog", dialog)
    return w


def shoot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def add_song(
    platform: Platform, folder: Path, title: str, artist: str, freq: float, territories: str = "*"
) -> str:
    """A short catalog song (a tone), imported the way an operator imports one."""
    from reelm.media.synth import make_tone
    from reelm.sounds.service import do_import_song

    path = make_tone(folder / f"{title}.m4a", 8.0, freq)
    return do_import_song(
        platform, path=path, title=title, artist=artist, genre="Test", territories=territories
    ).id


def sign_up_in_browser(
    page: Page, base: str, handle: str, *, jurisdiction: str = "US", region: str = ""
) -> None:
    """Sign up on the page as a person would (the page names the home `region` it will use,
    when given), and land on the home page signed in."""
    page.goto(f"{base}/signup")
    page.get_by_label("Where do you live?").select_option(jurisdiction)
    expect(page.locator(".home-text")).to_contain_text(f"region {region}".strip())
    page.get_by_label("Birth date").fill("1999-04-05")
    page.get_by_label("Handle").fill(handle)
    page.get_by_label("Email").fill(f"{handle}@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{base}/")


def api_sign_up(base: str, handle: str, jurisdiction: str) -> str:
    r = httpx.post(
        f"{base}/api/v1/accounts",
        json={
            "handle": handle,
            "password": PASSWORD,
            "email": f"{handle}@example.org",
            "birth_date": "1999-04-05",
            "jurisdiction": jurisdiction,
        },
    )
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


def api_publish(
    base: str,
    token: str,
    clip: Path,
    *,
    caption: str,
    look: str | None = None,
    song_id: str | None = None,
    cover_s: float | None = None,
) -> str:
    """Upload and post a clip through the API (bearer token); ready when it returns."""
    auth = {"Authorization": f"Bearer {token}"}
    with clip.open("rb") as f:
        r = httpx.post(
            f"{base}/api/v1/uploads/file", headers=auth, files={"file": (clip.name, f)}, timeout=60
        )
    assert r.status_code == 201, r.text
    upload = r.json()
    duration = upload["probe"]["duration_s"]
    soundtrack = (
        {"kind": "song", "song_id": song_id, "mix": 80} if song_id else {"kind": "original"}
    )
    edit = {"trim_start_s": 0, "trim_end_s": duration, "filter": look, "soundtrack": soundtrack}
    if cover_s is not None:
        edit["cover_time_s"] = cover_s
    r = httpx.post(
        f"{base}/api/v1/videos",
        headers=auth,
        json={"upload_id": upload["id"], "edit": edit, "caption": caption},
        timeout=120,
    )
    assert r.status_code == 202, r.text
    assert r.json()["state"] == "ready", r.json()
    video_id: str = r.json()["id"]
    return video_id


def make_clip(folder: Path, name: str, pattern: str, seconds: float = 2.0) -> Path:
    from reelm.media.synth import make_test_clip

    return make_test_clip(
        folder / f"{name}.mp4", seconds=seconds, width=270, height=480, pattern=pattern
    )
