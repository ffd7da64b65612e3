"""Screenshots of every main page at phone (390x844) and desktop (1440x900) size, written to
test-artifacts/screenshots/ for people to look at; each page is also checked to load cleanly
(no script error, no Content-Security-Policy violation) with its landmarks and a named control
for every button and field."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from e2e.browsing import (
    DESKTOP,
    PASSWORD,
    PHONE,
    add_song,
    api_publish,
    api_sign_up,
    make_clip,
    shoot,
    watch,
)
from reelm.residency.store import Platform

pytestmark = pytest.mark.e2e

CREATORS = [
    # handle, jurisdiction, pattern, look, caption
    (
        "sunny_sam",
        "US",
        "gradients=type=linear:speed=0.05:c0=#ff9a3c:c1=#ff4e50:c2=#6a0572:nb_colors=3",
        "golden_hour",
        "Golden hour skate session 🛹 #skate #goldenhour",
    ),
    (
        "mei_eats",
        "SG",
        "life=mold=10:ratio=0.12:life_color=#ffd166:death_color=#3a0ca3:mold_color=#ef476f",
        "vivid",
        "Best laksa in town? 🍜 #food #singapore",
    ),
    (
        "yuki_nights",
        "JP",
        "mandelbrot=end_scale=0.3",
        "cyberpunk",
        "Tokyo after dark #tokyo #nightwalk #skate",
    ),
]


def unnamed_controls(page: Page) -> list[str]:
    """Buttons, links and fields a screen reader could not name."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('button, a[href], input:not([type=hidden]), select, textarea')]
              .filter(el => !el.closest('template') && el.getClientRects().length > 0)
              .filter(el => {
                const label = el.getAttribute('aria-label') || el.getAttribute('title')
                  || (el.labels && [...el.labels].map(l => l.textContent).join(' '))
                  || el.textContent || el.getAttribute('placeholder');
                return !label || !label.trim();
              })
              .map(el => el.outerHTML.slice(0, 120))"""
    )
    return found


def visit(page: Page, url: str, name: str, *, ready: str | None = None) -> None:
    page.goto(url)
    if ready:
        page.wait_for_function(ready, timeout=20_000)
    assert page.locator("main#main").count() == 1
    assert page.locator("nav[aria-label]").count() >= 1
    assert unnamed_controls(page) == [], name
    page.evaluate("document.fonts.ready")
    page.wait_for_function(
        "() => [...document.images].every(i => i.complete || i.loading === 'lazy')", timeout=10_000
    )
    shoot(page, name)


PLAYING = """() => { const v = document.querySelector('.slide.is-active video');
                     return v && v.currentTime > 0.6 && v.readyState >= 2; }"""
THUMBS = """() => [...document.querySelectorAll('.filter-opt img')].slice(0, 5)
                 .every(i => i.complete && i.naturalWidth > 0)"""


def logged_in(
    browser: Browser, base: str, handle: str, options: dict[str, object]
) -> BrowserContext:
    ctx = browser.new_context(**options)  # type: ignore[arg-type]
    r = ctx.request.post(f"{base}/api/v1/sessions", data={"handle": handle, "password": PASSWORD})
    assert r.ok, r.text()
    return ctx


def test_screenshots_of_each_main_page_at_phone_and_desktop_size(
    live_url: str, platform: Platform, browser: Browser, tmp_path: Path
) -> None:
    songs = [
        add_song(platform, tmp_path, "Sunday Skate", "Kite Avenue", 392.0),
        add_song(platform, tmp_path, "Neon Drift", "Velvet Coupe", 261.6),
    ]
    tokens: dict[str, str] = {}
    videos: list[str] = []
    for n, (handle, jurisdiction, pattern, look, caption) in enumerate(CREATORS):
        tokens[handle] = api_sign_up(live_url, handle, jurisdiction)
        clip = make_clip(tmp_path, handle, pattern, seconds=3.0)
        videos.append(
            api_publish(
                live_url,
                tokens[handle],
                clip,
                caption=caption,
                look=look,
                song_id=songs[n % 2],
                cover_s=1.0,
            )
        )
    first = CREATORS[0][0]
    for other in (CREATORS[1][0], CREATORS[2][0]):
        auth = {"Authorization": f"Bearer {tokens[other]}"}
        httpx.post(f"{live_url}/api/v1/users/{first}/follow", headers=auth)
        httpx.post(f"{live_url}/api/v1/videos/{videos[0]}/like", headers=auth)
        httpx.post(
            f"{live_url}/api/v1/videos/{videos[0]}/comments",
            headers=auth,
            json={"text": f"So good! greetings from @{other} 👋"},
        )
    auth = {"Authorization": f"Bearer {tokens[first]}"}
    httpx.post(f"{live_url}/api/v1/users/{CREATORS[1][0]}/follow", headers=auth)
    clip = make_clip(
        tmp_path,
        "draft",
        "gradients=type=spiral:speed=0.04:c0=#7209b7:c1=#f72585:c2=#4cc9f0:nb_colors=3",
        seconds=3.0,
    )

    for size, options in (("phone", PHONE), ("desktop", DESKTOP)):
        anon = browser.new_context(**options)  # type: ignore[arg-type]
        page = anon.new_page()
        w = watch(page)
        visit(page, f"{live_url}/signup", f"{size}-signup")
        visit(page, f"{live_url}/login", f"{size}-login")
        w.assert_clean()
        anon.close()

        ctx = logged_in(browser, live_url, first, options)
        page = ctx.new_page()
        w = watch(page)
        visit(page, f"{live_url}/", f"{size}-for-you", ready=PLAYING)
        visit(page, f"{live_url}/following", f"{size}-following", ready=PLAYING)
        visit(page, f"{live_url}/v/{videos[0]}", f"{size}-video", ready=PLAYING)
        visit(page, f"{live_url}/@{first}", f"{size}-profile")
        visit(page, f"{live_url}/@{CREATORS[1][0]}", f"{size}-profile-other")
        visit(page, f"{live_url}/tag/skate", f"{size}-hashtag")
        visit(page, f"{live_url}/sound/{songs[0]}", f"{size}-sound")
        visit(page, f"{live_url}/search", f"{size}-discover")
        visit(page, f"{live_url}/search?q=skate", f"{size}-search")
        visit(page, f"{live_url}/inbox", f"{size}-inbox")
        visit(page, f"{live_url}/settings", f"{size}-settings")
        visit(page, f"{live_url}/create", f"{size}-create")
        page.locator("#file-input").set_input_files(str(clip))
        page.wait_for_function(THUMBS, timeout=30_000)
        page.locator(".filter-opt", has_text="Cyberpunk").click()
        page.locator("#song-list .song", has_text="Neon Drift").get_by_role(
            "button", name="Use Neon Drift by Velvet Coupe"
        ).click()
        caption = page.get_by_label("Caption")
        caption.press_sequentially("Night ride #sk")
        page.locator(".tag-suggestions").get_by_role("button", name="#skate").click()
        assert caption.input_value() == "Night ride #skate "
        caption.press_sequentially("#neon")
        page.wait_for_function("() => document.querySelector('#preview-img').complete")
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(400)
        assert unnamed_controls(page) == []
        shoot(page, f"{size}-create-editor")
        w.assert_clean()
        ctx.close()
