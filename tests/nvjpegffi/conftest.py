"""Fixtures for the nvjpegffi tests: :mod:`tests.support.nvjpeg_fixtures`, made available here.

pytest refuses ``pytest_plugins`` outside the root conftest, so they are imported.
"""

from __future__ import annotations

from tests.support.nvjpeg_fixtures import (
    c_compiler,
    emulator,
    emulator_path,
    null_context,
    official_include_dir,
    real_library,
    use_library,
)

__all__ = [
    "c_compiler",
    "emulator",
    "emulator_path",
    "null_context",
    "official_include_dir",
    "real_library",
    "use_library",
]
