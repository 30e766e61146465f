"""Headless Chromium for the browser tests: rfb.benchmark.chromium's launch, skipped (failed in CI) where missing.

Chromium is the Debian package (/usr/bin/chromium), never a downloaded browser.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rfb.benchmark.chromium import CHROMIUM, launch
from tests.support.ci import unavailable


def require_chromium() -> None:
    """Skip the calling test or fixture (fail it under CI=true) unless Chromium and Playwright are here."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is not installed (apt-get install chromium; scripts/test installs it for CI)")
    try:
        importlib.import_module("playwright.sync_api")
    except ImportError as exc:
        unavailable(f"the playwright Python package is not importable: {exc}")


@contextmanager
def chromium_context(profile: Path, **options: Any) -> Iterator[Any]:
    """A persistent headless Chromium context with its profile in ``profile``, closed at the end.

    ``options`` go to Playwright's ``launch_persistent_context`` (``viewport``,
    ``device_scale_factor``).
    """
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = launch(playwright, profile, **options)
        try:
            yield context
        finally:
            context.close()
