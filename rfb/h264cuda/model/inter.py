"""P pictures: P_Skip, P_L0_16x16 and Intra16x16 macroblocks in one slice.

Every macroblock is decided independently of every other, which is what makes the
decisions one parallel step on the GPU:

1. For each macroblock, whether its residual against the co-located reference
   quantises to nothing, luma and chroma (``still``), and the best integer vector of
   a full search within +-``search`` samples: least SAD + lambda(qp) * (bits of the
   vector against (0, 0)), the first candidate in the order of :func:`candidates`
   winning a tie. The kernel evaluates every (macroblock, candidate) pair in parallel
   and reduces in that order.
2. A macroblock that is not still, and whose search moved, is intra when the best
   Intra16x16 prediction made from its *source* neighbours (:func:`rfb.h264cuda.model.intra.source_cost`) beats
   the search's cost by more than lambda(qp) * :data:`INTRA_PENALTY_BITS`. (In a static
   area intra would re-code the same reconstruction error picture after picture, where
   an inter residual refines it once.) Deciding
   from the source keeps the decision parallel; the intra macroblocks are then coded
   from the reconstruction as a wavefront that visits only them
   (:func:`rfb.h264cuda.model.intra.code_wavefront`), a chain only as long as the
   longest run of adjacent intra macroblocks.
3. The final vector is (0, 0) for a still or intra macroblock, else the searched one;
   the reconstruction of inter macroblocks follows from it alone (a still macroblock
   shows the reference).
4. With every final vector known, the predictors (:mod:`.mvpred`) are a gather. A still
   macroblock whose P_Skip vector (8.4.1.1) is (0, 0) is P_Skip; one whose P_Skip
   vector is not (a neighbour moves) is P_L0_16x16 with vector (0, 0) and no residual,
   which decodes to the same samples.

Motion vectors are whole luma samples (quarter-sample units that are multiples of 4),
so luma prediction is a copy; chroma then lands on whole or half chroma samples and
uses the spec's bilinear filter (8.4.2.2.2). References are edge-extended as 8.4.2.2
clamps coordinates, which lets vectors point past the picture.
"""

from __future__ import annotations

import numpy as np

from rfb.h264cuda.model import intra, mvpred, residual
from rfb.h264cuda.model.bitwriter import se_code_num, ue_length
from rfb.h264cuda.model.picture import P_L0_16X16, P_SKIP, MacroblockArrays, from_mb_view, mb_view
from rfb.h264cuda.model.transform import chroma_qp

# The bias against intra in P pictures, in units of lambda(qp): an intra macroblock's
# residual costs more bits than an inter one's of the same SAD. Tuned on the scene and
# gradient patterns (640x360, QP 26: 8, 16, 32, 48, 64, 96, 128 and none tried; 48 gave
# the fewest bytes on both, 11 % and 4 % fewer than no intra).
INTRA_PENALTY_BITS = 48

# Lagrangian weight of motion vector bits against SAD, by QP: doubles every 6 QP (about 2^((qp - 18) / 6)).
LAMBDA = (
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    2,
    2,
    2,
    2,
    3,
    3,
    3,
    4,
    4,
    4,
    5,
    6,
    6,
    7,
    8,
    9,
    10,
    11,
    13,
    14,
    16,
    18,
    20,
    23,
    25,
    29,
    32,
    36,
)


def candidates(search: int) -> list[tuple[int, int]]:
    """Integer vectors (dx, dy) within +-search, nearest first: (|dx| + |dy|, dy, dx) order."""
    span = range(-search, search + 1)
    return sorted(((dx, dy) for dy in span for dx in span), key=lambda v: (abs(v[0]) + abs(v[1]), v[1], v[0]))


def _mv_bits(dx: int, dy: int) -> int:
    # Bits of mvd_l0 for (dx, dy) whole samples against a zero predictor.
    return ue_length(se_code_num(4 * dx)) + ue_length(se_code_num(4 * dy))


