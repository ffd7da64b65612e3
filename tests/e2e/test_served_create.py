"""Create against `reelm serve` and a real `reelm worker` (as deployed): a draft saved in the
page survives a restart of the server and is posted from the profile's Drafts afterwards; and a
video recorded with the (fake) camera in two parts to a song is uploaded, processed and plays."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from playwright.sync_api import Browser, BrowserContext, Playwright, expect

from e2e.browsing import (
    ARGS,
    CHROMIUM,
    DESKTOP,
    add_song,
    make_clip,
    shoot,
    sign_up_in_browser,
    watch,
)
from e2e.served import Served
from reelm.config import Settings
from reelm.residency.service import do_init

pytestmark = pytest.mark.e2e
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("served-create")
    data = root / "data"
    logs = root / "logs"
    logs.mkdir()
    platform = do_init(Settings(data_dir=data))
    add_song(platform, root, "Camera Loop", "The Testers", 523.25)
    platform.close()
    s = Served(data_dir=data, logs=logs)
    s.start_server()
    s.start_worker("us")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def camera_browser(playwright: Playwright) -> Iterator[Browser]:
    """Chromium with a fake camera and microphone that it may use without asking."""
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*ARGS, *FAKE_CAMERA])
    yield b
    b.close()


@pytest.fixture
def ctx(camera_browser: Browser) -> Iterator[BrowserContext]:
    c = camera_browser.new_context(**DESKTOP)
    yield c
    c.close()


def test_a_draft_survives_a_server_restart_and_is_posted_later(
    served: Served, ctx: BrowserContext, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path, "draft", "testsrc2", seconds=2.0)
    page = ctx.new_page()
    seen = watch(page)
    sign_up_in_browser(page, served.url, "drafty", region="us")
    page.goto(f"{served.url}/create")
    page.locator("#file-input").set_input_files(str(clip))
    expect(page.locator("#editor")).to_be_visible(timeout=30_000)
    page.locator(".filter-opt", has_text="Vintage").click()
    page.get_by_role("button", name="Add text").click()
    page.get_by_label("Text 1 text").fill("kept for later")
    page.get_by_role("button", name="Add caption").click()
    page.get_by_label("Caption 1 words").fill("words to read")
    page.locator("#caption").fill("not finished yet #draft")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("button", name="Draft saved")).to_be_visible()
    assert "draft=" in page.url

    served.restart_server()  # a real restart: a new process on a new port, the same data

    page.goto(f"{served.url}/@drafty/drafts")
    tile = page.locator(".draft")
    expect(tile).to_have_count(1)
    expect(tile).to_contain_text("not finished yet #draft")
    shoot(page, "profile-drafts")
    tile.locator(".draft-open").click()
    expect(page.locator("#editor")).to_be_visible(timeout=30_000)
    expect(page.get_by_label("Text 1 text")).to_have_value("kept for later")
    expect(page.get_by_label("Caption 1 words")).to_have_value("words to read")
    expect(page.locator("#caption")).to_have_value("not finished yet #draft")
    expect(page.locator(".preview-look")).to_have_text("Vintage")
    page.get_by_role("button", name="Post").click()
    page.wait_for_url(f"{served.url}/v/**", timeout=120_000)
    seen.assert_clean()
    page.goto(f"{served.url}/@drafty/drafts")
    expect(page.locator(".draft")).to_have_count(0)


def test_record_two_parts_with_a_song_then_post_and_play(
    served: Served, ctx: BrowserContext
) -> None:
    page = ctx.new_page()
    seen = watch(page)
    sign_up_in_browser(page, served.url, "camera_kid", region="us")
    page.goto(f"{served.url}/create")
    page.get_by_role("button", name="Record with your camera").click()
    expect(page.locator("#camera")).to_have_js_property("readyState", 4, timeout=15_000)
    page.get_by_label("Record with a song").select_option(label="Camera Loop · The Testers")
    hold = page.get_by_role("button", name="Hold to record")
    for seconds in (1.2, 1.0):
        hold.dispatch_event("pointerdown")
        expect(hold).to_have_attribute("aria-pressed", "true")
        page.wait_for_timeout(seconds * 1000)
        hold.dispatch_event("pointerup")
        expect(hold).to_have_attribute("aria-pressed", "false")
        page.wait_for_timeout(400)  # paused: none of this is recorded
    expect(page.locator(".record-time")).to_contain_text("2 parts")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#editor")).to_be_visible(timeout=60_000)
    expect(page.locator(".chosen-song")).to_have_text("Camera Loop · The Testers")
    duration = float(page.locator("#trim-end").get_attribute("max") or 0)
    assert 1.8 <= duration <= 2.9  # the two parts, not the pauses between them
    page.get_by_role("button", name="Post").click()
    page.wait_for_url(f"{served.url}/v/**", timeout=120_000)
    video = page.locator("video.player").first
    page.locator(".slide .tap").first.click()
    page.wait_for_function(
        "() => document.querySelector('video.player').currentTime > 0.3", timeout=20_000
    )
    seen.assert_clean()
    # the result: vertical 720p, as long as the recording, with sound
    mp4 = page.evaluate("() => document.querySelector('.slide').dataset.mp4")
    (video_file,) = list(
        served.data_dir.glob(f"regions/us/blobs/*/videos/{mp4.split('/')[3]}/video.mp4")
    )
    with av.open(str(video_file)) as container:
        v = container.streams.video[0]
        assert (v.width, v.height) == (720, 1280)
        assert container.streams.audio
        assert float(container.duration or 0) / 1e6 == pytest.approx(duration, abs=0.3)
    assert video.count() >= 1
