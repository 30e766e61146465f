"""Intra16x16 macroblocks on the kernels: the driver of ``kernels/intra.cu``.

Each function mirrors its namesake in :mod:`rfb.h264cuda.model.intra` (same arguments
after the launcher, same results, bit for bit) with arrays of ``launcher.xp``.

A macroblock predicts from its left, upper and upper-left neighbours' reconstruction,
so it can be coded once those of them that are being coded too are done. The kernels
take a list of macroblocks in groups, each group independent within itself, and the
driver launches one kernel per group (a thread per 4x4 block: mode decision,
transform, levels, the decoder's residual and the reconstruction) and one more at the
end for the coded block patterns: the wavefront is a chain of dependent launches, as
long as its number of launches. Every macroblock sees the same neighbours in whichever
valid order it is coded, so any such grouping gives the model's result:

- an I picture's groups are its anti-diagonals, as the model's (R + C - 1 groups,
  known from the picture size: nothing is copied to the host);
- a P picture's intra macroblocks (:func:`code_wavefront`) are grouped by the length of
  their longest chain of intra neighbours, usually a handful of groups where the
  model walks every diagonal; this copies the (R, C) mask to the host (one small
  transfer, and a wait for the work before it). ``schedule="diagonals"`` avoids the
  copy at the price of launching every diagonal.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

import numpy as np

from rfb.h264cuda.kernels import Launcher, blocks
from rfb.h264cuda.model.picture import MacroblockArrays, mb_view

THREADS = 128
"""Threads per block of every intra launch."""

_FIELDS = {
    "kind": (),
    "luma_mode": (),
    "chroma_mode": (),
    "mv": (2,),
    "mvp": (2,),
    "luma_dc": (16,),
    "luma": (16, 16),
    "chroma_dc": (2, 4),
    "chroma_ac": (2, 4, 15),
    "cbp_luma": (),
    "cbp_chroma": (),
}
"""Each MacroblockArrays field's shape after (rows, cols)."""


def macroblock_arrays(xp: Any, rows: int, cols: int) -> MacroblockArrays:
    """:meth:`MacroblockArrays.empty` with arrays of ``xp`` (int32 zeros, C order)."""
    return MacroblockArrays(**{name: xp.zeros((rows, cols, *tail), xp.int32) for name, tail in _FIELDS.items()})


def _check_macroblocks(xp: Any, mbs: MacroblockArrays, rows: int, cols: int) -> None:
    # The kernels write the fields in place: they must be C-contiguous int32 of the model's shapes.
    for name, tail in _FIELDS.items():
        a = getattr(mbs, name)
        want = (rows, cols, *tail)
        if not isinstance(a, xp.ndarray) or a.shape != want or a.dtype != xp.int32 or not a.flags.c_contiguous:
            got = f"{type(a).__name__} {getattr(a, 'dtype', '?')} {getattr(a, 'shape', '?')}"
            raise ValueError(f"MacroblockArrays.{name}: expected C-contiguous int32 {want} of {xp.__name__}, got {got}")


def _shape(name: str, a: Any, want: tuple[int, ...]) -> None:
    if tuple(a.shape) != want:
        raise ValueError(f"{name}: expected shape {want}, got {tuple(a.shape)}")


def chain_levels(mask: np.ndarray) -> np.ndarray:
    """(R, C) int64: for each macroblock in ``mask``, the length of the longest chain of
    masked neighbours (left, upper, upper-left) it waits for; -1 outside ``mask``.

    level = 1 + max(level of the left, upper and upper-left neighbours), row by row: in a
    row, a run of masked macroblocks starting at s has level(c) = c + 1 + max over
    s <= j <= c of (up(j) - j), with up(j) the larger level above or above-left; the
    running maximum restarts at each run (each run's values are lifted above the ones
    before it).
    """
    rows, cols = mask.shape
    level = np.full((rows, cols), -1, np.int64)
    c = np.arange(cols)
    lift = 2 * (rows * cols + cols + 3)  # more than the spread of (up - j) values
    prev = np.full(cols, -1, np.int64)
    for r in range(rows):
        m = mask[r].astype(bool)
        if m.any():
            up = np.maximum(prev, np.concatenate(([-1], prev[:-1])))
            run = np.cumsum(~m)  # constant over a run (and the unmasked macroblock before it)
            value = np.where(m, up - c, -(cols + 2)) + run * lift
            level[r] = np.where(m, c + 1 + np.maximum.accumulate(value) - run * lift, -1)
        prev = level[r]
    return level


