"""Motion vector prediction (8.4.1.3) and the P_Skip vector (8.4.1.1), for a whole picture.

P pictures are one slice, and every macroblock is a 16x16 inter macroblock with
reference index 0 (P_Skip or P_L0_16x16). Once every macroblock's final vector is
known (decided in parallel, :mod:`.inter`), each macroblock's predictor is a gather
of three neighbours' vectors and a median: no sequential dependency, one thread per
macroblock. Neighbours: A left, B above, C above right, or D above left where C is
outside the picture; outside the picture they are "not available".
"""

from __future__ import annotations

import numpy as np


def _shifted(mv: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    # The neighbour at (row + dy, col + dx) of every macroblock, and whether it exists.
    rows, cols = mv.shape[:2]
    out = np.zeros_like(mv)
    ok = np.zeros((rows, cols), bool)
    r0, r1 = max(0, -dy), rows - max(0, dy)
    c0, c1 = max(0, -dx), cols - max(0, dx)
    out[r0:r1, c0:c1] = mv[r0 + dy : r1 + dy, c0 + dx : c1 + dx]
    ok[r0:r1, c0:c1] = True
    return out, ok


def predictors(mv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mvp, skip vector) of every macroblock, (R, C, 2) each, from the final vectors ``mv``.

    mvp (8.4.1.3): an unavailable neighbour counts as refIdx -1 and vector 0; where B
    and C are both unavailable and A is available, B and C take A's (8.4.1.3.1). Then if
    exactly one of A, B, C has refIdx 0 its vector is the predictor, else the
    component-wise median.

    P_Skip (8.4.1.1): (0, 0) where A or B is unavailable or either has a zero vector,
    else mvp.
    """
    mv_a, has_a = _shifted(mv, 0, -1)
    mv_b, has_b = _shifted(mv, -1, 0)
    mv_c, has_c = _shifted(mv, -1, 1)
    mv_d, has_d = _shifted(mv, -1, -1)
    zero_skip = ~has_a | ~has_b | ~mv_a.any(axis=-1) | ~mv_b.any(axis=-1)
    mv_c = np.where(has_c[..., None], mv_c, mv_d)
    has_c = has_c | has_d
    copy_a = ~has_b & ~has_c & has_a
    mv_b = np.where(copy_a[..., None], mv_a, mv_b)
    mv_c = np.where(copy_a[..., None], mv_a, mv_c)
    has_b = has_b | copy_a
    has_c = has_c | copy_a
    three = np.stack([mv_a, mv_b, mv_c])
    median = three.sum(axis=0) - three.min(axis=0) - three.max(axis=0)
    only = (has_a.astype(int) + has_b + has_c) == 1
    single = np.where(has_a[..., None], mv_a, np.where(has_b[..., None], mv_b, mv_c))
    mvp = np.where(only[..., None], single, median)
    skip = np.where(zero_skip[..., None], 0, mvp)
    return mvp, skip
