"""A pytest plugin: NVIDIA's official NVENC header, the NVENC emulator built against it,
and the check that an emulated session released everything.

The emulator (tests/nvenc_emulator) is compiled against the official header only and
named like the real library; ``NVENCFFI_LIBRARY`` points the binding at it, and
``nvencffi.reset_library()`` makes the binding load (and negotiate with) it afresh for
every test. Without a GPU it reads frames from host memory (see
:mod:`tests.support.frames`), with a ``NullContext`` instead of a CUDA context.

Where the header (and so the emulator) cannot be obtained, the tests that need it skip
with the reason, except in CI, where that is a failure (:func:`tests.support.ci.unavailable`).

Fixtures: ``official_header_dir``, ``c_compiler``, ``emulator_path`` (session-wide),
``emulator``, ``null_context`` and ``emulated_context`` (per test: a ``NullContext``
whose pointer attributes come from the emulator's ``pointer_info``, CI's stand-in for
``cuPointerGetAttributes``; :func:`describe_frame` says what a test frame's memory is). Load it with
``pytest_plugins = ["tests.support.nvenc_fixtures"]`` in the root conftest, or import
the fixtures into a directory's conftest.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nvencffi
from nvencffi.library import ENV_LIBRARY
from tests.support.ci import unavailable


@pytest.fixture(scope="session")
def official_header_dir() -> Path:
    from tests.support.nvenc_header import HeaderUnavailable, official_header_dir

    try:
        return official_header_dir()
    except (HeaderUnavailable, OSError) as exc:
        unavailable(f"NVIDIA's official nvEncodeAPI.h could not be obtained: {exc}")


@pytest.fixture(scope="session")
def c_compiler() -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        unavailable("no C compiler (cc) on this machine")
    return cc


@pytest.fixture(scope="session")
def emulator_path(official_header_dir: Path, c_compiler: str) -> Path:
    try:
        from tests.nvenc_emulator import build_emulator
    except ImportError as exc:
        unavailable(f"the NVENC emulator package is not importable: {exc}")
    return build_emulator()


@pytest.fixture
def emulator(emulator_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh emulator the binding will load; faults cleared and the binding reset after the test."""
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


@pytest.fixture
def emulated_context(emulator: Any) -> Iterator[nvencffi.NullContext]:
    """A NullContext asking the emulator what pointers are; its own allocations freed after."""
    context = nvencffi.NullContext(attributes=emulator.pointer_info)
    yield context
    assert context.allocations == 0, "the encoder left staging memory allocated"


def describe_frame(emulator: Any, frame: Any, **attributes: Any) -> None:
    """Tell the emulator what the memory of a host test frame "is" (``describe_pointer``:
    kind, device, context, mempool, buffer_id), over its whole storage."""
    storage = getattr(frame, "storage", frame.array)
    emulator.describe_pointer(frame.pointer, storage.nbytes, **attributes)


# Ledger entries the binding must keep at 0 (the emulator counts a client's mistakes there).
CLIENT_MISTAKES = (
    "unflushed_destroys",
    "stale_registrations",
    "dead_stream_pointers",
    "null_session_calls",
    "failed_open_leaks",
    "pitch_faults",
    "poisoned_sessions",
    "reserved_field_errors",
)


def assert_released(emulator: Any) -> None:
    """Every session, registration, mapping and buffer the emulator handed out was given
    back, and the emulator saw none of the client mistakes it counts."""
    ledger = emulator.ledger()
    for key in ("sessions", "registered", "mapped", "bitstream_buffers", "input_buffers"):
        assert ledger[key] == 0, (key, ledger)
    for key, value in ledger.items():
        if key.startswith("leaked"):
            assert value == 0, (key, ledger)
    for key in CLIENT_MISTAKES:
        assert ledger.get(key, 0) == 0, (key, ledger)
