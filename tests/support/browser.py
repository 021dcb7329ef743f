"""A headless Chromium for UI tests: Debian's `chromium` (apt-get install -y chromium; .ci/run
installs it) driven by Playwright's Python package, which downloads no browser when it is given
the executable."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def headless_page(width: int = 1400, height: int = 1000) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def rendered_data_images(page) -> list[dict]:
    """Every <img> of the page whose source is an inline PNG: its size once decoded (0 = broken)."""
    return page.eval_on_selector_all(
        'img[src^="data:image/png;base64,"]',
        "els => els.map(e => ({width: e.naturalWidth, height: e.naturalHeight, complete: e.complete,"
        " alt: e.alt}))")
