"""A song licensed only in some countries: a viewer elsewhere gets the video muted, with the
notice, and no way to turn the sound on (issue 3, item 7, as the player shows it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from e2e.browsing import DESKTOP, PASSWORD, add_song, api_publish, api_sign_up, make_clip, watch
from reelm.residency.store import Platform

pytestmark = pytest.mark.e2e


def test_a_viewer_where_the_song_is_not_licensed_watches_muted_with_a_notice(
    live_url: str, platform: Platform, browser: Browser, tmp_path: Path
) -> None:
    song = add_song(platform, tmp_path, "Only Here", "Local Band", 349.2, territories="US")
    creator = api_sign_up(live_url, "us_maker", "US")
    clip = make_clip(tmp_path, "local", "gradients=type=linear:speed=0.05:c0=#ffb703:c1=#023047")
    video = api_publish(live_url, creator, clip, caption="local hit #local", song_id=song)
    api_sign_up(live_url, "sg_listener", "SG")

    ctx = browser.new_context(**DESKTOP)
    ctx.request.post(
        f"{live_url}/api/v1/sessions", data={"handle": "sg_listener", "password": PASSWORD}
    )
    page = ctx.new_page()
    w = watch(page)
    for path in (f"/v/{video}", "/"):
        page.goto(f"{live_url}{path}")
        slide = page.locator(f'.slide[data-video-id="{video}"]')
        notice = slide.locator(".licence-notice")
        expect(notice).to_be_visible(timeout=20_000)
        expect(notice).to_contain_text("Only Here")
        expect(slide.locator(".mute")).to_be_disabled()
        page.wait_for_function(
            "() => document.querySelector('.slide.is-active video').currentTime > 0.3"
        )
        slide.locator(".tap").click()  # the tap that would turn the sound on
        page.keyboard.press("m")
        page.wait_for_timeout(400)
        assert slide.locator("video").evaluate("v => v.muted") is True
    w.assert_clean()
    ctx.close()