def motion_search(y: np.ndarray, ref: np.ndarray, search: int, qp: int) -> tuple[np.ndarray, np.ndarray]:
    """The chosen vector of every macroblock, (R, C, 2) whole luma samples (x, y), and its cost (R, C)."""
    h, w = y.shape
    padded = np.pad(ref.astype(np.int32), search, mode="edge")
    src = y.astype(np.int32)
    vectors = candidates(search)
    costs = np.empty((len(vectors), h // 16, w // 16), np.int32)
    for k, (dx, dy) in enumerate(vectors):
        shifted = padded[search + dy : search + dy + h, search + dx : search + dx + w]
        sad = mb_view(np.abs(src - shifted), 16).sum(axis=(-2, -1), dtype=np.int32)
        costs[k] = sad + LAMBDA[qp] * _mv_bits(dx, dy)
    best = np.argmin(costs, axis=0)  # first minimum: the candidate order breaks ties
    return np.asarray(vectors, np.int32)[best], np.take_along_axis(costs, best[None], axis=0)[0]


def predict_luma(ref: np.ndarray, mv: np.ndarray) -> np.ndarray:
    """(R, C, 16, 16) predictions at whole-sample vectors ``mv`` (R, C, 2), edges clamped."""
    rows, cols = mv.shape[:2]
    h, w = ref.shape
    ys = np.arange(rows)[:, None, None, None] * 16 + mv[:, :, 1, None, None] + np.arange(16)[:, None]
    xs = np.arange(cols)[None, :, None, None] * 16 + mv[:, :, 0, None, None] + np.arange(16)
    pred: np.ndarray = ref[np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)].astype(np.int32)
    return pred


def predict_chroma(ref: np.ndarray, mv: np.ndarray) -> np.ndarray:
    """(R, C, 2, 8, 8) chroma predictions (8-266) for whole-luma-sample vectors ``mv``.

    The chroma vector is the luma one in eighth chroma samples (4 dx): integer part
    dx >> 1, fraction 4 (dx & 1) eighths.
    """
    rows, cols = mv.shape[:2]
    h, w = ref.shape[-2:]
    mvc = 4 * mv  # eighth chroma samples
    y0 = np.arange(rows)[:, None, None, None] * 8 + (mvc[:, :, 1] >> 3)[..., None, None] + np.arange(8)[:, None]
    x0 = np.arange(cols)[None, :, None, None] * 8 + (mvc[:, :, 0] >> 3)[..., None, None] + np.arange(8)
    yf = (mvc[:, :, 1] & 7)[:, :, None, None, None]
    xf = (mvc[:, :, 0] & 7)[:, :, None, None, None]

    def at(dy: int, dx: int) -> np.ndarray:
        s = ref[:, np.clip(y0 + dy, 0, h - 1), np.clip(x0 + dx, 0, w - 1)].astype(np.int32)  # (2, R, C, 8, 8)
        return s.transpose(1, 2, 0, 3, 4)

    a, b, c, d = at(0, 0), at(0, 1), at(1, 0), at(1, 1)
    pred: np.ndarray = ((8 - xf) * (8 - yf) * a + xf * (8 - yf) * b + (8 - xf) * yf * c + xf * yf * d + 32) >> 6
    return pred


def code_p_picture(
    y: np.ndarray, c: np.ndarray, ref_y: np.ndarray, ref_c: np.ndarray, qp: int, search: int
) -> tuple[MacroblockArrays, np.ndarray, np.ndarray]:
    """Code a P picture against the reconstruction (``ref_y``, ``ref_c``) of the previous one.

    Shapes as :func:`rfb.h264cuda.model.intra.code_i_picture`; returns the macroblocks
    and the reconstruction.
    """
    rows, cols = y.shape[0] // 16, y.shape[1] // 16
    qpc = chroma_qp(qp)
    src_y = mb_view(y.astype(np.int32), 16)
    src_c = mb_view(c.astype(np.int32), 8).transpose(1, 2, 0, 3, 4)

    zero = np.zeros((rows, cols, 2), np.int32)
    pred_y0, pred_c0 = predict_luma(ref_y, zero), predict_chroma(ref_c, zero)
    luma0 = residual.code_luma_inter(src_y - pred_y0, qp)
    chroma0 = residual.code_chroma(src_c - pred_c0, qpc, intra=False)
    still = ~np.any(luma0.levels != 0, axis=(-2, -1)) & (chroma0.cbp == 0)

    mv, cost = motion_search(y, ref_y, search, qp)
    pred_y, pred_c = predict_luma(ref_y, mv), predict_chroma(ref_c, mv)
    luma = residual.code_luma_inter(src_y - pred_y, qp)
    chroma = residual.code_chroma(src_c - pred_c, qpc, intra=False)
    moved = mv.any(axis=-1)  # an unmoved macroblock that is not still is refined, not re-coded intra
    is_intra = ~still & moved & (intra.source_cost(src_y) + LAMBDA[qp] * INTRA_PENALTY_BITS < cost)

    final = np.where((still | is_intra)[..., None], 0, 4 * mv)  # quarter samples
    mvp, skip_mv = mvpred.predictors(final, ~is_intra)
    skip = still & ~skip_mv.any(axis=-1)

    mbs = MacroblockArrays.empty(rows, cols)
    coded = ~still & ~is_intra
    mbs.kind[:] = np.where(skip, P_SKIP, P_L0_16X16)
    mbs.mv[:] = final
    mbs.mvp[:] = mvp
    mbs.luma[coded] = luma.levels[coded]
    mbs.chroma_dc[coded] = chroma.dc[coded]
    mbs.chroma_ac[coded] = chroma.ac[coded]
    nonzero_8x8 = np.any(luma.levels.reshape(rows, cols, 4, 64) != 0, axis=-1)  # blkIdx 4k..4k+3 form 8x8 k
    mbs.cbp_luma[coded] = (nonzero_8x8 * (1 << np.arange(4))).sum(axis=-1)[coded]
    mbs.cbp_chroma[coded] = chroma.cbp[coded]

    rec_y = np.where(still[..., None, None], pred_y0, np.clip(pred_y + luma.residual, 0, 255))
    rec_c = np.where(still[..., None, None, None], pred_c0, np.clip(pred_c + chroma.residual, 0, 255))
    intra.code_wavefront(src_y, src_c, rec_y, rec_c, is_intra, qp, mbs)
    recon_c = from_mb_view(rec_c.transpose(2, 0, 1, 3, 4))
    return mbs, from_mb_view(rec_y).astype(np.uint8), recon_c.astype(np.uint8)
