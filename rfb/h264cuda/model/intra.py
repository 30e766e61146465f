"""I pictures: Intra16x16 macroblocks, one slice per macroblock row.

With one slice per row, a macroblock's only available neighbour is the one on its
left (6.4.8: the row above is another slice). So the Intra16x16 modes in use are DC
and Horizontal (Vertical and Plane need the row above), and chroma likewise uses DC
and Horizontal. That makes every row independent of every other: the kernel runs
one thread block per row, all rows at once, and walks along its row, because each
macroblock predicts from its left neighbour's *reconstruction*. That walk is the one
sequential loop of an I picture; this model is written the same way (a loop over
macroblock columns, each step vectorised over all rows).

Mode decision is the sum of absolute differences between source and prediction,
ties going to DC.
"""

from __future__ import annotations

import numpy as np

from rfb.h264cuda.model import residual
from rfb.h264cuda.model.picture import (
    CHROMA_DC, CHROMA_HORIZONTAL, I16_DC, I16_HORIZONTAL, I_16X16, MacroblockArrays, from_mb_view, mb_view,
)
from rfb.h264cuda.model.transform import chroma_qp


def luma_predictions(left: np.ndarray | None, rows: int) -> tuple[list[int], np.ndarray]:
    """Candidate Intra16x16 predictions (8.3.3) from the left column ``left`` (R, 16) or none.

    Returns the modes and their predictions (modes, R, 16, 16). Without the upper row, DC
    is the rounded mean of the left column (8-119), or 128 with no neighbour at all.
    """
    if left is None:
        return [I16_DC], np.full((1, rows, 16, 16), 128, np.int32)
    dc = (left.sum(axis=-1, dtype=np.int32) + 8) >> 4
    preds = np.stack([np.broadcast_to(dc[:, None, None], (rows, 16, 16)),
                      np.broadcast_to(left[:, :, None], (rows, 16, 16))])
    return [I16_DC, I16_HORIZONTAL], preds.astype(np.int32)


def chroma_predictions(left: np.ndarray | None, rows: int) -> tuple[list[int], np.ndarray]:
    """Candidate chroma predictions (8.3.4) from the left columns ``left`` (R, 2, 8) or none.

    Without the upper row every 4x4 chroma block's DC is the mean of its four left
    samples (8-134, 8-139), so the two blocks of a 4-row band share it.
    """
    if left is None:
        return [CHROMA_DC], np.full((1, rows, 2, 8, 8), 128, np.int32)
    bands = (left.reshape(rows, 2, 2, 4).sum(axis=-1, dtype=np.int32) + 2) >> 2  # (R, 2, 2)
    dc = np.repeat(bands, 4, axis=-1)  # (R, 2, 8): one value per row
    preds = np.stack([np.broadcast_to(dc[..., None], (rows, 2, 8, 8)),
                      np.broadcast_to(left[..., None], (rows, 2, 8, 8))])
    return [CHROMA_DC, CHROMA_HORIZONTAL], preds.astype(np.int32)


def _choose(source: np.ndarray, preds: np.ndarray) -> np.ndarray:
    # Index of the cheapest prediction per row (SAD; the first wins a tie).
    axes = tuple(range(2, preds.ndim))
    sad = np.abs(preds - source[None]).sum(axis=axes)
    return np.argmin(sad, axis=0)


def code_i_picture(y: np.ndarray, c: np.ndarray, qp: int) -> tuple[MacroblockArrays, np.ndarray, np.ndarray]:
    """Code luma ``y`` (H, W) and chroma ``c`` (2, H/2, W/2), padded to whole macroblocks.

    Returns the macroblocks and the reconstruction (luma, chroma) the decoder will show.
    """
    rows, cols = y.shape[0] // 16, y.shape[1] // 16
    mbs = MacroblockArrays.empty(rows, cols)
    mbs.kind[:] = I_16X16
    src_y = mb_view(y.astype(np.int32), 16)  # (R, C, 16, 16)
    src_c = mb_view(c.astype(np.int32), 8).transpose(1, 2, 0, 3, 4)  # (R, C, 2, 8, 8)
    rec_y = np.zeros((rows, cols, 16, 16), np.int32)
    rec_c = np.zeros((rows, cols, 2, 8, 8), np.int32)
    qpc = chroma_qp(qp)
    every_row = np.arange(rows)
    for col in range(cols):  # the sequential walk along each row; all rows at once
        left_y = rec_y[:, col - 1, :, 15] if col else None
        modes, preds = luma_predictions(left_y, rows)
        pick = _choose(src_y[:, col], preds)
        pred = preds[pick, every_row]
        luma = residual.code_luma_intra16(src_y[:, col] - pred, qp)
        rec_y[:, col] = np.clip(pred + luma.residual, 0, 255)
        mbs.luma_mode[:, col] = np.asarray(modes)[pick]
        mbs.luma_dc[:, col] = luma.dc
        mbs.luma[:, col, :, 1:] = luma.ac
        mbs.cbp_luma[:, col] = np.where(np.any(luma.ac != 0, axis=(-2, -1)), 15, 0)

        left_c = rec_c[:, col - 1, :, :, 7] if col else None
        modes, preds = chroma_predictions(left_c, rows)
        pick = _choose(src_c[:, col], preds)
        pred = preds[pick, every_row]
        chroma = residual.code_chroma(src_c[:, col] - pred, qpc, intra=True)
        rec_c[:, col] = np.clip(pred + chroma.residual, 0, 255)
        mbs.chroma_mode[:, col] = np.asarray(modes)[pick]
        mbs.chroma_dc[:, col] = chroma.dc
        mbs.chroma_ac[:, col] = chroma.ac
        mbs.cbp_chroma[:, col] = chroma.cbp
    recon_c = from_mb_view(rec_c.transpose(2, 0, 1, 3, 4))
    return mbs, from_mb_view(rec_y).astype(np.uint8), recon_c.astype(np.uint8)
