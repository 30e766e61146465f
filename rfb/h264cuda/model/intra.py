"""Intra16x16 macroblocks, coded as a wavefront: all of an I picture, some of a P picture.

A macroblock predicts from the reconstructed samples of its left, upper and
upper-left neighbours (Intra16x16: 8.3.3; chroma: 8.3.4), so it can be coded once
those three are. Macroblock (r, c) therefore goes in step r + c: every macroblock of
one anti-diagonal is independent of the others, and a picture of R x C macroblocks
takes R + C - 1 steps (124 at 1280x720, 187 at 1920x1080), each as wide as its
diagonal. That wavefront is the one sequential loop of an I picture; on the GPU it
is one launch (or one persistent kernel step) per diagonal, a thread block per
macroblock. This model loops over the diagonals the same way, each step vectorised
over the diagonal's macroblocks. In a P picture only the intra macroblocks take part
(:func:`code_wavefront` with a mask); the others are already reconstructed, so the
chain is only as long as the longest run of adjacent intra macroblocks.

Modes: luma Vertical, Horizontal, DC and Plane; chroma DC, Horizontal, Vertical and
Plane, each where its neighbours are available. The decision is the least sum of
absolute differences between source and prediction, ties going to the mode listed
first in :data:`LUMA_MODES` / :data:`CHROMA_MODES`.
"""

from __future__ import annotations

import numpy as np

from rfb.h264cuda.model import residual
from rfb.h264cuda.model.picture import I_16X16, MacroblockArrays, from_mb_view, mb_view
from rfb.h264cuda.model.transform import chroma_qp

# Intra16x16PredMode (Table 8-4) and intra_chroma_pred_mode (Table 7-16), in tie-break order.
LUMA_MODES = (2, 0, 1, 3)  # DC, Vertical, Horizontal, Plane
CHROMA_MODES = (0, 2, 1, 3)  # DC, Vertical, Horizontal, Plane
_UNAVAILABLE = np.iinfo(np.int32).max


def _plane(top: np.ndarray, left: np.ndarray, corner: np.ndarray, size: int, scale: int) -> np.ndarray:
    # Plane prediction (8-128..8-132 for 16x16 luma, 8-141..8-145 for 8x8 chroma).
    # top, left: (n, size); corner: (n,). Sample p[-1, -1] stands in at index -1.
    half = size // 2
    ext_top = np.concatenate([corner[:, None], top], axis=1)  # ext_top[:, i + 1] = p[i, -1]
    ext_left = np.concatenate([corner[:, None], left], axis=1)
    k = np.arange(1, half + 1)
    h = ((ext_top[:, half + k] - ext_top[:, half - k]) * k).sum(axis=1)
    v = ((ext_left[:, half + k] - ext_left[:, half - k]) * k).sum(axis=1)
    a = 16 * (left[:, size - 1] + top[:, size - 1])
    b = (scale * h + 32) >> 6
    c = (scale * v + 32) >> 6
    pos = np.arange(size) - (half - 1)
    pred = (a[:, None, None] + b[:, None, None] * pos[None, None, :] + c[:, None, None] * pos[None, :, None] + 16) >> 5
    clipped: np.ndarray = np.clip(pred, 0, 255)
    return clipped


