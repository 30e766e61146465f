"""pytest fixtures for nvjpegffi: the official headers, the real library, the emulator.

The emulator (``tests/nvjpegffi/emulator.c``) is compiled against NVIDIA's official
``nvjpeg.h``; ``NVJPEGFFI_LIBRARY`` points the binding at it, and
``nvjpegffi.reset_library()`` makes the binding load it afresh for every test. Without
a GPU it reads frames from host memory, which the tests hand over as NumPy arrays'
addresses, with a ``NullContext`` instead of a CUDA context.

Where the official wheels (and so the emulator and the real library) cannot be
obtained, the tests that need them skip with the reason, except in CI (``CI=true``),
where that is a failure. Shared by tests/nvjpegffi and tests/encoders (the jpeg_gpu
route drives the same emulator); a conftest makes them available by importing them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import nvjpegffi
from nvjpegffi.library import ENV_LIBRARY
from tests.nvjpegffi.emulator import Emulator
from tests.support.ci import unavailable


@pytest.fixture(scope="session")
def official_include_dir() -> Path:
    from tests.support.nvjpeg_header import HeaderUnavailable, official_include_dir

    try:
        return official_include_dir()
    except (HeaderUnavailable, OSError) as exc:
        unavailable(f"NVIDIA's official nvjpeg.h could not be obtained: {exc}")


@pytest.fixture(scope="session")
def real_library(official_include_dir: Path) -> Path:
    """The real libnvjpeg.so.13 of the pinned nvidia-nvjpeg wheel."""
    from tests.support.nvjpeg_header import official_library

    return official_library()


@pytest.fixture(scope="session")
def c_compiler() -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        unavailable("no C compiler (cc) on this machine")
    return cc


@pytest.fixture(scope="session")
def emulator_path(official_include_dir: Path, c_compiler: str) -> Path:
    """The emulator's build: a build error fails (it is our code), never a skip."""
    from tests.nvjpegffi.emulator import require_emulator

    return require_emulator()


@pytest.fixture
def use_library(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Point nvjpegffi at a library file for one test: ``use_library(path)``."""

    def use(path: Path | str) -> None:
        monkeypatch.setenv(ENV_LIBRARY, str(path))
        nvjpegffi.reset_library()

    yield use
    nvjpegffi.reset_library()


@pytest.fixture
def emulator(emulator_path: Path, use_library) -> Iterator[Emulator]:  # type: ignore[no-untyped-def]
    """A fresh emulator the binding will load."""
    use_library(emulator_path)
    emu = Emulator(emulator_path)
    emu.reset()
    yield emu
    emu.reset()


@pytest.fixture
def null_context() -> nvjpegffi.NullContext:
    return nvjpegffi.NullContext()
