"""Issue 16 in a real Chromium against `reelm serve` and real `reelm worker` processes (the jobs
run on the region queues, in other processes, as deployed): a new user in Germany (region sg)
signs up, uploads a short clip, picks a look and a song, posts and is taken to the new video,
then downloads their data and finds the raw upload in it, decrypted, byte-equal; an export whose
worker is killed half-way is finished by the next worker; a failed export says why and *Try
again* builds it; deletion shows its date and can be cancelled; an age refusal sticks; sign-up
shows every wrong field at once. One server for all."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from e2e.browsing import DESKTOP, PASSWORD, add_song, make_clip, watch
from e2e.served import Served, wait_for
from reelm.config import Settings
from reelm.residency.service import do_init

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("served")
    data = root / "data"
    logs = root / "logs"
    logs.mkdir()
    platform = do_init(Settings(data_dir=data))
    add_song(platform, root, "Berlin Loop", "The Testers", 523.25)
    platform.close()
    s = Served(data_dir=data, logs=logs)
    s.start_server()
    s.start_worker("sg")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(
        tmp_path_factory.mktemp("clip"),
        "berlin",
        "gradients=type=linear:speed=0.05:c0=#00c6ff:c1=#ff7e5f:nb_colors=2",
        seconds=3.0,
    )


@pytest.fixture
def ctx(browser: Browser) -> Iterator[BrowserContext]:
    c = browser.new_context(**DESKTOP, accept_downloads=True)
    yield c
    c.close()


def sign_up(page: Page, base: str, handle: str, *, birth: str = "1999-04-05") -> None:
    page.goto(f"{base}/signup")
    page.get_by_label("Where do you live?").select_option("DE")
    expect(page.locator(".home-text")).to_contain_text("region sg")
    page.get_by_label("Birth date").fill(birth)
    page.get_by_label("Handle").fill(handle)
    page.get_by_label("Email").fill(f"{handle}@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()


def post_clip(page: Page, base: str, clip: Path) -> str:
    """Upload, pick a look and a song, post; returns the id of the video the page goes to."""
    page.goto(f"{base}/create")
    page.locator("#file-input").set_input_files(str(clip))
    expect(page.locator("#editor")).to_be_visible(timeout=30_000)
    page.locator(".filter-opt", has_text="Vintage").click()
    expect(page.locator(".preview-look")).to_have_text("Vintage")
    row = page.locator("#song-list .song", has_text="Berlin Loop")
    row.get_by_role("button", name="Use Berlin Loop by The Testers").click()
    expect(page.locator(".chosen-song")).to_have_text("Berlin Loop · The Testers")
    page.get_by_label("Caption").fill("First post from Berlin #reelmtest")
    page.get_by_role("button", name="Post").click()
    # the page follows the worker's progress, then goes to the new video by itself
    expect(page.locator("#job-bar")).to_be_visible()
    page.wait_for_url(f"{base}/v/*", timeout=120_000)
    return page.url.rsplit("/", 1)[-1]


def upload_only(page: Page, base: str, clip: Path) -> None:
    """Upload a clip and stop at the editor: the raw upload is stored (an export needs no post)."""
    page.goto(f"{base}/create")
    page.locator("#file-input").set_input_files(str(clip))
    expect(page.locator("#editor")).to_be_visible(timeout=30_000)


def request_export(page: Page, base: str) -> None:
    page.goto(f"{base}/settings")
    page.get_by_role("button", name="Request data file").click()


def download_zip(page: Page) -> zipfile.ZipFile:
    link = page.locator("#export-link")
    expect(link).to_be_visible(timeout=60_000)
    assert (link.get_attribute("href") or "#") != "#"
    with page.expect_download() as info:
        link.click()
    return zipfile.ZipFile(io.BytesIO(Path(info.value.path()).read_bytes()))


def upload_ids(z: zipfile.ZipFile) -> list[str]:
    return [n.removeprefix("media/uploads/") for n in z.namelist() if n.startswith("media/uploads/")]


def test_a_new_user_posts_goes_to_the_video_and_downloads_their_raw_upload(
    served: Served, ctx: BrowserContext, clip: Path
) -> None:
    page = ctx.new_page()
    w = watch(page)
    sign_up(page, served.url, "lena_de")
    page.wait_for_url(f"{served.url}/")
    video_id = post_clip(page, served.url, clip)
    expect(page.locator(f'[data-video-id="{video_id}"]').first).to_be_attached()

    request_export(page, served.url)
    z = download_zip(page)
    [upload_id] = upload_ids(z)
    assert z.read(f"media/uploads/{upload_id}") == clip.read_bytes()
    assert "lena_de@example.org" in z.read("data/accounts.json").decode()
    assert "integrity check" not in served.log("serve.log") + served.log("worker-sg.log")
    w.assert_clean()


def test_an_export_killed_half_way_is_finished_by_the_next_worker(
    served: Served, ctx: BrowserContext, clip: Path
) -> None:
    page = ctx.new_page()
    w = watch(page)
    sign_up(page, served.url, "jonas_de")
    page.wait_for_url(f"{served.url}/")
    upload_only(page, served.url, clip)

    served.stop_worker("sg")
    doomed = served.start_worker("sg", REELM_CRASH_AT="export.half_way")
    request_export(page, served.url)
    wait_for(lambda: doomed.poll() is not None, 60, "the worker to die half-way")
    assert doomed.returncode == -9
    expect(page.locator(".export-step")).to_contain_text("Preparing your file")
    assert page.locator("#export-link").get_attribute("href") == "#"
    served.workers.pop("sg")
    served.start_worker("sg")  # requeues the export it finds `building`
    z = download_zip(page)
    [upload_id] = upload_ids(z)
    assert z.read(f"media/uploads/{upload_id}") == clip.read_bytes()
    w.assert_clean()


def test_deleting_shows_the_date_and_what_a_login_does_then_cancel(
    served: Served, ctx: BrowserContext
) -> None:
    page = ctx.new_page()
    w = watch(page)
    sign_up(page, served.url, "mila_de")
    page.wait_for_url(f"{served.url}/")
    page.goto(f"{served.url}/settings")
    page.get_by_role("button", name="Delete account").click()
    page.get_by_role("button", name="Delete in 30 days").click()
    banner = page.locator(".deletion-pending")
    expect(banner).to_be_visible()
    expect(page.get_by_role("button", name="Keep my account")).to_be_focused()
    expect(banner.locator(".deletion-date")).not_to_be_empty()
    expect(banner).to_contain_text("log in again before that date")
    date = banner.locator(".deletion-date").inner_text()
    # the next login opens the settings, where the deletion can be cancelled
    page.locator("#logout").click()
    page.wait_for_url(f"{served.url}/")
    page.goto(f"{served.url}/login")
    page.get_by_label("Handle").fill("mila_de")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{served.url}/settings#s-delete")
    expect(page.locator(".deletion-pending")).to_be_visible()
    expect(page.locator(".deletion-date")).to_have_text(date)
    page.get_by_role("button", name="Keep my account").click()
    expect(page.locator(".deletion-none")).to_be_visible()
    expect(page.locator(".delete-status")).to_have_text("Your account will not be deleted.")
    page.reload()
    expect(page.locator(".deletion-none")).to_be_visible()
    w.assert_clean()


def test_sign_up_errors_all_at_once_and_an_age_refusal_sticks(
    served: Served, ctx: BrowserContext
) -> None:
    page = ctx.new_page()
    w = watch(page)
    sign_up(page, served.url, "taken_de")
    page.wait_for_url(f"{served.url}/")
    other = ctx.browser.new_context(**DESKTOP) if ctx.browser else None
    assert other is not None
    fresh = other.new_page()
    fresh.goto(f"{served.url}/signup")
    fresh.get_by_label("Where do you live?").select_option("DE")
    fresh.get_by_label("Birth date").fill("1999-04-05")
    fresh.get_by_label("Handle").fill("taken_de")
    fresh.get_by_label("Email").fill("someone@example.org")
    fresh.get_by_label("Password").fill("short")
    fresh.get_by_role("button", name="Sign up").click()
    errors = fresh.locator(".form-error li")
    expect(errors).to_have_count(2)
    expect(fresh.locator("#signup-form .form-error")).to_contain_text("is taken")
    expect(fresh.locator("#signup-form .form-error")).to_contain_text("at least 8 characters")
    expect(fresh.locator(".field-error")).to_have_count(2)

    # under 13: refused, the birth date cleared, and changing the year does not pass
    fresh.get_by_label("Handle").fill("young_de")
    fresh.get_by_label("Password").fill(PASSWORD)
    fresh.get_by_label("Birth date").fill("2020-01-01")
    fresh.get_by_role("button", name="Sign up").click()
    expect(fresh.locator(".age-refusal")).to_be_visible()
    expect(fresh.locator("#signup-form")).to_be_hidden()
    assert fresh.get_by_label("Birth date").input_value() == ""
    fresh.reload()
    expect(fresh.locator(".age-refusal")).to_be_visible()
    fresh.evaluate("document.getElementById('signup-form').hidden = false")
    fresh.get_by_label("Birth date").fill("1990-01-01")
    fresh.get_by_role("button", name="Sign up").click()
    expect(fresh.locator(".age-refusal")).to_be_visible()
    assert fresh.url == f"{served.url}/signup"
    other.close()
    w.assert_clean()


def test_a_failed_export_says_why_and_try_again_builds_it(
    served: Served, ctx: BrowserContext, clip: Path
) -> None:
    page = ctx.new_page()
    w = watch(page)
    sign_up(page, served.url, "ruth_de")
    page.wait_for_url(f"{served.url}/")
    upload_only(page, served.url, clip)
    # the stored upload damaged on disk (one flipped bit): every attempt fails its check
    sealed = max(served.data_dir.rglob("uploads/*.enc"), key=lambda p: p.stat().st_mtime)
    good = sealed.read_bytes()
    sealed.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    request_export(page, served.url)
    error = page.locator(".export-error")
    expect(error).to_contain_text("could not be built", timeout=60_000)  # after the retries
    expect(error).to_contain_text("failed its integrity check")
    try_again = page.get_by_role("button", name="Try again")
    expect(try_again).to_be_visible()
    page.reload()  # the failure is kept, not only shown once
    expect(page.locator(".export-error")).to_contain_text("failed its integrity check")
    sealed.write_bytes(good)
    page.get_by_role("button", name="Try again").click()
    z = download_zip(page)
    assert z.read(f"media/uploads/{sealed.stem}") == clip.read_bytes()
    w.assert_clean()
