"""Debian's headless Chromium as the browser benchmarks launch it (and the browser tests with them).

One recipe: the Debian package at :data:`CHROMIUM` (never a downloaded browser), driven
by Playwright, headless and software only, with nothing that talks to the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def launch(
    playwright: Any, profile: str | Path, *, chromium: Path = CHROMIUM, extra_args: Sequence[str] = (), **options: Any
) -> Any:
    """A persistent context of ``chromium`` with :data:`CHROMIUM_ARGS` and ``extra_args``, its profile in ``profile``.

    ``playwright`` is a started ``sync_playwright()``; ``options`` go to Playwright's
    ``launch_persistent_context`` (``viewport``, ``device_scale_factor``). The caller closes the context.
    """
    return playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=str(chromium),
        args=[*CHROMIUM_ARGS, *extra_args],
        headless=True,
        **options,
    )
