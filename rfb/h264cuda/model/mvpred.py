"""Motion vector prediction (8.4.1.3) and the P_Skip vector (8.4.1.1), for a whole picture.

P pictures are one slice; their inter macroblocks are 16x16 with reference index 0
(P_Skip or P_L0_16x16), the others Intra16x16. Once every macroblock's kind and final
vector are known (:mod:`.inter`), each macroblock's predictor is a gather of three
neighbours' vectors and a median: no sequential dependency, one thread per
macroblock. Neighbours: A left, B above, C above right, or D above left where C is
outside the picture; outside the picture they are "not available". An intra
neighbour is available but has no vector (refIdx -1, vector 0), which is not the
same: availability alone decides the substitutions below.
"""

from __future__ import annotations

import numpy as np


def _shifted(mv: np.ndarray, inter: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # The neighbour at (row + dy, col + dx) of every macroblock: its vector (0 unless
    # an inter macroblock), whether it exists, and whether its refIdx is 0 (inter).
    rows, cols = mv.shape[:2]
    out = np.zeros_like(mv)
    ok = np.zeros((rows, cols), bool)
    ref0 = np.zeros((rows, cols), bool)
    r0, r1 = max(0, -dy), rows - max(0, dy)
    c0, c1 = max(0, -dx), cols - max(0, dx)
    src_inter = inter[r0 + dy : r1 + dy, c0 + dx : c1 + dx]
    out[r0:r1, c0:c1] = np.where(src_inter[..., None], mv[r0 + dy : r1 + dy, c0 + dx : c1 + dx], 0)
    ok[r0:r1, c0:c1] = True
    ref0[r0:r1, c0:c1] = src_inter
    return out, ok, ref0


def predictors(mv: np.ndarray, inter: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mvp, skip vector) of every macroblock, (R, C, 2) each, from the final vectors ``mv``
    and which macroblocks are inter (``inter``, (R, C); all of them when None).

    mvp (8.4.1.3): a neighbour that is unavailable or intra counts as refIdx -1 and
    vector 0; where B and C are both unavailable and A is available, B and C take A's
    (8.4.1.3.1). Then if exactly one of A, B, C has refIdx 0 its vector is the
    predictor, else the component-wise median.

    P_Skip (8.4.1.1): (0, 0) where A or B is unavailable, or is inter with a zero
    vector; else mvp.
    """
    inter = np.ones(mv.shape[:2], bool) if inter is None else inter
    mv_a, has_a, ref_a = _shifted(mv, inter, 0, -1)
    mv_b, has_b, ref_b = _shifted(mv, inter, -1, 0)
    mv_c, has_c, ref_c = _shifted(mv, inter, -1, 1)
    mv_d, has_d, ref_d = _shifted(mv, inter, -1, -1)
    zero_skip = ~has_a | ~has_b | (ref_a & ~mv_a.any(axis=-1)) | (ref_b & ~mv_b.any(axis=-1))
    mv_c = np.where(has_c[..., None], mv_c, mv_d)
    ref_c = np.where(has_c, ref_c, ref_d)
    has_c = has_c | has_d
    copy_a = ~has_b & ~has_c & has_a
    mv_b = np.where(copy_a[..., None], mv_a, mv_b)
    mv_c = np.where(copy_a[..., None], mv_a, mv_c)
    ref_b = np.where(copy_a, ref_a, ref_b)
    ref_c = np.where(copy_a, ref_a, ref_c)
    three = np.stack([mv_a, mv_b, mv_c])
    median = three.sum(axis=0) - three.min(axis=0) - three.max(axis=0)
    only = (ref_a.astype(int) + ref_b + ref_c) == 1
    single = np.where(ref_a[..., None], mv_a, np.where(ref_b[..., None], mv_b, mv_c))
    mvp = np.where(only[..., None], single, median)
    skip = np.where(zero_skip[..., None], 0, mvp)
    return mvp, skip
