"""Create's editing tools in a real Chromium: a text on the video, previewed over the frame in its
bundled font for its time only, then burnt into the published pictures for exactly that time
(checked by decoding them); the cover picked on the page is the poster."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect

from e2e.browsing import DESKTOP, shoot, sign_up_in_browser, watch
from helpers import blob_path
from reelm.media.synth import make_test_clip
from reelm.residency.store import Platform

pytestmark = pytest.mark.e2e


def set_range(page: Page, selector: str, value: float) -> None:
    """Move a slider as a drag would: its value, then input and change events."""
    page.locator(selector).evaluate(
        """(el, v) => { el.value = String(v);
            el.dispatchEvent(new Event('input', {bubbles: true}));
            el.dispatchEvent(new Event('change', {bubbles: true})); }""",
        value,
    )


def white_share(picture: np.ndarray) -> float:  # type: ignore[type-arg]
    box = picture[530:620, 150:570]  # where a text centred at y = 0.45 sits on 720x1280
    return float(((box[..., 0] > 225) & (box[..., 1] > 225) & (box[..., 2] > 225)).mean())


def video_files(platform: Platform, video_id: str) -> Path:
    store = platform.regions["us"]
    (key,) = [k for k in store.blobs.keys("") if k.endswith(f"/videos/{video_id}/video.mp4")]
    path = blob_path(store, key)
    return path.parent


def test_text_on_video_previews_then_shows_in_the_published_frames_and_cover_is_the_poster(
    live_url: str, platform: Platform, browser: Browser, tmp_path: Path
) -> None:
    clip = make_test_clip(tmp_path / "pattern.mp4", seconds=2.0, width=270, height=480)
    ctx = browser.new_context(**DESKTOP)
    page = ctx.new_page()
    seen = watch(page)
    sign_up_in_browser(page, live_url, "tessa")
    page.goto(f"{live_url}/create")
    page.locator("#file-input").set_input_files(str(clip))
    expect(page.locator("#editor")).to_be_visible(timeout=30_000)

    page.get_by_role("button", name="Add text").click()
    page.get_by_label("Text 1 text").fill("HELLO")
    set_range(page, ".text-item .text-size", 96)
    set_range(page, ".text-item .text-y", 45)
    page.get_by_label("Text 1 from (s)").fill("0.5")
    page.get_by_label("Text 1 to (s)").fill("1.2")
    overlay = page.locator("#text-layer .text-overlay")
    # at 0 s the text is not on screen yet; at 0.8 s it is, in the bundled font
    expect(overlay).to_be_hidden()
    set_range(page, "#preview-at", 0.8)
    expect(overlay).to_be_visible()
    expect(overlay).to_have_text("HELLO")
    assert "reelm-classic" in overlay.evaluate("el => getComputedStyle(el).fontFamily")
    page.wait_for_function("() => document.fonts.check('40px reelm-classic')")
    box = overlay.bounding_box()
    frame = page.locator(".create-preview .phone-frame").bounding_box()
    assert box is not None
    assert frame is not None
    centre_y = (box["y"] + box["height"] / 2 - frame["y"]) / frame["height"]
    assert centre_y == pytest.approx(0.45, abs=0.03)
    shoot(page, "create-text-overlay")
    set_range(page, "#preview-at", 1.5)
    expect(overlay).to_be_hidden()
    set_range(page, "#cover-at", 1.5)
    expect(page.locator(".cover-out")).to_have_text("1.5 s")
    expect(page.locator("#cover-img")).to_have_attribute("src", re.compile(r"at=1\.5"))

    page.get_by_role("button", name="Post").click()
    page.wait_for_url(f"{live_url}/v/**", timeout=60_000)
    video_id = page.url.rsplit("/", 1)[-1]
    seen.assert_clean()

    files = video_files(platform, video_id)
    with av.open(str(files / "video.mp4")) as container:
        pictures = [
            f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])
        ]
    shown = [white_share(p) > 0.1 for p in pictures]
    assert shown.index(True) == 15  # 0.5 s at 30 fps
    assert len(shown) - shown[::-1].index(True) == 36  # up to 1.2 s
    assert not any(shown[:15])
    assert not any(shown[36:])
    with av.open(str(files / "poster.jpg")) as container:
        poster = next(container.decode(container.streams.video[0])).to_ndarray(format="rgb24")
    errors = [float(((poster.astype(int) - p.astype(int)) ** 2).mean()) for p in pictures]
    assert int(np.argmin(errors)) == 45  # the cover picked at 1.5 s
    ctx.close()


def test_captions_from_a_file_and_typed_are_served_and_shown_with_the_cc_toggle(
    live_url: str, platform: Platform, browser: Browser, tmp_path: Path
) -> None:
    clip = make_test_clip(tmp_path / "short.mp4", seconds=2.0, width=180, height=320)
    not_vtt = tmp_path / "subs.vtt"
    not_vtt.write_text("1\n00:00:00,000 --> 00:00:01,000\nan SRT file renamed\n")
    good = tmp_path / "good.vtt"
    good.write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nHello from the file\n")
    ctx = browser.new_context(**DESKTOP)
    page = ctx.new_page()
    seen = watch(page)
    sign_up_in_browser(page, live_url, "carla")
    page.goto(f"{live_url}/create")
    page.locator("#file-input").set_input_files(str(clip))
    expect(page.locator("#editor")).to_be_visible(timeout=30_000)

    page.locator("#vtt-input").set_input_files(str(not_vtt))
    expect(page.locator(".captions-error")).to_contain_text("subs.vtt: This is not a WebVTT file")
    expect(page.locator(".cue-item")).to_have_count(0)
    page.locator("#vtt-input").set_input_files(str(good))
    expect(page.locator(".captions-error")).to_be_hidden()
    expect(page.get_by_label("Caption 1 words")).to_have_value("Hello from the file")
    page.get_by_role("button", name="Add caption").click()
    page.get_by_label("Caption 2 from (s)").fill("1")
    page.get_by_label("Caption 2 to (s)").fill("2")
    page.get_by_label("Caption 2 words").fill("and typed by hand")
    page.get_by_role("button", name="Post").click()
    page.wait_for_url(f"{live_url}/v/**", timeout=60_000)

    slide = page.locator(".slide").first
    cc = slide.get_by_role("button", name="Captions")
    expect(cc).to_be_visible(timeout=15_000)
    expect(cc).to_have_attribute("aria-pressed", "false")
    cc.click()
    expect(cc).to_have_attribute("aria-pressed", "true")
    # the player shows the HLS subtitles track, with both captions, at their times
    page.wait_for_function(
        """() => [...document.querySelector('video.player').textTracks].some(
            t => t.mode === 'showing' && t.cues && t.cues.length === 2)""",
        timeout=20_000,
    )
    cues = page.evaluate(
        """() => [...[...document.querySelector('video.player').textTracks]
            .find(t => t.mode === 'showing').cues].map(c => [c.startTime, c.endTime, c.text])"""
    )
    assert [c[2] for c in cues] == ["Hello from the file", "and typed by hand"]
    assert cues[0][0] == pytest.approx(0.0, abs=0.1)
    assert cues[1][0] == pytest.approx(1.0, abs=0.1)
    assert slide.get_attribute("data-playback") == "hls.js"
    shoot(page, "player-captions")
    cc.click()
    expect(cc).to_have_attribute("aria-pressed", "false")
    assert page.evaluate(
        "() => [...document.querySelector('video.player').textTracks].every(t => t.mode !== 'showing')"
    )
    seen.assert_clean()
    ctx.close()
