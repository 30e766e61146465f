"""The test suite's stand-in ``libcuda.so.1`` (standin_libcuda.c): its build and the environment that loads it.

One library serves both users on a machine without an NVIDIA driver: FFmpeg's h264_nvenc
against the NVENC emulator (tests/latency, tests/encoders/pyav_on_the_emulator.py,
tests/gpu/test_status.py), and nvencffi's ``PrimaryContext`` through cuda-python with
its calls counted (tests/nvencffi/standin_calls.py, bench_overhead.py). What it answers,
and why, is in the C file's header comment.

The loader finds ``libcuda.so.1`` by name through ``LD_LIBRARY_PATH``, which it reads
at process start: the stand-in works in a child process started with
:func:`ld_library_path`, not in one that is already running.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.cbuild import CFLAGS, compile_to, compiler, compiler_identity, digest
from tests.support.nvenc_header import ROOT

SOURCE = Path(__file__).resolve().parent / "standin_libcuda.c"
CACHE = ROOT / ".cache" / "standin-libcuda"


def build_standin_libcuda() -> Path:
    """Compile standin_libcuda.c into ``.cache/standin-libcuda/KEY/libcuda.so.1``, cached and atomic (cbuild).

    KEY digests the source, the flags and the compiler. A missing compiler is
    :class:`~tests.support.cbuild.CompilerUnavailable`, a failed build
    :class:`~tests.support.cbuild.EmulatorBuildError`.
    """
    # -Bsymbolic: the library's own references (calls between its entry points, the
    # addresses in cuGetProcAddress_v2's table) bind to its own definitions, not to a real
    # libcuda that cuda-python loaded RTLD_GLOBAL into the same process (a GPU machine's
    # test process, where tests/test_standin_libcuda.py loads it by path).
    flags = (*CFLAGS, "-shared", "-fvisibility=hidden", "-Wl,-Bsymbolic")
    key = digest([SOURCE], (*flags, compiler_identity(compiler())))
    return compile_to(CACHE / key / "libcuda.so.1", [*flags, str(SOURCE)])


def ld_library_path(*dirs: Path) -> str:
    """``dirs`` ahead of this process's ``LD_LIBRARY_PATH``: a child's value that finds their libraries first."""
    current = os.environ.get("LD_LIBRARY_PATH")
    return os.pathsep.join([*(str(d) for d in dirs), *([current] if current else [])])
