"""The NVENC driver emulator: a fake ``libnvidia-encode.so.1`` for tests.

No machine here has an NVENC engine, so the binding (``nvencffi``) is exercised
against this emulator: C sources compiled against NVIDIA's *official*
``nvEncodeAPI.h`` (never against our cffi declarations, which would let both
share a mistake). It writes real H.264 (I_PCM macroblocks) so that decoding its
output gives back the input pixels exactly. See ``docs/nvenc_emulator.md``.

Typical use::

    lib = build_emulator()                       # cached by source + header hash
    os.environ["NVENCFFI_LIBRARY"] = str(lib)    # the binding dlopens this path
    emu = Emulator(lib)                          # same dlopen'ed instance: shared state
    emu.reset()
    ... drive the binding ...
    assert emu.ledger()["sessions"] == 0

:class:`Emulator` talks to the library with ctypes. ``dlopen`` of the same path
returns the already loaded instance, so the ledger and faults seen here are the
ones the binding's cffi handle is driving.
"""

from __future__ import annotations

import ctypes
import re
import subprocess
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from tests.support.cbuild import (
    CFLAGS,
    CompilerUnavailable,
    EmulatorBuildError,
    compile_to,
    compiler,
    compiler_identity,
    digest,
)
from tests.support.nvenc_header import ROOT, HeaderUnavailable, official_header_dir

__all__ = [
    "CFLAGS",
    "CompilerUnavailable",
    "Emulator",
    "EmulatorBuildError",
    "HeaderUnavailable",
    "LIBRARY_NAME",
    "build_emulator",
    "build_selftest",
    "nvenc_status_codes",
    "require_build",
    "require_emulator",
]

HERE = Path(__file__).resolve().parent
CACHE = ROOT / ".cache" / "nvenc-emulator"
LIBRARY_NAME = "libnvidia-encode.so.1"  # FFmpeg can load it through LD_LIBRARY_PATH
SOURCES = (
    "emulator.c",
    "buffers.c",
    "encode.c",
    "control.c",
    "presets.c",
    "bitstream.c",
    "h264_writer.c",
    "pixels.c",
    "cuda_reader.c",
    "pointers.c",
    "reserved.c",
)
HEADERS = ("emu.h",)
SELFTEST = "selftest.c"


def build_emulator(sources: Path = HERE) -> Path:
    """Compile the emulator (once per source + header hash) and return the ``.so`` path.

    ``sources`` is the directory holding the C files (tests build a broken copy).
    Raises :class:`HeaderUnavailable` when the official header cannot be fetched,
    :class:`CompilerUnavailable` without a compiler and :class:`EmulatorBuildError`
    when compilation fails.
    """
    include = official_header_dir()
    files = [sources / name for name in (*SOURCES, *HEADERS)] + [include / "nvEncodeAPI.h"]
    flags = (*CFLAGS, "-shared", "-fvisibility=hidden")
    out = CACHE / digest(files, (*flags, compiler_identity(compiler()))) / LIBRARY_NAME
    args = [*flags, f"-I{include}", *(str(sources / s) for s in SOURCES), "-ldl", "-lpthread"]
    return compile_to(out, args)


def build_selftest(*, shared: bool = False) -> Path:
    """Compile ``selftest.c`` (a client of the official API) as a program or, with
    ``shared=True``, as a library exposing ``int selftest_run(int argc, char **argv)``
    so a test can run it in-process against an emulator it also controls."""
    include = official_header_dir()
    files = [HERE / SELFTEST, include / "nvEncodeAPI.h"]
    flags = (*CFLAGS, *(("-shared", "-DSELFTEST_LIBRARY") if shared else ()))
    name = "selftest.so" if shared else "selftest"
    out = CACHE / digest(files, (*flags, compiler_identity(compiler()))) / name
    return compile_to(out, [*flags, f"-I{include}", str(HERE / SELFTEST), "-ldl"])


