"""Browser-test fixtures: Chromium (Debian's, installed by `make test`) through Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from e2e.browsing import ARGS, CHROMIUM, SCREENSHOTS


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """One Playwright per session: its sync API cannot be started twice in one thread."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
    yield b
    b.close()


@pytest.fixture(scope="session", autouse=True)
def _fresh_screenshots() -> None:
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