def _groups(level: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    # The masked macroblocks (r * C + c, int32) by level, and each level's (first, count).
    flat = level.ravel()
    masked = np.flatnonzero(flat >= 0)
    order = masked[np.argsort(flat[masked], kind="stable")].astype(np.int32)
    counts = np.bincount(flat[masked])
    firsts = np.cumsum(counts) - counts
    return order, [(int(f), int(n)) for f, n in zip(firsts, counts, strict=True) if n]


@cache
def _diagonals(rows: int, cols: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    # Every macroblock by anti-diagonal (the chain levels of a full mask are r + c).
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return _groups(r + c)


@cache
def _device_diagonals(xp: Any, device: int | None, rows: int, cols: int) -> tuple[Any, list[tuple[int, int]], Any]:
    # :func:`_diagonals`' order, and the all-ones mask of an I picture, as arrays of ``xp`` on
    # ``device`` (a launcher's ``device``; None for one without, the CPU build's): uploaded
    # once per device and picture size instead of on every picture. Shared, so read-only.
    order, groups = _diagonals(rows, cols)
    on_device, every = xp.asarray(order), xp.ones((rows, cols), xp.uint8)
    for a in (order, every):
        if hasattr(a, "setflags"):  # NumPy's; CuPy arrays have no such flag
            a.setflags(write=False)
    return on_device, groups, every


def source_cost(launcher: Launcher, src_y: Any) -> Any:
    """(R, C) int32: the least luma SAD of any Intra16x16 prediction made from the *source*
    neighbours of each macroblock of ``src_y`` (R, C, 16, 16) (model ``source_cost``)."""
    xp = launcher.xp
    rows, cols = src_y.shape[:2]
    _shape("src_y", src_y, (rows, cols, 16, 16))
    cost = xp.empty((rows, cols), xp.int32)
    src = xp.ascontiguousarray(src_y, dtype=xp.int32)
    launcher.launch("intra_source_cost", blocks(rows * cols, THREADS), (THREADS, 1, 1), rows, cols, src, cost)
    return cost


def code_wavefront(
    launcher: Launcher,
    src_y: Any,
    src_c: Any,
    rec_y: Any,
    rec_c: Any,
    mask: Any,
    qp: int,
    mbs: MacroblockArrays,
    *,
    schedule: Literal["levels", "diagonals"] = "levels",
) -> None:
    """Code the macroblocks in ``mask`` (R, C) as Intra16x16 (model ``code_wavefront``).

    ``src_y`` (R, C, 16, 16) and ``src_c`` (R, C, 2, 8, 8) are the source (any integer
    dtype); ``rec_y`` and ``rec_c`` (same shapes) the reconstruction, final outside
    ``mask`` and completed here in place, as are the macroblocks' entries in ``mbs``
    (C-contiguous int32 fields, as :func:`macroblock_arrays` makes them).

    ``schedule="levels"`` copies ``mask`` to the host and launches one group per chain
    level (none when the mask is empty); ``"diagonals"`` copies nothing and launches
    every anti-diagonal, the kernels skipping the macroblocks outside ``mask``.
    """
    xp = launcher.xp
    rows, cols = mask.shape
    if schedule == "levels":
        order, groups = _groups(chain_levels(np.asarray(getattr(xp, "asnumpy", np.asarray)(mask))))
    elif schedule == "diagonals":
        order, groups, _ = _device_diagonals(xp, getattr(launcher, "device", None), rows, cols)
    else:
        raise ValueError(f"schedule: expected 'levels' or 'diagonals', got {schedule!r}")
    _code_groups(launcher, src_y, src_c, rec_y, rec_c, mask, qp, mbs, order, groups)


def _code_groups(
    launcher: Launcher,
    src_y: Any,
    src_c: Any,
    rec_y: Any,
    rec_c: Any,
    mask: Any,
    qp: int,
    mbs: MacroblockArrays,
    order: Any,
    groups: list[tuple[int, int]],
) -> None:
    # One launch per group of ``order`` (host or ``xp``; int32), one for all; see the module's docstring.
    xp = launcher.xp
    rows, cols = mask.shape
    _shape("src_y", src_y, (rows, cols, 16, 16))
    _shape("src_c", src_c, (rows, cols, 2, 8, 8))
    _shape("rec_y", rec_y, (rows, cols, 16, 16))
    _shape("rec_c", rec_c, (rows, cols, 2, 8, 8))
    _check_macroblocks(xp, mbs, rows, cols)
    if not groups:
        return
    sy = xp.ascontiguousarray(src_y, dtype=xp.int32)
    sc = xp.ascontiguousarray(src_c, dtype=xp.int32)
    ry = xp.ascontiguousarray(rec_y, dtype=xp.int32)  # rec_y itself where it already is int32, C order
    rc = xp.ascontiguousarray(rec_c, dtype=xp.int32)
    m = xp.ascontiguousarray(mask, dtype=xp.uint8)
    mb_list = xp.asarray(order)  # order itself where it is already on the device
    block = (THREADS, 1, 1)
    for first, n in groups:
        launcher.launch(
            "intra_code",
            blocks(24 * n, THREADS),
            block,
            mb_list,
            first,
            n,
            cols,
            qp,
            m,
            sy,
            sc,
            ry,
            rc,
            mbs.kind,
            mbs.luma_mode,
            mbs.chroma_mode,
            mbs.luma_dc,
            mbs.luma,
            mbs.chroma_dc,
            mbs.chroma_ac,
        )
    count = len(order)
    launcher.launch(
        "intra_cbp",
        blocks(count, THREADS),
        block,
        mb_list,
        count,
        m,
        mbs.luma,
        mbs.chroma_dc,
        mbs.chroma_ac,
        mbs.cbp_luma,
        mbs.cbp_chroma,
    )
    if ry is not rec_y:
        rec_y[...] = ry
    if rc is not rec_c:
        rec_c[...] = rc


def code_i_picture(launcher: Launcher, y: Any, c: Any, qp: int) -> tuple[MacroblockArrays, Any, Any]:
    """Code luma ``y`` (H, W) and chroma ``c`` (2, H/2, W/2), padded to whole macroblocks
    (model ``code_i_picture``): the macroblocks and the reconstruction (uint8 luma, chroma)."""
    xp = launcher.xp
    height, width = y.shape
    if height % 16 or width % 16:
        raise ValueError(f"expected luma padded to whole macroblocks (multiples of 16), got {height}x{width}")
    _shape("c", c, (2, height // 2, width // 2))
    rows, cols = height // 16, width // 16
    mbs = macroblock_arrays(xp, rows, cols)
    src_y = xp.ascontiguousarray(mb_view(y, 16), dtype=xp.int32)  # one pass: blocks and dtype together
    src_c = xp.ascontiguousarray(mb_view(c, 8).transpose(1, 2, 0, 3, 4), dtype=xp.int32)
    rec_y = xp.zeros((rows, cols, 16, 16), xp.int32)
    rec_c = xp.zeros((rows, cols, 2, 8, 8), xp.int32)
    order, groups, every = _device_diagonals(xp, getattr(launcher, "device", None), rows, cols)
    _code_groups(launcher, src_y, src_c, rec_y, rec_c, every, qp, mbs, order, groups)
    # One pass each: the cast writes the plane order, the reshape is then a view.
    out_y = rec_y.swapaxes(1, 2).astype(xp.uint8, order="C").reshape(height, width)
    out_c = rec_c.transpose(2, 0, 3, 1, 4).astype(xp.uint8, order="C").reshape(2, height // 2, width // 2)
    return mbs, out_y, out_c