def require_build(build: Callable[[], Path], what: str, missing: tuple[type[Exception], ...] = ()) -> Path:
    """Run ``build`` for a test: a missing header or compiler (or one of ``missing``)
    skips with the reason (fails in CI), but a build that fails is our own code being
    broken, so it fails the test everywhere, with the compiler's output."""
    import pytest

    from tests.support.ci import unavailable

    try:
        return build()
    except (HeaderUnavailable, CompilerUnavailable, *missing) as exc:
        unavailable(f"{what} cannot be built here: {exc}")
    except (EmulatorBuildError, OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"{what} does not build: {exc}", pytrace=False)


def require_emulator(sources: Path = HERE) -> Path:
    """:func:`build_emulator` for tests, through :func:`require_build`."""
    return require_build(lambda: build_emulator(sources), "the NVENC emulator")


@lru_cache(maxsize=1)
def nvenc_status_codes() -> dict[str, int]:
    """``NVENCSTATUS`` names to values, read from the official header's enum."""
    text = (official_header_dir() / "nvEncodeAPI.h").read_text()
    m = re.search(r"typedef\s+enum\s+_NVENCSTATUS\s*\{(.*?)\}\s*NVENCSTATUS\s*;", text, re.S)
    if m is None:
        raise HeaderUnavailable("nvEncodeAPI.h has no NVENCSTATUS enum")
    body = re.sub(r"/\*.*?\*/|//[^\n]*", "", m.group(1), flags=re.S)
    names = [item.strip() for item in body.split(",") if item.strip()]
    if any("=" in n for n in names):
        raise HeaderUnavailable(f"NVENCSTATUS has explicit values; update nvenc_status_codes(): {names}")
    return {name: value for value, name in enumerate(names)}


