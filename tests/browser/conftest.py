"""The browser tests' Chromium (Debian's, driven by Playwright: its own download fails here), and
their screenshots: FIRETASKS_SCREENSHOTS=docs/screenshots refreshes the README's."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make install` installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def browser(chromium: Browser) -> Iterator[Browser]:
    """The browser, whose pages close after each test: open pages keep polling or listening."""
    yield chromium
    for context in chromium.contexts:
        context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Callable[[Page | Locator, str], None]:
    """`shots(page, name)` saves the whole page as `name`.png; `shots(locator, name)` one part."""
    folder = Path(os.environ.get("FIRETASKS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)

    def shot(target: Page | Locator, name: str) -> None:
        path = str(folder / f"{name}.png")
        if isinstance(target, Page):
            target.screenshot(path=path, full_page=True)
        else:
            target.screenshot(path=path)

    return shot
