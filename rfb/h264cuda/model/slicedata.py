"""Entropy coding: macroblock_layer() (7.3.5) under CAVLC, and the slices.

Every picture is one slice. Once a picture's :class:`MacroblockArrays` exist,
everything that the bits of one macroblock depend on is known: the nC of each block
(a gather over the neighbours' coefficient counts, :func:`neighbour_counts`), the
motion vector predictor (:mod:`.mvpred`), and the skip run before it (the distance
to the previous coded macroblock: a scan). So each macroblock's bits are produced
independently (:func:`macroblock_bits`, one thread or warp per macroblock on the
GPU), and the slice is its header, the runs and the macroblocks' bits concatenated,
at offsets given by an exclusive prefix sum of their lengths.
"""

from __future__ import annotations

import numpy as np

from rfb.h264cuda.model import headers
from rfb.h264cuda.model.bitwriter import Bits
from rfb.h264cuda.model.cavlc import predicted_counts, residual_block
from rfb.h264cuda.model.picture import I_16X16, P_L0_16X16, P_SKIP, MacroblockArrays
from rfb.h264cuda.model.transform import BLK_X, BLK_Y

# coded_block_pattern -> codeNum of me(v) for inter macroblocks (Table 9-4, 4:2:0).
_INTER_CBP_CODE_NUM = np.argsort(
    np.array(
        [
            0,
            16,
            1,
            2,
            4,
            8,
            32,
            3,
            5,
            10,
            12,
            15,
            47,
            7,
            11,
            13,
            14,
            6,
            9,
            31,
            35,
            37,
            42,
            44,
            33,
            34,
            36,
            40,
            39,
            43,
            45,
            46,
            17,
            18,
            20,
            24,
            19,
            21,
            26,
            28,
            23,
            27,
            29,
            30,
            22,
            25,
            38,
            41,
        ]
    )
)

P_MB_TYPE_OFFSET = 5  # I macroblock types in a P slice follow the five P types (Table 7-13)


def neighbour_counts(mbs: MacroblockArrays) -> tuple[np.ndarray, np.ndarray]:
    """nC of every luma 4x4 block (R, C, 16 by blkIdx) and chroma AC block (R, C, 2, 4).

    TotalCoeff per block first (AC only for Intra16x16, 9.2.1; zero for skipped
    macroblocks and uncoded blocks, whose levels are all zero), laid out as the
    picture's grid of blocks, then :func:`predicted_counts`.
    """
    rows, cols = mbs.kind.shape
    counts = np.count_nonzero(mbs.luma, axis=-1)  # (R, C, 16), index 0 of Intra16x16 is 0
    grid = np.zeros((rows, 4, cols, 4), np.int32)
    r, c = np.arange(rows)[:, None, None], np.arange(cols)[None, :, None]
    grid[r, BLK_Y, c, BLK_X] = counts
    n_c = predicted_counts(grid.reshape(1, 4 * rows, 4 * cols)).reshape(rows, 4, cols, 4)[r, BLK_Y, c, BLK_X]

    chroma_counts = np.count_nonzero(mbs.chroma_ac, axis=-1)  # (R, C, 2, 4)
    cgrid = chroma_counts.reshape(rows, cols, 2, 2, 2).transpose(2, 0, 3, 1, 4)  # (2, R, 2, C, 2)
    chroma_n_c = predicted_counts(cgrid.reshape(2, 2 * rows, 2 * cols)).reshape(2, rows, 2, cols, 2)
    return n_c, chroma_n_c.transpose(1, 3, 0, 2, 4).reshape(rows, cols, 2, 4)


def _chroma_residual(mbs: MacroblockArrays, r: int, c: int, chroma_n_c: np.ndarray, out: Bits) -> None:
    cbp = mbs.cbp_chroma[r, c]
    if cbp:
        for comp in range(2):
            residual_block(mbs.chroma_dc[r, c, comp], -1, 4, out)
    if cbp == 2:
        for comp in range(2):
            for blk in range(4):
                residual_block(mbs.chroma_ac[r, c, comp, blk], int(chroma_n_c[r, c, comp, blk]), 15, out)


def macroblock_bits(
    mbs: MacroblockArrays, r: int, c: int, n_c: np.ndarray, chroma_n_c: np.ndarray, p_slice: bool
) -> Bits:
    """macroblock_layer() of the coded (non-skipped) macroblock at row r, column c."""
    out = Bits()
    kind = mbs.kind[r, c]
    if kind == I_16X16:
        mb_type = 1 + mbs.luma_mode[r, c] + 4 * mbs.cbp_chroma[r, c] + (12 if mbs.cbp_luma[r, c] else 0)
        out.ue(int(mb_type) + (P_MB_TYPE_OFFSET if p_slice else 0))
        out.ue(int(mbs.chroma_mode[r, c]))
        out.se(0)  # mb_qp_delta: the slice's QP throughout
        residual_block(mbs.luma_dc[r, c], int(n_c[r, c, 0]), 16, out)
        if mbs.cbp_luma[r, c]:
            for blk in range(16):
                residual_block(mbs.luma[r, c, blk, 1:], int(n_c[r, c, blk]), 15, out)
        _chroma_residual(mbs, r, c, chroma_n_c, out)
        return out
    if kind != P_L0_16X16:
        raise ValueError(f"expected a coded macroblock at ({r}, {c}), got kind {kind}")
    out.ue(0)  # mb_type P_L0_16x16; ref_idx_l0 absent with one active reference
    mvd = mbs.mv[r, c] - mbs.mvp[r, c]
    out.se(int(mvd[0])).se(int(mvd[1]))
    cbp = int(mbs.cbp_luma[r, c] + 16 * mbs.cbp_chroma[r, c])
    out.ue(int(_INTER_CBP_CODE_NUM[cbp]))
    if cbp:
        out.se(0)  # mb_qp_delta
        for blk8 in range(4):
            if mbs.cbp_luma[r, c] >> blk8 & 1:
                for blk in range(4 * blk8, 4 * blk8 + 4):
                    residual_block(mbs.luma[r, c, blk], int(n_c[r, c, blk]), 16, out)
        _chroma_residual(mbs, r, c, chroma_n_c, out)
    return out


def slice_nal(mbs: MacroblockArrays, idr: bool, frame_num: int, idr_pic_id: int, qp: int) -> bytes:
    """The picture's one coded slice NAL unit: header, slice_data() (7.3.4), trailing bits."""
    n_c, chroma_n_c = neighbour_counts(mbs)
    out = headers.slice_header(0, idr, frame_num, idr_pic_id, qp)
    run = 0
    for r, c in np.ndindex(*mbs.kind.shape):  # raster order
        if mbs.kind[r, c] == P_SKIP:
            run += 1
            continue
        if not idr:
            out.ue(run)  # mb_skip_run
            run = 0
        out.append(macroblock_bits(mbs, r, c, n_c, chroma_n_c, p_slice=not idr))
    if run:
        out.ue(run)
    return headers.slice_nal(idr, out.trailing())
