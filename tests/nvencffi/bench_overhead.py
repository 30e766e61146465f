"""``rfb.benchmark.encode_overhead`` against the NVENC emulator in no-pixel mode (host work only).

Not a test (no timing assertions): run it and read the numbers.

    python -m tests.nvencffi.bench_overhead [--context null|standin|cuda] [--batch N] [--rounds N]

The emulator in no-pixel mode validates every call and writes a tiny access unit, so
what an ``encode()`` costs is the binding's work plus the emulator's bookkeeping. The
product module does the measuring; this adds what only the test suite has, the emulator
and its no-pixel switch, and picks the CUDA context:

- ``null``: ``NullContext`` answering the allocation id from the emulator's table through
  ctypes (no CUDA at all);
- ``standin`` (the default without a GPU): ``PrimaryContext`` through cuda-python on the
  test suite's stand-in libcuda (tests/support/standin_libcuda.c, put on ``LD_LIBRARY_PATH``
  of a fresh process): the binding's CUDA calls as on a GPU machine, the driver's own time excepted;
- ``cuda`` (a GPU machine): ``PrimaryContext`` on the real driver, a real device buffer;
  the emulator then also asks the real driver about the frame's pointer on every encode.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import subprocess
import sys
from collections.abc import Sequence

from rfb.benchmark import encode_overhead, machine
from tests.nvenc_emulator import Emulator, build_emulator
from tests.support.frames import nv12_frame
from tests.support.nvenc_header import ROOT
from tests.support.standin_libcuda import build_standin_libcuda, ld_library_path

WIDTH, HEIGHT = 1280, 720  # pitch 1280 = 5 x 256: registered in place
BUFFER_ID = 7


def standin_env() -> dict[str, str]:
    """The environment of a process whose ``libcuda.so.1`` is the stand-in."""
    path = ld_library_path(build_standin_libcuda().parent)
    return {**os.environ, "LD_LIBRARY_PATH": path, "RFB_BENCH_STANDIN": "1"}


def run(context_kind: str, batch: int, rounds: int) -> dict[str, object]:
    """Open an encoder on the emulator (no-pixel mode) with that context; measure it."""
    import nvencffi

    path = build_emulator()
    os.environ["NVENCFFI_LIBRARY"] = str(path)
    nvencffi.reset_library()
    emu = Emulator(path)
    emu.reset()
    emu.set_no_pixel_work(True)
    owner = pointer = None
    if context_kind == "null":
        owner, *_ = nv12_frame(WIDTH, HEIGHT)
        emu.describe_pointer(owner.pointer, owner.storage.nbytes, buffer_id=BUFFER_ID)
        context = nvencffi.NullContext(attributes=emu.pointer_info)
        frame = owner
    else:
        context = nvencffi.PrimaryContext(0)
        if context_kind == "standin":
            owner, *_ = nv12_frame(WIDTH, HEIGHT)
            describe = ctypes.CDLL("libcuda.so.1").standin_describe
            describe.argtypes = [ctypes.c_ulonglong] * 3
            describe(owner.pointer, owner.storage.nbytes, BUFFER_ID)
            frame = owner
        else:
            pointer, frame = encode_overhead._device_frame(context, WIDTH, HEIGHT)
    try:
        with nvencffi.NvencEncoder(WIDTH, HEIGHT, context=context) as enc:
            for _ in range(200):
                enc.encode(frame)
            result = encode_overhead.measure(enc, frame, batch=batch, rounds=rounds)
            stats = enc.registration_stats
        assert stats["misses"] == 1 and stats["staged"] == 0, f"expected one registration, reused: {stats}"
    finally:
        if pointer is not None:
            context.free(pointer)
        context.close()
    assert emu.ledger()["sessions"] == 0 and emu.ledger()["errors"] == 0, emu.ledger()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.nvencffi.bench_overhead")
    p.add_argument("--context", choices=("null", "standin", "cuda"), default=None)
    p.add_argument("--batch", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    kind = args.context or ("standin" if os.environ.get("RFB_BENCH_STANDIN") or not _has_cuda() else "cuda")
    if kind == "standin" and not os.environ.get("RFB_BENCH_STANDIN"):  # LD_LIBRARY_PATH is read at start
        cmd = [sys.executable, "-m", "tests.nvencffi.bench_overhead", "--context", "standin", *_rest(args)]
        return subprocess.run(cmd, env=standin_env(), cwd=ROOT, check=False).returncode
    result = run(kind, args.batch, args.rounds)
    print(
        f"machine: {platform.node()} ({machine.cpu_model()}, {os.cpu_count()} cores), "
        f"Python {platform.python_version()}; emulator no-pixel mode, context {kind}, "
        f"{WIDTH}x{HEIGHT} NV12; best of {args.rounds} batches x {args.batch} calls"
    )
    print(encode_overhead.format_result(result))
    return 0


def _rest(args: argparse.Namespace) -> list[str]:
    return ["--batch", str(args.batch), "--rounds", str(args.rounds)]


def _has_cuda() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
