"""P pictures on the device: ``model.inter``, as a sequence of parallel launches.

Each function mirrors the model function of the same name, with a
:class:`rfb.h264cuda.kernels.Launcher` first and arrays of ``launcher.xp``; the
kernels are in ``kernels/inter.cu``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rfb.h264cuda import intra, mvpred
from rfb.h264cuda.kernels import Launcher, blocks
from rfb.h264cuda.model.inter import LAMBDA
from rfb.h264cuda.model.picture import MacroblockArrays, mb_view

THREADS = 128
PARTS = 18  # threads per macroblock in inter_residual: 16 luma 4x4 blocks, 2 chroma components


def _luma_plane(xp: Any, plane: Any, name: str) -> Any:
    if plane.ndim != 2 or plane.shape[0] % 16 or plane.shape[1] % 16 or plane.dtype != xp.uint8:
        raise ValueError(f"expected {name} as a uint8 plane of whole macroblocks, got {plane.dtype} {plane.shape}")
    return xp.ascontiguousarray(plane)


def _check_search(search: int, qp: int) -> None:
    if search < 0 or not 0 <= qp < len(LAMBDA):
        raise ValueError(f"expected search >= 0 and a QP in 0..{len(LAMBDA) - 1}, got {search} and {qp}")


def motion_search(launcher: Launcher, y: Any, ref: Any, search: int, qp: int) -> tuple[Any, Any]:
    """The chosen vector of every macroblock, (R, C, 2) whole luma samples (x, y), and its cost (R, C).

    Two launches: every (macroblock, candidate) cost, then each macroblock's choice in
    the model's candidate order.
    """
    xp = launcher.xp
    src, reference = _luma_plane(xp, y, "y"), _luma_plane(xp, ref, "ref")
    if src.shape != reference.shape:
        raise ValueError(f"expected a reference shaped like the picture {src.shape}, got {reference.shape}")
    _check_search(search, qp)
    h, w = src.shape
    rows, cols = h // 16, w // 16
    count = (2 * search + 1) ** 2
    costs = xp.empty(rows * cols * count, xp.int32)
    launcher.launch(
        "motion_costs", blocks(costs.size, THREADS), (THREADS, 1, 1), src, reference, w, h, search, LAMBDA[qp], costs
    )
    mv = xp.empty((rows, cols, 2), xp.int32)
    cost = xp.empty((rows, cols), xp.int32)
    grid = blocks(rows * cols, THREADS)
    launcher.launch("motion_choose", grid, (THREADS, 1, 1), costs, rows * cols, search, mv, cost)
    return mv, cost


def _chroma_planes(xp: Any, plane: Any, luma: Any, name: str) -> Any:
    h, w = luma.shape
    if plane.shape != (2, h // 2, w // 2) or plane.dtype != xp.uint8:
        raise ValueError(f"expected {name} as uint8 {(2, h // 2, w // 2)}, got {plane.dtype} {plane.shape}")
    return xp.ascontiguousarray(plane)


@dataclass(frozen=True, slots=True)
class InterResidual:
    """The residual of every macroblock at given vectors (:func:`residual`), as the model's
    ``residual.code_luma_inter`` and ``code_chroma`` (``intra=False``) give it."""

    flags: Any  # (R, C, 18): per luma4x4BlkIdx whether a level is non-zero; Cb, Cr: bit 0 DC, bit 1 AC
    luma: Any  # (R, C, 16, 16) levels by luma4x4BlkIdx, zigzag
    chroma_dc: Any  # (R, C, 2, 4)
    chroma_ac: Any  # (R, C, 2, 4, 15)
    rec_y: Any  # (R, C, 16, 16) int32: prediction plus the decoder's residual
    rec_c: Any  # (R, C, 2, 8, 8) int32


@dataclass(frozen=True, slots=True)
class _Planes:
    # A P picture's source and reference, checked, C order.
    y: Any
    c: Any
    ref_y: Any
    ref_c: Any

    @property
    def rows(self) -> int:
        return int(self.y.shape[0]) // 16

    @property
    def cols(self) -> int:
        return int(self.y.shape[1]) // 16


def _planes(xp: Any, y: Any, c: Any, ref_y: Any, ref_c: Any) -> _Planes:
    src_y, reference_y = _luma_plane(xp, y, "y"), _luma_plane(xp, ref_y, "ref_y")
    if src_y.shape != reference_y.shape:
        raise ValueError(f"expected ref_y shaped like y {src_y.shape}, got {reference_y.shape}")
    return _Planes(src_y, _chroma_planes(xp, c, src_y, "c"), reference_y, _chroma_planes(xp, ref_c, src_y, "ref_c"))


def _residual(launcher: Launcher, p: _Planes, mv: Any, mask: Any, qp: int, into: InterResidual | None) -> Any:
    # One launch, a thread per (macroblock, part); flags only where ``into`` is None.
    xp = launcher.xp
    h, w = p.y.shape
    mbs = p.rows * p.cols
    flags = xp.empty((p.rows, p.cols, PARTS), xp.int32)
    store = into if into is not None else InterResidual(*(xp.zeros(1, xp.int32) for _ in range(6)))
    launcher.launch(
        "inter_residual",
        blocks(mbs * PARTS, THREADS),
        (THREADS, 1, 1),
        p.y,
        p.c,
        p.ref_y,
        p.ref_c,
        w,
        h,
        mv,
        mask,
        qp,
        int(into is not None),
        flags,
        store.luma,
        store.chroma_dc,
        store.chroma_ac,
        store.rec_y,
        store.rec_c,
    )
    return flags


def residual(
    launcher: Launcher, y: Any, c: Any, ref_y: Any, ref_c: Any, mv: Any, qp: int, intra_mask: Any | None = None
) -> InterResidual:
    """Every macroblock's residual against its prediction from the reference at vector
    ``mv`` ((R, C, 2) quarter samples, whole-sample multiples of 4): levels, which are
    non-zero, and the reconstruction. Macroblocks in ``intra_mask`` ((R, C), none when None)
    get zero levels and flags and no reconstruction (the wavefront writes it)."""
    xp = launcher.xp
    p = _planes(xp, y, c, ref_y, ref_c)
    rows, cols = p.rows, p.cols
    if mv.shape != (rows, cols, 2):
        raise ValueError(f"expected vectors shaped {(rows, cols, 2)}, got {mv.shape}")
    vectors = xp.ascontiguousarray(mv, dtype=xp.int32)
    mask = xp.zeros((rows, cols), xp.uint8) if intra_mask is None else xp.ascontiguousarray(intra_mask, dtype=xp.uint8)
    out = InterResidual(
        flags=None,
        luma=xp.zeros((rows, cols, 16, 16), xp.int32),
        chroma_dc=xp.zeros((rows, cols, 2, 4), xp.int32),
        chroma_ac=xp.zeros((rows, cols, 2, 4, 15), xp.int32),
        rec_y=xp.zeros((rows, cols, 16, 16), xp.int32),
        rec_c=xp.zeros((rows, cols, 2, 8, 8), xp.int32),
    )
    flags = _residual(launcher, p, vectors, mask, qp, out)
    return InterResidual(flags, out.luma, out.chroma_dc, out.chroma_ac, out.rec_y, out.rec_c)


def code_p_picture(
    launcher: Launcher, y: Any, c: Any, ref_y: Any, ref_c: Any, qp: int, search: int
) -> tuple[MacroblockArrays, Any, Any]:
    """Code a P picture against the reconstruction (``ref_y``, ``ref_c``) of the previous one.

    As :func:`rfb.h264cuda.model.inter.code_p_picture`: luma (H, W) and chroma
    (2, H/2, W/2) uint8 of whole macroblocks; returns the macroblocks (int32 arrays of
    ``launcher.xp``) and the reconstruction (uint8 planes). Every step is a launch; the
    one host copy is the intra mask, read by :func:`rfb.h264cuda.intra.code_wavefront`
    (its default schedule) to launch only the chains of intra macroblocks, none when
    the picture has none.
    """
    xp = launcher.xp
    _check_search(search, qp)
    p = _planes(xp, y, c, ref_y, ref_c)
    h, w = p.y.shape
    rows, cols = p.rows, p.cols
    mbs = rows * cols
    one, per_mb = (THREADS, 1, 1), blocks(mbs, THREADS)
    out = intra.macroblock_arrays(xp, rows, cols)

    # 1. The still test: the residual at the zero vector, flags only.
    zero_mv, no_intra = xp.zeros((rows, cols, 2), xp.int32), xp.zeros((rows, cols), xp.uint8)
    still_flags = _residual(launcher, p, zero_mv, no_intra, qp, None)

    # 2. The motion search; 3. intra or inter, from the source; 4. final vectors.
    search_mv, search_cost = motion_search(launcher, p.y, p.ref_y, search, qp)
    mb_y = xp.ascontiguousarray(mb_view(p.y, 16), dtype=xp.int32)  # one pass: blocks and dtype together
    source_cost = intra.source_cost(launcher, mb_y)  # a fresh C-order int32 array
    still = xp.empty((rows, cols), xp.uint8)
    is_intra = xp.empty((rows, cols), xp.uint8)
    launcher.launch(
        "inter_decide", per_mb, one, mbs, LAMBDA[qp], still_flags, search_mv, search_cost, source_cost, still,
        is_intra, out.mv,
    )  # fmt: skip

    # 5. Predictors; 6. the residual at the final vectors; 7. kinds and coded_block_pattern.
    _, skip_mv = mvpred.predictors(launcher, out.mv, is_intra == 0, mvp=out.mvp)
    rec_y = xp.zeros((rows, cols, 16, 16), xp.int32)
    rec_c = xp.zeros((rows, cols, 2, 8, 8), xp.int32)
    into = InterResidual(None, out.luma, out.chroma_dc, out.chroma_ac, rec_y, rec_c)
    flags = _residual(launcher, p, out.mv, is_intra, qp, into)
    launcher.launch(
        "inter_finish", per_mb, one, mbs, still, is_intra, skip_mv, flags, out.kind, out.cbp_luma, out.cbp_chroma
    )

    # The intra macroblocks, from the reconstruction, as the wavefront restricted to them.
    mb_c = xp.ascontiguousarray(mb_view(p.c, 8).transpose(1, 2, 0, 3, 4), dtype=xp.int32)
    intra.code_wavefront(launcher, mb_y, mb_c, rec_y, rec_c, is_intra, qp, out)
    # One pass each: the cast writes the plane order, the reshape is then a view.
    plane_y = rec_y.swapaxes(1, 2).astype(xp.uint8, order="C").reshape(h, w)
    plane_c = rec_c.transpose(2, 0, 3, 1, 4).astype(xp.uint8, order="C").reshape(2, h // 2, w // 2)
    return out, plane_y, plane_c
