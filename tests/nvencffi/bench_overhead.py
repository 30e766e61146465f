"""Host overhead of ``NvencEncoder.encode()`` against the emulator in no-pixel mode.

Not a test (no timing assertions): run it and read the numbers.

    .venv/bin/python -m tests.nvencffi.bench_overhead [frames]

The emulator in no-pixel mode validates every call and writes a tiny access unit, so the
time per frame is the binding's Python/cffi work (frame parsing, cache lookup, map,
encode, lock, copy-out, unlock, unmap) plus the emulator's own bookkeeping; the second
number isolates the binding's part by replacing the emulator's five calls with no-op
C function pointers... which we cannot do without a compiler, so instead we report the
cost of the same five cffi calls into the emulator on their own (``calls only``).
"""

from __future__ import annotations

import os
import platform
import sys
import time

import nvencffi
from nvencffi import _api
from nvencffi._ffi import ffi
from tests.nvenc_emulator import Emulator, build_emulator
from tests.nvencffi.conftest import nv12_frame


def main(frames: int = 200_000) -> None:
    path = build_emulator()
    os.environ["NVENCFFI_LIBRARY"] = str(path)
    nvencffi.reset_library()
    emu = Emulator(path)
    emu.reset()
    emu.set_no_pixel_work(True)
    frame = nv12_frame(64, 64)[0]
    with nvencffi.NvencEncoder(64, 64, context=nvencffi.NullContext()) as enc:
        for _ in range(2_000):
            enc.encode(frame)
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter_ns()
            for _ in range(frames // 5):
                enc.encode(frame)
            best = min(best, (time.perf_counter_ns() - t0) / (frames // 5))
        # the raw cffi calls of one frame, same emulator, no Python logic around them
        lib, handle = enc._lib, enc._encoder
        reg = enc._cache.lookup(next(iter(enc._cache)))
        mapping, pic, lock = enc._map, enc._pic, enc._lock
        bitstream = enc._bitstreams[0]
        raw = float("inf")
        for _ in range(5):
            t0 = time.perf_counter_ns()
            for _ in range(frames // 5):
                mapping.registeredResource = reg
                lib.nvEncMapInputResource(handle, mapping)
                pic.inputBuffer = mapping.mappedResource
                pic.outputBitstream = bitstream
                lib.nvEncEncodePicture(handle, pic)
                lock.outputBitstream = bitstream
                lib.nvEncLockBitstream(handle, lock)
                ffi.buffer(lock.bitstreamBufferPtr, lock.bitstreamSizeInBytes)[:]
                lib.nvEncUnlockBitstream(handle, bitstream)
                lib.nvEncUnmapInputResource(handle, pic.inputBuffer)
            raw = min(raw, (time.perf_counter_ns() - t0) / (frames // 5))
    assert emu.ledger()["sessions"] == 0
    cpu = platform.processor() or platform.machine()
    print(f"machine: {platform.node()} ({cpu}, {os.cpu_count()} cores), Python {platform.python_version()}, API {_api.API_MAJOR}.{_api.API_MINOR}")
    print(f"encode() incl. emulator, 64x64 NV12, no-pixel: {best / 1000:.2f} us/frame (best of 5 x {frames // 5})")
    print(f"the same five cffi calls + copy-out alone:      {raw / 1000:.2f} us/frame")
    print(f"binding's Python work on top of the calls:      {(best - raw) / 1000:.2f} us/frame")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
