"""10,000 frames through the emulator: the ledger and the process's memory stay flat.

No-pixel mode (the emulator validates every call but does no pixel work), a 320x240
frame (the smallest realistic size) with a 256-byte pitch, two alternating buffers, an IDR
every 250 frames and a reconfigure now and then: what grows here would grow in a long-running server.
"""

from __future__ import annotations

import os

import pytest

import nvencffi
from tests.support.frames import nv12_frame

FRAMES = 10_000
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


@pytest.mark.slow
def test_ten_thousand_frames_leave_the_ledger_and_memory_flat(emulator) -> None:
    emulator.set_no_pixel_work(True)
    buffers = [nv12_frame(320, 240, pitch=512, seed=s)[0] for s in range(2)]
    sizes = 0
    with nvencffi.NvencEncoder(320, 240, context=nvencffi.NullContext(), registration_cache_size=2) as enc:
        for i in range(1_000):  # warm-up: allocator pools, caches
            sizes += len(enc.encode(buffers[i % 2], force_idr=(i % 250 == 0)))
        baseline_rss = rss_bytes()
        baseline = emulator.ledger()
        for i in range(1_000, FRAMES):
            sizes += len(enc.encode(buffers[i % 2], force_idr=(i % 250 == 0)))
            if i % 2_500 == 0:
                enc.reconfigure(bitrate=1_000_000 + i)
            if i % 1_000 == 0:
                ledger = emulator.ledger()
                for key in ("sessions", "registered", "mapped", "bitstream_buffers", "input_buffers"):
                    assert ledger[key] == baseline[key], (i, key, ledger)
        grown = rss_bytes() - baseline_rss
        assert enc.registration_stats["misses"] == 2
        assert enc.frames_encoded == FRAMES
    ledger = emulator.ledger()
    assert ledger["encodes"] == FRAMES and ledger["idr_frames"] == FRAMES // 250
    assert ledger["sessions"] == ledger["registered"] == ledger["bitstream_buffers"] == 0
    assert ledger["leaked"] == 0
    assert sizes > 0
    # measured here: 4 KiB. A leak of 32 bytes a frame would add ~290 KB over 9,000 frames.
    assert grown < 256_000, f"RSS grew by {grown} bytes over {FRAMES - 1_000} frames"
