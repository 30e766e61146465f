"""Host overhead of ``NvencEncoder.encode()`` against the emulator in no-pixel mode.

Not a test (no timing assertions): run it and read the numbers.

    .venv/bin/python -m tests.nvencffi.bench_overhead [frames]

The emulator in no-pixel mode validates every call and writes a tiny access unit, so the
time per frame is the binding's Python/cffi work (frame parsing, the allocation-id query,
cache lookup, fresh parameter structs, map, encode, lock, copy-out, unlock, unmap) plus
the emulator's own bookkeeping. It is measured twice: with a context that cannot tell
allocations apart, and with one that answers the per-frame allocation-id query (here the
emulator's ``pointer_info`` through ctypes, standing in for cuPointerGetAttribute). The
last number is the same cffi calls into the emulator with no Python logic around them.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
import time

import nvencffi
from nvencffi import _api
from nvencffi._ffi import ffi
from tests.nvenc_emulator import Emulator, build_emulator
from tests.support.frames import nv12_frame


def _best(fn, frames: int) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _ in range(frames // 5):
            fn()
        best = min(best, (time.perf_counter_ns() - t0) / (frames // 5))
    return best


def _raw_calls(lib, handle, reg, bitstream) -> None:
    """The encode path's five cffi calls with fresh structs and the copy-out, no Python logic around them."""
    mapping = ffi.new("NV_ENC_MAP_INPUT_RESOURCE *")
    mapping.version = _api.MAP_INPUT_RESOURCE_VER
    mapping.registeredResource = reg
    lib.nvEncMapInputResource(handle, mapping)
    pic = ffi.new("NV_ENC_PIC_PARAMS *")
    pic.version = _api.PIC_PARAMS_VER
    pic.pictureStruct = 1
    pic.inputWidth, pic.inputHeight, pic.inputPitch = 1280, 720, 1280
    pic.bufferFmt = mapping.mappedBufferFmt
    pic.inputBuffer = mapping.mappedResource
    pic.outputBitstream = bitstream
    lib.nvEncEncodePicture(handle, pic)
    lock = ffi.new("NV_ENC_LOCK_BITSTREAM *")
    lock.version = _api.LOCK_BITSTREAM_VER
    lock.outputBitstream = bitstream
    lib.nvEncLockBitstream(handle, lock)
    ffi.buffer(lock.bitstreamBufferPtr, lock.bitstreamSizeInBytes)[:]
    lib.nvEncUnlockBitstream(handle, bitstream)
    lib.nvEncUnmapInputResource(handle, pic.inputBuffer)


def main(frames: int = 50_000) -> None:
    path = build_emulator()
    os.environ["NVENCFFI_LIBRARY"] = str(path)
    nvencffi.reset_library()
    emu = Emulator(path)
    emu.reset()
    emu.set_no_pixel_work(True)
    frame = nv12_frame(1280, 720)[0]  # pitch 1280 = 5 x 256: registered in place
    emu.describe_pointer(frame.pointer, frame.storage.nbytes, buffer_id=7)
    results = {}
    for label, context in (
        ("no attribute source", nvencffi.NullContext()),
        ("allocation id asked per frame", nvencffi.NullContext(attributes=emu.pointer_info)),
    ):
        with nvencffi.NvencEncoder(1280, 720, context=context) as enc:
            for _ in range(2_000):
                enc.encode(frame)
            results[label] = _best(lambda: enc.encode(frame), frames)
            assert enc.registration_stats["misses"] == 1 and enc.registration_stats["staged"] == 0
            lib, handle = enc._lib, enc._encoder
            reg = next(iter(enc._cache._entries.values()))[0]
            bitstream = enc._bitstreams[0]

            results.setdefault("raw", _best(functools.partial(_raw_calls, lib, handle, reg, bitstream), frames))
    assert emu.ledger()["sessions"] == 0
    cpu = platform.processor() or platform.machine()
    print(
        f"machine: {platform.node()} ({cpu}, {os.cpu_count()} cores), Python {platform.python_version()}, "
        f"API {_api.API_MAJOR}.{_api.API_MINOR}; 1280x720 NV12, no-pixel; best of 5 x {frames // 5}"
    )
    for label in ("no attribute source", "allocation id asked per frame"):
        print(f"encode() incl. emulator, {label}: {results[label] / 1000:.2f} us/frame")
    print(f"the five cffi calls + fresh structs + copy-out alone: {results['raw'] / 1000:.2f} us/frame")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
