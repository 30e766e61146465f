"""Intra16x16 macroblocks on the kernels: the driver of ``kernels/intra.cu``.

Each function mirrors its namesake in :mod:`rfb.h264cuda.model.intra` (same arguments
after the launcher, same results, bit for bit) with arrays of ``launcher.xp``. The
wavefront walks the anti-diagonals on the host, three launches per diagonal (SADs of
the candidate modes; prediction, transform and AC levels per 4x4 block; DC levels,
the decoder's residual and the reconstruction per 4x4 block), because macroblocks of
one diagonal are independent and each depends on the previous two diagonals. Nothing
is copied to the host: the diagonal lengths follow from the picture size alone.
"""

from __future__ import annotations

from typing import Any

from rfb.h264cuda.kernels import Launcher, blocks
from rfb.h264cuda.model.picture import MacroblockArrays

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


def _diagonal(step: int, rows: int, cols: int) -> int:
    # How many macroblocks anti-diagonal ``step`` holds.
    return min(rows - 1, step) - max(0, step - cols + 1) + 1


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
    launcher: Launcher, src_y: Any, src_c: Any, rec_y: Any, rec_c: Any, mask: Any, qp: int, mbs: MacroblockArrays
) -> None:
    """Code the macroblocks in ``mask`` (R, C) as Intra16x16, one anti-diagonal at a time
    (model ``code_wavefront``).

    ``src_y`` (R, C, 16, 16) and ``src_c`` (R, C, 2, 8, 8) are the source (any integer
    dtype); ``rec_y`` and ``rec_c`` (same shapes) the reconstruction, final outside
    ``mask`` and completed here in place, as are the macroblocks' entries in ``mbs``
    (C-contiguous int32 fields, as :func:`macroblock_arrays` makes them). Every diagonal
    is launched, masked macroblocks or not, so nothing waits on the device.
    """
    xp = launcher.xp
    rows, cols = mask.shape
    _shape("src_y", src_y, (rows, cols, 16, 16))
    _shape("src_c", src_c, (rows, cols, 2, 8, 8))
    _shape("rec_y", rec_y, (rows, cols, 16, 16))
    _shape("rec_c", rec_c, (rows, cols, 2, 8, 8))
    _check_macroblocks(xp, mbs, rows, cols)
    sy = xp.ascontiguousarray(src_y, dtype=xp.int32)
    sc = xp.ascontiguousarray(src_c, dtype=xp.int32)
    ry = xp.ascontiguousarray(rec_y, dtype=xp.int32)  # rec_y itself where it already is int32, C order
    rc = xp.ascontiguousarray(rec_c, dtype=xp.int32)
    m = xp.ascontiguousarray(mask, dtype=xp.uint8)
    sad = xp.empty((rows, cols, 8), xp.int32)
    dccoef = xp.empty((rows, cols, 24), xp.int32)
    block = (THREADS, 1, 1)
    for step in range(rows + cols - 1):
        n = _diagonal(step, rows, cols)
        launcher.launch("intra_sad", blocks(8 * n, THREADS), block, step, rows, cols, m, sy, sc, ry, rc, sad)
        launcher.launch(
            "intra_forward",
            blocks(24 * n, THREADS),
            block,
            step,
            rows,
            cols,
            qp,
            m,
            sy,
            sc,
            ry,
            rc,
            sad,
            dccoef,
            mbs.kind,
            mbs.luma_mode,
            mbs.chroma_mode,
            mbs.luma,
            mbs.chroma_ac,
        )
        launcher.launch(
            "intra_reconstruct",
            blocks(24 * n, THREADS),
            block,
            step,
            rows,
            cols,
            qp,
            m,
            ry,
            rc,
            sad,
            dccoef,
            mbs.luma,
            mbs.chroma_ac,
            mbs.luma_dc,
            mbs.chroma_dc,
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
    src_y = xp.ascontiguousarray(y.astype(xp.int32).reshape(rows, 16, cols, 16).transpose(0, 2, 1, 3))
    src_c = xp.ascontiguousarray(c.astype(xp.int32).reshape(2, rows, 8, cols, 8).transpose(1, 3, 0, 2, 4))
    rec_y = xp.zeros((rows, cols, 16, 16), xp.int32)
    rec_c = xp.zeros((rows, cols, 2, 8, 8), xp.int32)
    code_wavefront(launcher, src_y, src_c, rec_y, rec_c, xp.ones((rows, cols), xp.uint8), qp, mbs)
    out_y = rec_y.transpose(0, 2, 1, 3).reshape(height, width).astype(xp.uint8)
    out_c = rec_c.transpose(2, 0, 3, 1, 4).reshape(2, height // 2, width // 2).astype(xp.uint8)
    return mbs, out_y, out_c
