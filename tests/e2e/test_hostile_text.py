"""What users write is shown as text: captions, comments, bios and names holding markup, script
tags and event handlers render literally on every page, and nothing in them ever runs."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from e2e.browsing import DESKTOP, PHONE, shoot, watch
from helpers import make_user, make_video
from reelm.accounts.schemas import ProfileUpdate
from reelm.accounts.service import access_session, do_update_profile
from reelm.config import Settings
from reelm.residency.store import Platform
from reelm.social.schemas import CommentCreate
from reelm.social.service import do_comment

pytestmark = pytest.mark.e2e

CAPTION = '<script>alert("caption")</script><img src=x onerror="alert(1)"> #safe @evil_one'
COMMENT = '<img src=x onerror=alert("comment")><b>bold?</b> "quoted" & more'
BIO = '<svg onload=alert("bio")></svg><a href="javascript:alert(2)">click</a>'
NAME = '<i onmouseover=alert("name")>Mallory</i>'


def no_injected_nodes(page: Page) -> None:
    """None of the markup became elements: no <img src=x>, no inline script, no <svg onload>."""
    assert page.evaluate("() => document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert (
        page.evaluate(
            "() => document.querySelectorAll('[onerror], [onload], [onmouseover]').length"
        )
        == 0
    )
    assert (
        page.evaluate(
            "() => [...document.scripts].filter(s => !s.src && s.type !== 'application/json').length"
        )
        == 0
    )
    assert page.evaluate("() => document.querySelectorAll('a[href^=\"javascript:\"]').length") == 0


def test_hostile_captions_comments_bios_and_names_render_as_text(
    live_url: str, platform: Platform, settings: Settings, browser: Browser
) -> None:
    evil_id, _, evil_token = make_user(platform, settings, handle="evil_one", jurisdiction="US")
    do_update_profile(
        platform, access_session(platform, evil_token), ProfileUpdate(bio=BIO, display_name=NAME)
    )
    video_id = make_video(platform, owner_id=evil_id, region="us", caption=CAPTION)
    _, _, fan_token = make_user(platform, settings, handle="fan_sg", jurisdiction="SG")
    do_comment(platform, access_session(platform, fan_token), video_id, CommentCreate(text=COMMENT))

    for size, options in (("phone", PHONE), ("desktop", DESKTOP)):
        ctx = browser.new_context(**options)
        page = ctx.new_page()
        w = watch(page)

        # the video page: caption and comments rendered by the server
        page.goto(f"{live_url}/v/{video_id}")
        expect(page.locator(".video-side-caption")).to_contain_text(CAPTION.split(" #")[0])
        expect(page.locator(".static-comments .comment-text")).to_have_text([COMMENT])
        assert page.locator('meta[property="og:description"]').get_attribute("content") == CAPTION
        expect(page.locator(".video-side-caption a.tag")).to_have_text("#safe")
        no_injected_nodes(page)
        shoot(page, f"{size}-hostile-video-page")

        # the feed: caption and comments drawn by the page's script
        page.goto(f"{live_url}/")
        slide = page.locator(f'.slide[data-video-id="{video_id}"]')
        expect(slide.locator(".caption")).to_contain_text('<script>alert("caption")</script>')
        expect(slide.locator(".caption a.mention")).to_have_text("@evil_one")
        slide.locator(".rail-btn.comment").click()
        expect(page.locator("#comments-drawer .comment-text")).to_have_text([COMMENT])
        no_injected_nodes(page)
        page.keyboard.press("Escape")

        # the profile: bio and display name
        page.goto(f"{live_url}/@evil_one")
        expect(page.locator(".profile-bio")).to_have_text(BIO)
        expect(page.locator(".profile-name")).to_have_text(NAME)
        no_injected_nodes(page)

        # search results show the caption as text too
        page.goto(f"{live_url}/search?q=safe")
        expect(page.locator(".tile-caption")).to_contain_text("<script>")
        no_injected_nodes(page)

        page.wait_for_timeout(300)
        w.assert_clean()
        ctx.close()
