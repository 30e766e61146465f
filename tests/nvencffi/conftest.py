"""Fixtures for the nvencffi tests: the official header, the NVENC emulator, host frames.

They live in tests/support (shared with tests/encoders, which drives the same emulator
through the nvenc_gpu_cffi route): the fixtures in the plugin module
:mod:`tests.support.nvenc_fixtures`, made available here by importing them (pytest
refuses ``pytest_plugins`` outside the root conftest), the frame helpers in
:mod:`tests.support.frames`.
"""

from __future__ import annotations

from tests.support.nvenc_fixtures import (
    c_compiler,
    emulated_context,
    emulator,
    emulator_path,
    null_context,
    official_header_dir,
)

__all__ = [
    "c_compiler",
    "emulated_context",
    "emulator",
    "emulator_path",
    "null_context",
    "official_header_dir",
]
