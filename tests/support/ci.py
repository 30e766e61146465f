"""What a missing test requirement does: skip with the reason here, fail in CI.

A skipped check checks nothing, so where CI is meant to have everything (``CI=true``),
a requirement that cannot be met is a failure that says which one.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI") == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test or fixture with ``reason``; in CI, fail with it instead."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)
