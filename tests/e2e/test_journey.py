"""The journey of issue 5 in a real Chromium: a US creator posts a clip with a look and a song, a
viewer in Singapore finds it in For You, watches it really play, likes, comments and follows, and
the creator sees each of those in the inbox."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from e2e import browsing
from e2e.browsing import DESKTOP, PHONE, add_song, make_clip, shoot, watch
from reelm.residency.store import Platform

pytestmark = pytest.mark.e2e


def sign_up_in_browser(page: Page, base: str, *, handle: str, jurisdiction: str) -> None:
    browsing.sign_up_in_browser(page, base, handle, jurisdiction=jurisdiction)
    assert page.locator("body").get_attribute("data-user") == handle


def bring_into_view(page: Page, video_id: str, *, limit: int = 12) -> None:
    """Move down the feed with the keyboard until the video is the one playing."""
    slide = page.locator(f'.slide[data-video-id="{video_id}"]')
    slide.wait_for(state="attached", timeout=20_000)
    for _ in range(limit):
        if "is-active" in (slide.get_attribute("class") or ""):
            return
        page.keyboard.press("ArrowDown")
        page.wait_for_timeout(250)
    raise AssertionError(f"video {video_id} never became the active slide")


def test_us_creator_posts_and_sg_viewer_watches_likes_comments_follows(
    live_url: str, platform: Platform, browser: Browser, tmp_path: Path
) -> None:
    add_song(platform, tmp_path, "Sunny Loop", "The Testers", 523.25)
    clip = make_clip(
        tmp_path,
        "beach",
        "gradients=type=linear:speed=0.05:c0=#00c6ff:c1=#ff7e5f:c2=#feb47b:nb_colors=3",
        seconds=3.0,
    )

    # the creator, in the US region, on a phone
    creator_ctx = browser.new_context(**PHONE)
    creator = creator_ctx.new_page()
    creator_watch = watch(creator)
    sign_up_in_browser(creator, live_url, handle="ava_us", jurisdiction="US")
    creator.goto(f"{live_url}/create")
    shoot(creator, "phone-create-empty")
    with creator.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/api/v1/uploads")
    ) as creating:
        creator.locator("#file-input").set_input_files(str(clip))
    # a retried creation (a dropped connection) must find this upload, not make another
    assert re.fullmatch(r"[0-9a-f]{32}", creating.value.headers["idempotency-key"])
    expect(creator.locator("#editor")).to_be_visible(timeout=30_000)
    # the look, from the strip of real previews of this clip
    vintage = creator.locator(".filter-opt", has_text="Vintage")
    expect(vintage.locator("img")).to_have_js_property("complete", True, timeout=20_000)
    assert vintage.locator("img").evaluate("img => img.naturalWidth") > 0
    vintage.click()
    expect(creator.locator(".preview-look")).to_have_text("Vintage")
    # the song, from the trending list (listen first)
    row = creator.locator("#song-list .song", has_text="Sunny Loop")
    row.get_by_role("button", name="Play a preview of Sunny Loop").click()
    expect(row.locator(".song-play")).to_have_attribute("aria-pressed", "true")
    row.get_by_role("button", name="Use Sunny Loop by The Testers").click()
    expect(creator.locator(".chosen-song")).to_have_text("Sunny Loop · The Testers")
    creator.get_by_label("Caption").fill("Beach day with a vintage look #reelmtest #summer")
    shoot(creator, "phone-create-editor")
    creator.get_by_role("button", name="Post").click()
    # posted, the page goes to the new video by itself
    creator.wait_for_url(re.compile(r"/v/\w+$"), timeout=90_000)
    video_id = creator.url.rsplit("/", 1)[-1]

    # the viewer, in the SG region, on a desktop
    viewer_ctx = browser.new_context(**DESKTOP)
    viewer = viewer_ctx.new_page()
    viewer_watch = watch(viewer)
    sign_up_in_browser(viewer, live_url, handle="mei_sg", jurisdiction="SG")
    bring_into_view(viewer, video_id)
    slide = viewer.locator(f'.slide[data-video-id="{video_id}"]')
    expect(slide.locator(".caption")).to_contain_text("Beach day with a vintage look")
    expect(slide.locator(".sound-name")).to_have_text("Sunny Loop · The Testers")
    # it really plays: time advances and the element reports no media error
    viewer.wait_for_function(
        """id => { const v = document.querySelector(`.slide[data-video-id="${id}"] video`);
                   return v && v.currentTime > 1.0 && !v.error && v.readyState >= 2; }""",
        arg=video_id,
        timeout=30_000,
    )
    assert slide.get_attribute("data-playback") == "hls.js"  # HLS through hls.js, not the MP4
    assert slide.locator("video").evaluate("v => v.muted") is True  # muted until the first tap
    shoot(viewer, "desktop-for-you-playing")

    # like (a double tap on the video), comment, follow
    like = slide.locator(".rail-btn.like")
    slide.locator(".tap").dblclick()
    expect(like).to_have_attribute("aria-pressed", "true")
    expect(like.locator(".rail-count")).to_have_text("1")
    slide.locator(".rail-btn.comment").click()
    drawer = viewer.locator("#comments-drawer")
    expect(drawer).to_be_visible()
    drawer.get_by_label("Add a comment").fill("Love the colours! 🌊")
    with viewer.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/comments")
    ) as posting:
        drawer.get_by_role("button", name="Post").click()
    assert re.fullmatch(r"[0-9a-f]{32}", posting.value.headers["idempotency-key"])
    expect(drawer.locator(".comment-text")).to_have_text(["Love the colours! 🌊"])
    expect(slide.locator(".rail-btn.comment .rail-count")).to_have_text("1")
    shoot(viewer, "desktop-comments")
    drawer.get_by_role("button", name="Close comments").click()
    slide.get_by_role("button", name="Follow @ava_us").click()
    expect(viewer.locator("#toast")).to_have_text("Following @ava_us")

    # the creator's inbox
    creator.goto(f"{live_url}/inbox")
    activity = creator.locator(".activity")
    expect(activity).to_contain_text("mei_sg liked your video.")
    expect(activity).to_contain_text("commented: Love the colours! 🌊")
    expect(activity).to_contain_text("started following you.")
    shoot(creator, "phone-inbox")
    creator.goto(f"{live_url}/@ava_us")
    expect(creator.locator(".followers-count")).to_have_text("1")

    creator_watch.assert_clean()
    viewer_watch.assert_clean()
    creator_ctx.close()
    viewer_ctx.close()


def test_a_rejected_upload_shows_the_servers_clear_error(
    live_url: str, browser: Browser, tmp_path: Path
) -> None:
    fake = tmp_path / "holiday.mp4"
    fake.write_text("These are my holiday notes, not a video.\n" * 50)
    ctx = browser.new_context(**DESKTOP)
    page = ctx.new_page()
    w = watch(page)
    sign_up_in_browser(page, live_url, handle="reject_me", jurisdiction="US")
    page.goto(f"{live_url}/create")
    page.locator("#file-input").set_input_files(str(fake))
    error = page.locator(".upload-error")
    expect(error).to_be_visible(timeout=20_000)
    expect(error).to_contain_text("This file is not a video")
    expect(page.locator("#editor")).to_be_hidden()
    expect(page.locator("#dropzone")).to_be_visible()  # pick another file right away
    shoot(page, "desktop-create-rejected")
    w.assert_clean()
    ctx.close()
