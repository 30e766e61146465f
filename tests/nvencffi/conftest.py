"""Fixtures for the nvencffi tests: the official header, the NVENC emulator, host frames.

The emulator (tests/nvenc_emulator) is compiled against NVIDIA's official header and
named like the real library; ``NVENCFFI_LIBRARY`` points the binding at it, and
``nvencffi.reset_library()`` makes the binding load (and negotiate with) it afresh for
every test. Without a GPU the emulator reads frames from host memory, which the tests
hand over as NumPy arrays wrapped in a ``__cuda_array_interface__`` carrying the host
pointer, with a ``NullContext`` instead of a CUDA context.

Where the official header (and so the emulator) cannot be obtained, the tests that need
it skip with the reason, except in CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nvencffi
from nvencffi.library import ENV_LIBRARY

IN_CI = os.environ.get("CI") == "true"


def unavailable(reason: str) -> None:
    """Skip with ``reason``; in CI, fail instead (a skipped check there checks nothing)."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def official_header_dir() -> Path:
    from tests.support.nvenc_header import HeaderUnavailable, official_header_dir

    try:
        return official_header_dir()
    except (HeaderUnavailable, OSError) as exc:
        unavailable(f"NVIDIA's official nvEncodeAPI.h could not be obtained: {exc}")
        raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def c_compiler() -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        unavailable("no C compiler (cc) on this machine")
    return cc  # type: ignore[return-value]


@pytest.fixture(scope="session")
def emulator_path(official_header_dir: Path, c_compiler: str) -> Path:
    try:
        from tests.nvenc_emulator import build_emulator
    except ImportError as exc:
        unavailable(f"the NVENC emulator package is not importable: {exc}")
        raise AssertionError("unreachable")
    return build_emulator()


@pytest.fixture
def emulator(emulator_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh emulator the binding will load; asserts nothing leaked when the test ends."""
    from tests.nvenc_emulator import Emulator

    monkeypatch.setenv(ENV_LIBRARY, str(emulator_path))
    nvencffi.reset_library()
    emu = Emulator(emulator_path)
    emu.reset()
    yield emu
    emu.clear_faults()
    nvencffi.reset_library()


@pytest.fixture
def null_context() -> nvencffi.NullContext:
    return nvencffi.NullContext()


class HostCudaArray:
    """A host NumPy array presented through ``__cuda_array_interface__`` (v3).

    Only the emulator, which reads host memory when there is no CUDA, accepts these.
    Keeps the array alive as long as the wrapper is.
    """

    def __init__(self, array: np.ndarray, *, strides: tuple[int, ...] | None = None) -> None:
        self.array = array
        if strides is None and not array.flags.c_contiguous:
            strides = array.strides
        self.__cuda_array_interface__ = {
            "shape": array.shape,
            "typestr": array.dtype.str,
            "data": (array.ctypes.data, False),
            "strides": strides,
            "version": 3,
            "stream": None,
        }

    @property
    def pointer(self) -> int:
        return self.array.ctypes.data


def nv12_frame(width: int, height: int, *, pitch: int | None = None, seed: int = 0) -> tuple[HostCudaArray, np.ndarray, np.ndarray]:
    """A random NV12 frame in one (H + H/2, pitch) allocation viewed as (H + H/2, W).

    Returns (the frame, its Y plane (H, W), its interleaved UV plane (H/2, W)).
    """
    pitch = width if pitch is None else pitch
    rng = np.random.default_rng(seed)
    storage = rng.integers(0, 256, size=(height * 3 // 2, pitch), dtype=np.uint8)
    view = storage[:, :width]
    frame = HostCudaArray(view)
    frame.storage = storage  # type: ignore[attr-defined]
    return frame, view[:height].copy(), view[height:].copy()


def rgba_frame(width: int, height: int, *, pitch: int | None = None, seed: int = 0) -> tuple[HostCudaArray, np.ndarray]:
    """A smooth RGBA8 frame (H, W, 4), optionally with a row pitch in bytes."""
    pitch = width * 4 if pitch is None else pitch
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x * 255) // max(width - 1, 1), (y * 255) // max(height - 1, 1),
                    ((x + y + seed * 16) * 3) % 256], axis=-1).astype(np.uint8)
    storage = np.zeros((height, pitch), dtype=np.uint8)
    view = storage.view(np.uint8)[:, : width * 4].reshape(height, width, 4)
    view[..., :3] = rgb
    view[..., 3] = 255
    frame = HostCudaArray(view)
    frame.storage = storage  # type: ignore[attr-defined]
    return frame, view[..., :3].copy()