class Emulator:
    """Control and inspection of a loaded emulator (test-only ``emu_*`` symbols)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else build_emulator()
        lib = ctypes.CDLL(str(self.path))
        if not hasattr(lib, "emu_ledger"):
            raise EmulatorBuildError(f"{self.path} is not the NVENC emulator (no emu_ledger symbol)")
        i64p = ctypes.POINTER(ctypes.c_int64)
        lib.emu_ledger_names.restype = ctypes.c_char_p
        lib.emu_ledger.argtypes = [i64p, ctypes.c_int]
        lib.emu_session_info_names.restype = ctypes.c_char_p
        lib.emu_session_count.restype = ctypes.c_int
        lib.emu_session_info.argtypes = [ctypes.c_int, i64p, ctypes.c_int]
        lib.emu_function_name.restype = ctypes.c_char_p
        lib.emu_function_name.argtypes = [ctypes.c_int]
        lib.emu_inject_fault.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.emu_set_max_version.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.emu_set_unsupported_device.argtypes = [ctypes.c_int]
        lib.emu_set_no_pixel_work.argtypes = [ctypes.c_int]
        lib.emu_last_error.argtypes = [ctypes.c_char_p, ctypes.c_int]
        u64, c_int = ctypes.c_uint64, ctypes.c_int
        lib.emu_set_caps.argtypes = [c_int] * 6
        lib.emu_describe_pointer.argtypes = [u64, u64, c_int, c_int, u64, c_int, u64]
        lib.emu_forget_pointer.argtypes = [u64]
        lib.emu_pointer_info.argtypes = [u64, i64p]
        lib.emu_set_session_context.argtypes = [u64, c_int, c_int]
        self._lib = lib
        self._ledger_names = lib.emu_ledger_names().decode().split(",")
        self._session_names = lib.emu_session_info_names().decode().split(",")

    def __repr__(self) -> str:
        return f"Emulator({str(self.path)!r})"

    @property
    def env(self) -> dict[str, str]:
        """Environment entries that make the binding load this emulator."""
        return {"NVENCFFI_LIBRARY": str(self.path)}

    @property
    def functions(self) -> tuple[str, ...]:
        """API function names that :meth:`inject_fault` accepts."""
        names: list[str] = []
        while (name := self._lib.emu_function_name(len(names))) is not None:
            names.append(name.decode())
        return tuple(names)

    def ledger(self) -> dict[str, int]:
        """Live object counts and totals since the last :meth:`reset`.

        Live: ``sessions``, ``registered``, ``mapped``, ``bitstream_buffers``,
        ``input_buffers``, ``locked_bitstreams``, ``pending_bitstreams``,
        ``locked_input_buffers``, ``failed_open_leaks`` (handles of failed opens not
        destroyed yet). Totals: ``sessions_opened``, ``encodes``, ``idr_frames``,
        ``eos``, ``reconfigures``, ``errors``, ``faults_fired``, ``leaked`` (objects
        nvEncDestroyEncoder had to free for the client) and its parts
        ``leaked_registered``, ``leaked_mapped``, ``leaked_bitstream_buffers``,
        ``leaked_input_buffers``; and the misuses a real driver punishes later or
        silently: ``unflushed_destroys``, ``stale_registrations``,
        ``dead_stream_pointers``, ``null_session_calls``, ``pitch_faults``,
        ``poisoned_sessions``, ``reserved_field_errors`` (docs/nvenc_emulator.md).
        """
        out = (ctypes.c_int64 * len(self._ledger_names))()
        self._lib.emu_ledger(out, len(out))
        return dict(zip(self._ledger_names, (int(v) for v in out), strict=True))

    def sessions(self) -> list[dict[str, int]]:
        """The open sessions, oldest first, with their effective configuration
        (size, frame rate, rate control, GOP, preset, profile/level, counts)."""
        result = []
        for i in range(self._lib.emu_session_count()):
            out = (ctypes.c_int64 * len(self._session_names))()
            if self._lib.emu_session_info(i, out, len(out)) < 0:
                break  # closed meanwhile
            result.append(dict(zip(self._session_names, (int(v) for v in out), strict=True)))
        return result

    def reset(self) -> None:
        """Forget all state: sessions (their handles become invalid), counters,
        faults, and the settings below back to their defaults."""
        self._lib.emu_reset()

    def inject_fault(self, function: str, status: int | str, after: int = 0, count: int = 1) -> None:
        """Make ``function`` return ``status`` on its (after+1)-th call from now, ``count``
        times in a row (``count=-1``: every call from then on). The faulted call has
        no other effect. ``status`` is an int or an ``NV_ENC_ERR_*`` name."""
        if isinstance(status, str):
            codes = nvenc_status_codes()
            if status not in codes:
                raise ValueError(f"unknown NVENCSTATUS name {status!r}")
            status = codes[status]
        rc = self._lib.emu_inject_fault(function.encode(), int(status), int(after), int(count))
        if rc == -1:
            raise ValueError(f"unknown API function {function!r}; expected one of {', '.join(self.functions)}")
        if rc == -2:
            raise ValueError(
                f"invalid fault: status must be non-zero (got {status}), after >= 0 (got {after}), "
                f"count != 0 (got {count})"
            )
        if rc == -3:
            raise RuntimeError("too many pending faults; call clear_faults()")

    def set_caps(
        self,
        *,
        width_min: int = 145,
        height_min: int = 49,
        width_max: int = 4096,
        height_max: int = 4096,
        custom_vbv: bool = True,
        dyn_res_change: bool = True,
    ) -> None:
        """What ``nvEncGetEncodeCaps`` answers and initialize/reconfigure enforce. The
        defaults are a real H.264 encoder's (and what :meth:`reset` restores)."""
        rc = self._lib.emu_set_caps(
            int(width_min),
            int(height_min),
            int(width_max),
            int(height_max),
            int(bool(custom_vbv)),
            int(bool(dyn_res_change)),
        )
        if rc != 0:
            raise ValueError(
                f"caps {width_min}x{height_min}..{width_max}x{height_max}: expected 1 <= min <= max <= 4096 each way"
            )

    _KINDS = ("device", "host", "managed")

    def describe_pointer(
        self,
        ptr: int,
        size: int,
        *,
        kind: str = "device",
        device: int = 0,
        context: int = 0,
        mempool: bool = False,
        buffer_id: int = 1,
    ) -> None:
        """Describe ``[ptr, ptr + size)`` the way ``cuPointerGetAttribute`` would, for
        ``nvEncRegisterResource`` to judge (CI has no libcuda to ask). ``context`` 0
        means the session's own; a range overlapping an earlier one replaces it (the
        old allocation was freed), and a new ``buffer_id`` at the same address makes
        registrations of the old one stale."""
        if kind not in self._KINDS:
            raise ValueError(f"kind must be one of {self._KINDS}, got {kind!r}")
        rc = self._lib.emu_describe_pointer(
            int(ptr), int(size), self._KINDS.index(kind), int(device), int(context), int(bool(mempool)), int(buffer_id)
        )
        if rc != 0:
            raise ValueError(
                f"cannot describe {size} bytes at {ptr:#x}: size must be > 0 and the table holds 256 ranges"
            )

    def forget_pointer(self, ptr: int) -> None:
        """Remove the described range containing ``ptr`` (its memory was freed)."""
        if self._lib.emu_forget_pointer(int(ptr)) != 0:
            raise KeyError(f"no described range contains {ptr:#x}")

    def pointer_info(self, ptr: int) -> dict[str, int | str | bool] | None:
        """What the emulator believes about ``ptr`` (the table, else libcuda): keys
        ``kind, device, context, mempool, buffer_id, start, size``; None when nothing
        describes it (then it is taken for device memory of the session's device)."""
        out = (ctypes.c_int64 * 7)()
        if not self._lib.emu_pointer_info(int(ptr), out):
            return None
        kind, device, context, mempool, buffer_id, start, size = (int(v) for v in out)
        u64 = (1 << 64) - 1
        return {
            "kind": self._KINDS[kind],
            "device": device,
            "context": context & u64,
            "mempool": bool(mempool),
            "buffer_id": buffer_id & u64,
            "start": start & u64,
            "size": size & u64,
        }

    def set_session_context(self, handle: int | None, *, device: int = 0) -> None:
        """The CUDA context (and device ordinal) registered memory must belong to,
        instead of the ``device`` each session was opened with; None goes back to that."""
        self._lib.emu_set_session_context(int(handle or 0), int(handle is not None), int(device))

    @property
    def caps(self) -> dict[str, int]:
        """The size and feature caps in force (what ``nvEncGetEncodeCaps`` answers)."""
        names = ("width_min", "height_min", "width_max", "height_max", "custom_vbv", "dyn_res_change")
        out = (ctypes.c_int * 6)()
        self._lib.emu_get_caps(out)
        return dict(zip(names, (int(v) for v in out), strict=True))

    def clear_faults(self) -> None:
        self._lib.emu_clear_faults()

    def set_max_version(self, major: int, minor: int) -> None:
        """What ``NvEncodeAPIGetMaxSupportedVersion`` reports (default 13.0, like driver 580);
        clients newer than this get ``NV_ENC_ERR_INVALID_VERSION``."""
        self._lib.emu_set_max_version(int(major), int(minor))

    def set_unsupported_device(self, on: bool) -> None:
        """Make ``nvEncOpenEncodeSessionEx`` fail with ``NV_ENC_ERR_UNSUPPORTED_DEVICE``
        (what an H100/H200, which has no NVENC engine, answers)."""
        self._lib.emu_set_unsupported_device(int(bool(on)))

    def set_no_pixel_work(self, on: bool) -> None:
        """Overhead-only mode: inputs are validated but never read, and each picture
        is a tiny valid access unit (flat grey IDR/I, all-skip P)."""
        self._lib.emu_set_no_pixel_work(int(bool(on)))

    def last_error(self) -> str:
        """The most recent failure message of any session (what
        ``nvEncGetLastErrorString`` returned for it), or ``""``."""
        buf = ctypes.create_string_buffer(1024)
        self._lib.emu_last_error(buf, len(buf))
        return buf.value.decode(errors="replace")
