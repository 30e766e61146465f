"""The slice NAL unit of a picture on the device: kernels/entropy.cu, driven from here.

Mirrors :func:`rfb.h264cuda.model.slicedata.slice_nal` (same arguments after the
launcher, same bytes). The slice header is written on the device from the scalar
arguments, so nothing is uploaded per picture; the host reads back two things only:
a few words of status and length, then the NAL unit's bytes.

Launches, each depending on the ones before (kernels/entropy.cu says what an entry is):

1. ``entropy_counts``: TotalCoeff of every 4x4 block, as grids of blocks (for nC);
   ``entropy_coded_chunks`` and ``entropy_coded_top``: the last coded macroblock before
   each chunk of macroblocks (for mb_skip_run);
2. ``entropy_entries``: every entry's bits into its scratch slot, and its length (an
   entry: the slice header, a macroblock's prelude, one of its residual blocks, ...);
3. three launches of an exclusive prefix sum of the lengths: each entry's bit offset;
4. ``entropy_finish``: rbsp_trailing_bits, now that the total is known;
5. ``entropy_pack``: the payload words, each gathered by one thread;
6. ``entropy_ep_count``, a prefix sum of its counts, ``entropy_ep_write``: emulation
   prevention, start code and NAL header, into the output bytes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rfb.encoders.h264 import NAL_IDR, NAL_SLICE
from rfb.h264cuda.kernels import Launcher, blocks
from rfb.h264cuda.model.picture import MacroblockArrays

SLOT_WORDS = 21
"""32-bit words of scratch per entry (ENT_SLOT_WORDS: entropy.cu proves the bound)."""
PER_MB = 28
"""Entries per macroblock (ENT_PER_MB): its prelude and its 27 residual blocks."""

THREADS = 128

# meta[] (ENT_META_*) and its status bits (ENT_ERR_*), as entropy.cu defines them.
META_STATUS, META_BITS, META_NAL = 0, 1, 2
ERRORS = {
    1: "a macroblock's bits exceeded its scratch slot",
    2: "a level too large for Baseline CAVLC (level_prefix > 15)",
    4: "a macroblock kind other than P_Skip, P_L0_16x16 and I16x16",
    8: "a prediction mode (0..3) or coded_block_pattern (luma 0..15, chroma 0..2) out of range",
    16: "a negative idr_pic_id",
}


def _to_host(xp: Any, array: Any) -> np.ndarray:
    return np.asarray(array) if xp is np else xp.asnumpy(array)


def _chunk(n: int) -> int:
    """Chunks of about sqrt(n) for the scans, so that their sequential parts (a thread per
    chunk, then one thread over the chunks) are both about sqrt(n) long: 480 at 1080p."""
    return max(math.isqrt(n) + 1, 32)


def _scan(launcher: Launcher, values: Any, offsets: Any) -> None:
    """Exclusive prefix sum of int32 ``values`` into ``offsets``, in three launches."""
    n = int(values.shape[0])
    chunk = _chunk(n)
    chunks = -(-n // chunk)
    sums = launcher.xp.empty(chunks, launcher.xp.int32)
    grid = blocks(chunks, THREADS)
    launcher.launch("entropy_scan_sums", grid, (THREADS, 1, 1), values, n, chunk, sums)
    launcher.launch("entropy_scan_top", (1, 1, 1), (1, 1, 1), sums, chunks)
    launcher.launch("entropy_scan_offsets", grid, (THREADS, 1, 1), values, n, chunk, sums, offsets)


def slice_nal(launcher: Launcher, mbs: MacroblockArrays, idr: bool, frame_num: int, idr_pic_id: int, qp: int) -> bytes:
    """The picture's one coded slice NAL unit: header, slice_data() (7.3.4), trailing bits.

    ``mbs`` holds ``launcher.xp`` arrays (int32, the model's shapes). Raises ValueError
    where the model would refuse the macroblocks (or, for out-of-range modes and coded
    block patterns, would write an invalid stream).
    """
    xp = launcher.xp
    rows, cols = (int(d) for d in mbs.kind.shape)
    n = rows * cols
    entries = PER_MB * n + 3  # header, macroblocks' preludes and blocks, trailing skip run, rbsp_trailing_bits

    def field(a: Any) -> Any:
        return xp.ascontiguousarray(a, dtype=xp.int32)

    kind, luma, chroma_ac = field(mbs.kind), field(mbs.luma), field(mbs.chroma_ac)
    luma_counts = xp.empty(16 * n, xp.int32)
    chroma_counts = xp.empty(8 * n, xp.int32)
    skipped = xp.zeros(1, xp.int32)
    launcher.launch(
        "entropy_counts",
        blocks(24 * n, THREADS),
        (THREADS, 1, 1),
        kind,
        luma,
        chroma_ac,
        rows,
        cols,
        luma_counts,
        chroma_counts,
        skipped,
    )

    chunk = _chunk(n)  # mb_skip_run: the last coded macroblock before each chunk of macroblocks
    chunks = -(-n // chunk)
    last_coded = xp.empty(chunks + 1, xp.int32)
    launcher.launch("entropy_coded_chunks", blocks(chunks, THREADS), (THREADS, 1, 1), kind, n, chunk, last_coded)
    launcher.launch("entropy_coded_top", (1, 1, 1), (1, 1, 1), last_coded, chunks)

    scratch = xp.empty(entries * SLOT_WORDS, xp.uint32)
    lengths = xp.empty(entries, xp.int32)
    meta = xp.zeros(4, xp.uint32)
    launcher.launch(
        "entropy_entries",
        blocks(entries, THREADS),
        (THREADS, 1, 1),
        kind,
        field(mbs.luma_mode),
        field(mbs.chroma_mode),
        field(mbs.mv),
        field(mbs.mvp),
        field(mbs.luma_dc),
        luma,
        field(mbs.chroma_dc),
        chroma_ac,
        field(mbs.cbp_luma),
        field(mbs.cbp_chroma),
        luma_counts,
        chroma_counts,
        skipped,
        last_coded,
        chunk,
        rows,
        cols,
        int(idr),
        frame_num,
        idr_pic_id,
        qp,
        scratch,
        lengths,
        meta,
    )
    offsets = xp.empty(entries, xp.int32)
    _scan(launcher, lengths, offsets)
    launcher.launch("entropy_finish", (1, 1, 1), (1, 1, 1), lengths, offsets, entries, scratch, meta)
    payload = xp.empty(entries * SLOT_WORDS, xp.uint32)
    launcher.launch(
        "entropy_pack", blocks(entries, THREADS), (THREADS, 1, 1), scratch, lengths, offsets, entries, payload
    )

    ep_chunks = n + 3  # payload bytes per chunk: the payload's size / ep_chunks, on the device
    counts = xp.empty(ep_chunks, xp.int32)
    launcher.launch("entropy_ep_count", blocks(ep_chunks, THREADS), (THREADS, 1, 1), payload, meta, ep_chunks, counts)
    inserted = xp.empty(ep_chunks, xp.int32)
    _scan(launcher, counts, inserted)
    payload_bytes = 4 * entries * SLOT_WORDS
    out = xp.empty(5 + payload_bytes + payload_bytes // 2 + 1, xp.uint8)  # at most one 03 per two bytes
    nal_type = NAL_IDR if idr else NAL_SLICE
    launcher.launch(
        "entropy_ep_write",
        blocks(ep_chunks, THREADS),
        (THREADS, 1, 1),
        payload,
        meta,
        ep_chunks,
        counts,
        inserted,
        nal_type,
        out,
    )

    host = _to_host(xp, meta)
    status, length = int(host[META_STATUS]), int(host[META_NAL])
    if status:
        found = [why for bit, why in ERRORS.items() if status & bit]
        raise ValueError(f"expected macroblocks the slice can code, got {'; '.join(found) or f'status {status:#x}'}")
    return _to_host(xp, out[:length]).tobytes()
