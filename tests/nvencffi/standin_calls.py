"""Counts the libcuda calls ``NvencEncoder.encode()`` makes per frame, on the stand-in libcuda.

Run by test_encode_overhead.py in a fresh process whose ``libcuda.so.1`` is the test
suite's stand-in, tests/support/standin_libcuda.c (``LD_LIBRARY_PATH`` is read at
process start), with the NVENC emulator as the encode library. Prints one JSON object:
for each case, the calls of 5 frames.
"""

from __future__ import annotations

import ctypes
import json
import os

import nvencffi
from rfb.benchmark.nvenc_latency import FixedInterface
from tests.nvenc_emulator import Emulator, build_emulator
from tests.support.frames import nv12_frame

NAMES = ("cuCtxPushCurrent", "cuCtxPopCurrent", "cuCtxGetCurrent", "cuPointerGetAttribute", "cuStreamSynchronize")
FRAMES = 5


def main() -> None:
    path = build_emulator()
    os.environ["NVENCFFI_LIBRARY"] = str(path)
    emu = Emulator(path)
    emu.reset()
    emu.set_no_pixel_work(True)
    cuda = ctypes.CDLL("libcuda.so.1")
    cuda.standin_describe.argtypes = [ctypes.c_ulonglong] * 3
    cuda.standin_calls.restype = ctypes.c_longlong
    owner, *_ = nv12_frame(256, 144)
    cuda.standin_describe(owner.pointer, owner.storage.nbytes, 7)
    fixed = FixedInterface(owner, owner.pointer, (216, 256), (256, 1))
    named = FixedInterface(owner, owner.pointer, (216, 256), (256, 1))
    named.__cuda_array_interface__["stream"] = 1  # as CuPy names the legacy default stream

    from cuda.bindings import driver

    counts: dict[str, dict[str, int]] = {}
    context = nvencffi.PrimaryContext(0)
    with nvencffi.NvencEncoder(256, 144, context=context) as enc:
        enc.encode(fixed)  # registered: the frames below take the per-frame path
        for case, frame, current in (
            ("not current", fixed, False),
            ("not current, stream named", named, False),
            ("current", fixed, True),
            ("current, stream named", named, True),
        ):
            if current:
                driver.cuCtxPushCurrent(context._context)
            cuda.standin_reset_calls()
            for _ in range(FRAMES):
                enc.encode(frame)
            counts[case] = {name: cuda.standin_calls(name.encode()) for name in NAMES}
            if current:
                driver.cuCtxPopCurrent()
        counts["stats"] = dict(enc.registration_stats)
    context.close()
    ledger = emu.ledger()
    counts["ledger"] = {k: ledger[k] for k in ("sessions", "errors", "reserved_field_errors")}
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
