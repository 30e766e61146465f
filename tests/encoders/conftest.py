"""Fixtures for the encode-route tests: the NVENC emulator of tests/nvencffi, shared.

The nvenc_gpu_cffi route is driven against the emulator, and nvenc_gpu_pyav builds
FFmpeg runs on it: the fixtures come from the plugin module
:mod:`tests.support.nvenc_fixtures`, imported here (pytest refuses ``pytest_plugins``
outside the root conftest).
"""

from __future__ import annotations

from tests.support.nvenc_fixtures import c_compiler, emulator, emulator_path, official_header_dir

__all__ = ["c_compiler", "emulator", "emulator_path", "official_header_dir"]
