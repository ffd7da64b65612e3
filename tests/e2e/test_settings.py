"""Settings in the browser: where the data lives, privacy, sessions, download my data, deletion
with 30 days' notice, logging out and in again; and "use this sound" opening Create with it."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from e2e.browsing import DESKTOP, PASSWORD, PHONE, add_song, api_sign_up, shoot, watch
from reelm.residency.store import Platform

pytestmark = pytest.mark.e2e


def test_settings_show_the_region_and_run_privacy_sessions_export_and_deletion(
    live_url: str, browser: Browser
) -> None:
    api_sign_up(live_url, "sg_settler", "SG")
    httpx.post(  # a second device, to log out from here
        f"{live_url}/api/v1/sessions",
        json={"handle": "sg_settler", "password": PASSWORD},
        headers={"User-Agent": "Old Phone Browser/1.0"},
    )
    ctx = browser.new_context(**PHONE)
    page = ctx.new_page()
    w = watch(page)
    page.goto(f"{live_url}/login?next=/settings")
    page.get_by_label("Handle").fill("sg_settler")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_url}/settings")

    # where your data lives: the region, its operator and its country
    expect(page.locator(".where-region")).to_have_text("sg")
    expect(page.locator(".where-country")).to_have_text("Singapore")
    expect(page.locator(".where-operator")).to_contain_text("(")

    page.get_by_role("switch", name=re.compile("Private account")).check()
    expect(page.locator(".privacy-status")).to_have_text("Your account is private.")

    sessions = page.locator(".sessions li")
    expect(sessions).to_have_count(3)
    page.get_by_role("button", name=re.compile(r"Log out this session \(Old Phone")).click()
    expect(sessions).to_have_count(2)

    page.get_by_role("button", name="Request data file").click()
    link = page.locator("#export-link")
    expect(link).to_be_visible(timeout=30_000)
    assert re.search(
        r"/api/v1/exports/sg/\w+/\w+\?expires=\d+&sig=", link.get_attribute("href") or ""
    )

    page.get_by_role("button", name="Delete account").click()
    page.get_by_role("button", name="Delete in 30 days").click()
    expect(page.locator(".deletion-pending")).to_be_visible()
    expect(page.locator(".deletion-date")).not_to_be_empty()
    shoot(page, "phone-settings-deletion-pending")
    page.get_by_role("button", name="Keep my account").click()
    expect(page.locator(".delete-status")).to_have_text("Your account will not be deleted.")

    page.locator("#logout").click()
    page.wait_for_url(f"{live_url}/")
    assert page.locator("body").get_attribute("data-user") == ""
    w.assert_clean()
    ctx.close()


def test_use_this_sound_opens_create_with_the_song_chosen(
    live_url: str, platform: Platform, browser: Browser, tmp_path: Path
) -> None:
    song_id = add_song(platform, tmp_path, "Harbour Lights", "Night Ferry", 440.0)
    api_sign_up(live_url, "sound_fan", "US")
    ctx = browser.new_context(**DESKTOP)
    ctx.request.post(
        f"{live_url}/api/v1/sessions", data={"handle": "sound_fan", "password": PASSWORD}
    )
    page = ctx.new_page()
    w = watch(page)
    page.goto(f"{live_url}/sound/{song_id}")
    page.get_by_role("button", name="Play Harbour Lights").click()
    expect(page.locator(".sound-play")).to_have_attribute("aria-pressed", "true")
    page.get_by_role("link", name="Use this sound").click()
    page.wait_for_url(re.compile(r"/create\?sound="))
    expect(page.locator(".chosen-song")).to_have_text("Harbour Lights · Night Ferry")
    expect(page.locator('input[name="soundtrack"][value="song"]')).to_be_checked()
    w.assert_clean()
    ctx.close()
