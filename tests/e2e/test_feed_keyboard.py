"""The feed by keyboard alone: up and down move between videos, space pauses, m toggles sound."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from e2e.browsing import DESKTOP, api_publish, api_sign_up, make_clip, watch

pytestmark = pytest.mark.e2e

PATTERNS = [
    "gradients=type=linear:speed=0.05:c0=#fe2c55:c1=#25f4ee:nb_colors=2",
    "gradients=type=radial:speed=0.05:c0=#ffd166:c1=#118ab2:nb_colors=2",
    "gradients=type=circular:speed=0.05:c0=#06d6a0:c1=#7209b7:nb_colors=2",
]


def active_index(page: Page) -> int:
    index: int = page.evaluate(
        "() => [...document.querySelectorAll('#feed .slide')].findIndex("
        "s => s.classList.contains('is-active'))"
    )
    return index


def active_video(page: Page, script: str) -> object:
    return page.evaluate(
        f"() => {{ const v = document.querySelector('.slide.is-active video'); return {script}; }}"
    )


def test_arrow_keys_move_space_pauses_and_m_toggles_sound(
    live_url: str, browser: Browser, tmp_path: Path
) -> None:
    # three creators: For You never shows one creator twice in a row
    for n, pattern in enumerate(PATTERNS):
        token = api_sign_up(live_url, f"kbd_maker{n}", ("US", "SG", "CA")[n])
        clip = make_clip(tmp_path, f"k{n}", pattern)
        api_publish(live_url, token, clip, caption=f"keyboard clip {n} #keys")

    ctx = browser.new_context(**DESKTOP)
    page = ctx.new_page()
    w = watch(page)
    page.goto(f"{live_url}/")
    expect(page.locator("#feed .slide")).to_have_count(3, timeout=20_000)
    page.wait_for_function("() => document.querySelector('.slide.is-active') !== null")
    assert active_index(page) == 0
    page.wait_for_function(
        "() => document.querySelector('.slide.is-active video').currentTime > 0.2"
    )

    page.keyboard.press("ArrowDown")
    page.wait_for_function(
        "() => document.querySelectorAll('.slide')[1].classList.contains('is-active')"
    )
    page.keyboard.press("ArrowDown")
    page.wait_for_function(
        "() => document.querySelectorAll('.slide')[2].classList.contains('is-active')"
    )
    page.keyboard.press("ArrowDown")  # the last video stays put
    page.wait_for_timeout(300)
    assert active_index(page) == 2
    page.keyboard.press("ArrowUp")
    page.wait_for_function(
        "() => document.querySelectorAll('.slide')[1].classList.contains('is-active')"
    )
    # only the visible video plays
    page.wait_for_function("() => !document.querySelector('.slide.is-active video').paused")
    assert page.evaluate(
        "() => [...document.querySelectorAll('.slide:not(.is-active) video')].every(v => v.paused)"
    )

    page.keyboard.press(" ")
    page.wait_for_function("() => document.querySelector('.slide.is-active video').paused")
    expect(page.locator(".slide.is-active")).to_have_class(re.compile(r"\bis-paused\b"))
    page.keyboard.press(" ")
    page.wait_for_function("() => !document.querySelector('.slide.is-active video').paused")

    assert active_video(page, "v.muted") is True
    page.keyboard.press("m")
    assert active_video(page, "v.muted") is False
    expect(page.locator(".slide.is-active .mute")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("m")
    assert active_video(page, "v.muted") is True

    # the rail is reachable by Tab, each control with a name, and focus is visible
    page.locator(".slide.is-active .rail-btn.like").focus()
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")
    w.assert_clean()
    ctx.close()

    # prefers-reduced-motion: nothing starts by itself; space plays
    calm = browser.new_context(**DESKTOP, reduced_motion="reduce")
    page = calm.new_page()
    w = watch(page)
    page.goto(f"{live_url}/")
    expect(page.locator(".slide.is-active")).to_have_class(re.compile(r"\bis-paused\b"))
    page.wait_for_timeout(1000)
    assert active_video(page, "v.paused && v.currentTime === 0") is True
    page.keyboard.press(" ")
    page.wait_for_function(
        "() => document.querySelector('.slide.is-active video').currentTime > 0.2"
    )
    w.assert_clean()
    calm.close()