def luma_predictions(
    top: np.ndarray, left: np.ndarray, corner: np.ndarray, has_top: np.ndarray, has_left: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every Intra16x16 prediction of n macroblocks, (4, n, 16, 16) in :data:`LUMA_MODES` order,
    and whether each is allowed (4, n). ``top``/``left``: (n, 16) neighbour samples."""
    n = top.shape[0]
    sum_top, sum_left = top.sum(axis=1), left.sum(axis=1)
    dc = np.where(
        has_top & has_left,
        (sum_top + sum_left + 16) >> 5,
        np.where(has_left, (sum_left + 8) >> 4, np.where(has_top, (sum_top + 8) >> 4, 128)),
    )
    preds = np.stack(
        [
            np.broadcast_to(dc[:, None, None], (n, 16, 16)),
            np.broadcast_to(top[:, None, :], (n, 16, 16)),
            np.broadcast_to(left[:, :, None], (n, 16, 16)),
            _plane(top, left, corner, 16, 5),
        ]
    )
    allowed = np.stack([np.ones(n, bool), has_top, has_left, has_top & has_left])
    return preds.astype(np.int32), allowed


def _chroma_dc(top: np.ndarray, left: np.ndarray, has_top: np.ndarray, has_left: np.ndarray) -> np.ndarray:
    # 8.3.4.1-8.3.4.3 for one component: top, left (n, 8) -> (n, 8, 8).
    t = top.reshape(-1, 2, 4).sum(axis=2)  # sums over the left and right 4 columns
    lf = left.reshape(-1, 2, 4).sum(axis=2)  # over the upper and lower 4 rows
    both, ht, hl = (has_top & has_left)[:, None], has_top[:, None], has_left[:, None]
    avg_both = (t + lf + 4) >> 3  # blocks (0, 0) and (1, 1): index 0 and 1
    top_only, left_only = (t + 2) >> 2, (lf + 2) >> 2
    diag = np.where(both, avg_both, np.where(hl, left_only, np.where(ht, top_only, 128)))
    # Block (1, 0), upper right: top first. Block (0, 1), lower left: left first.
    upper_right = np.where(has_top, top_only[:, 1], np.where(has_left, left_only[:, 0], 128))
    lower_left = np.where(has_left, left_only[:, 1], np.where(has_top, top_only[:, 0], 128))
    blocks = np.stack([np.stack([diag[:, 0], upper_right], -1), np.stack([lower_left, diag[:, 1]], -1)], -2)
    return np.repeat(np.repeat(blocks, 4, axis=1), 4, axis=2)


def chroma_predictions(
    top: np.ndarray, left: np.ndarray, corner: np.ndarray, has_top: np.ndarray, has_left: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every chroma prediction, (4, n, 2, 8, 8) in :data:`CHROMA_MODES` order, and which are
    allowed (4, n). ``top``/``left``: (n, 2, 8); ``corner``: (n, 2)."""
    n = top.shape[0]
    dc = np.stack([_chroma_dc(top[:, k], left[:, k], has_top, has_left) for k in range(2)], axis=1)
    plane = np.stack([_plane(top[:, k], left[:, k], corner[:, k], 8, 34) for k in range(2)], axis=1)
    preds = np.stack(
        [
            dc,
            np.broadcast_to(top[:, :, None, :], (n, 2, 8, 8)),
            np.broadcast_to(left[:, :, :, None], (n, 2, 8, 8)),
            plane,
        ]
    )
    allowed = np.stack([np.ones(n, bool), has_top, has_left, has_top & has_left])
    return preds.astype(np.int32), allowed


def _choose(source: np.ndarray, preds: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    # Index of the cheapest allowed prediction per macroblock (SAD; the first wins a tie).
    sad = np.abs(preds - source[None]).sum(axis=tuple(range(2, preds.ndim)))
    cheapest: np.ndarray = np.argmin(np.where(allowed, sad, _UNAVAILABLE), axis=0)
    return cheapest


def _neighbours(rec_y: np.ndarray, r: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, ...]:
    # Upper row, left column and upper-left sample of macroblocks (r, col) in a
    # (R, C, 16, 16) array, and which exist (zeros where not).
    has_top, has_left = r > 0, col > 0
    up, lf = np.maximum(r - 1, 0), np.maximum(col - 1, 0)  # clamped; masked by has_*
    top = np.where(has_top[:, None], rec_y[up, col, 15, :], 0)
    left = np.where(has_left[:, None], rec_y[r, lf, :, 15], 0)
    return top, left, rec_y[up, lf, 15, 15], has_top, has_left


def source_cost(src_y: np.ndarray) -> np.ndarray:
    """(R, C) least luma SAD of any Intra16x16 prediction made from the *source* neighbours.

    P pictures decide intra against inter with this, for all macroblocks at once; the
    macroblocks chosen are then coded from the reconstruction (:func:`code_wavefront`).
    """
    rows, cols = src_y.shape[:2]
    r, col = (a.ravel() for a in np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij"))
    preds, allowed = luma_predictions(*_neighbours(src_y, r, col))
    sad = np.abs(preds - src_y[r, col][None]).sum(axis=(2, 3))
    best: np.ndarray = np.where(allowed, sad, _UNAVAILABLE).min(axis=0).reshape(rows, cols)
    return best


def code_wavefront(
    src_y: np.ndarray,
    src_c: np.ndarray,
    rec_y: np.ndarray,
    rec_c: np.ndarray,
    mask: np.ndarray,
    qp: int,
    mbs: MacroblockArrays,
) -> None:
    """Code the macroblocks in ``mask`` (R, C) as Intra16x16, one anti-diagonal at a time.

    ``src_y`` (R, C, 16, 16) and ``src_c`` (R, C, 2, 8, 8) are the source; ``rec_y`` and
    ``rec_c`` the reconstruction, already final outside ``mask`` and completed here in
    place, as are the macroblocks' entries in ``mbs``.
    """
    rows, cols = mask.shape
    qpc = chroma_qp(qp)
    for step in range(rows + cols - 1):  # the wavefront: one anti-diagonal at a time
        r = np.arange(max(0, step - cols + 1), min(rows, step + 1))
        col = step - r
        r, col = r[mask[r, col]], col[mask[r, col]]
        if r.size == 0:
            continue
        mbs.kind[r, col] = I_16X16
        preds, allowed = luma_predictions(*_neighbours(rec_y, r, col))
        pick = _choose(src_y[r, col], preds, allowed)
        pred = preds[pick, np.arange(r.size)]
        luma = residual.code_luma_intra16(src_y[r, col] - pred, qp)
        rec_y[r, col] = np.clip(pred + luma.residual, 0, 255)
        mbs.luma_mode[r, col] = np.asarray(LUMA_MODES)[pick]
        mbs.luma_dc[r, col] = luma.dc
        mbs.luma[r, col, :, 1:] = luma.ac
        mbs.cbp_luma[r, col] = np.where(np.any(luma.ac != 0, axis=(-2, -1)), 15, 0)

        has_top, has_left = r > 0, col > 0
        up, lf = np.maximum(r - 1, 0), np.maximum(col - 1, 0)
        top_c = np.where(has_top[:, None, None], rec_c[up, col, :, 7, :], 0)
        left_c = np.where(has_left[:, None, None], rec_c[r, lf, :, :, 7], 0)
        preds, allowed = chroma_predictions(top_c, left_c, rec_c[up, lf, :, 7, 7], has_top, has_left)
        pick = _choose(src_c[r, col], preds, allowed)
        pred = preds[pick, np.arange(r.size)]
        chroma = residual.code_chroma(src_c[r, col] - pred, qpc, intra=True)
        rec_c[r, col] = np.clip(pred + chroma.residual, 0, 255)
        mbs.chroma_mode[r, col] = np.asarray(CHROMA_MODES)[pick]
        mbs.chroma_dc[r, col] = chroma.dc
        mbs.chroma_ac[r, col] = chroma.ac
        mbs.cbp_chroma[r, col] = chroma.cbp


def code_i_picture(y: np.ndarray, c: np.ndarray, qp: int) -> tuple[MacroblockArrays, np.ndarray, np.ndarray]:
    """Code luma ``y`` (H, W) and chroma ``c`` (2, H/2, W/2), padded to whole macroblocks.

    Returns the macroblocks and the reconstruction (luma, chroma) the decoder will show.
    """
    rows, cols = y.shape[0] // 16, y.shape[1] // 16
    mbs = MacroblockArrays.empty(rows, cols)
    src_y = mb_view(y.astype(np.int32), 16)  # (R, C, 16, 16)
    src_c = mb_view(c.astype(np.int32), 8).transpose(1, 2, 0, 3, 4)  # (R, C, 2, 8, 8)
    rec_y = np.zeros((rows, cols, 16, 16), np.int32)
    rec_c = np.zeros((rows, cols, 2, 8, 8), np.int32)
    code_wavefront(src_y, src_c, rec_y, rec_c, np.ones((rows, cols), bool), qp, mbs)
    recon_c = from_mb_view(rec_c.transpose(2, 0, 1, 3, 4))
    return mbs, from_mb_view(rec_y).astype(np.uint8), recon_c.astype(np.uint8)
