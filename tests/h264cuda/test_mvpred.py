"""Motion vector and P_Skip prediction of the golden model against 8.4.1, macroblock by macroblock."""

from __future__ import annotations

import numpy as np
import pytest

from rfb.h264cuda.model.mvpred import predictors
from rfb.h264cuda.model.picture import P_L0_16X16, P_SKIP

from .streams import assert_decodes_to_reconstruction, encode


def spec_predictors(mv: np.ndarray, inter: np.ndarray, r: int, c: int) -> tuple[tuple[int, int], tuple[int, int]]:
    # 8.4.1.3 and 8.4.1.1 for a 16x16 inter macroblock with refIdx 0; a neighbour is
    # None when not available, (-1, (0, 0)) when intra.
    rows, cols = mv.shape[:2]

    def neighbour(rr: int, cc: int) -> tuple[int, tuple[int, int]] | None:
        if not (0 <= rr < rows and 0 <= cc < cols):
            return None
        return (0, tuple(mv[rr, cc])) if inter[rr, cc] else (-1, (0, 0))

    a, b = neighbour(r, c - 1), neighbour(r - 1, c)
    cn = neighbour(r - 1, c + 1) or neighbour(r - 1, c - 1)
    skip_zero = a is None or b is None or a == (0, (0, 0)) or b == (0, (0, 0))
    if b is None and cn is None and a is not None:
        b = cn = a
    refs = [n[0] if n else -1 for n in (a, b, cn)]
    mvs = [n[1] if n else (0, 0) for n in (a, b, cn)]
    if refs.count(0) == 1:
        mvp = mvs[refs.index(0)]
    else:
        mvp = tuple(sorted(v[k] for v in mvs)[1] for k in range(2))
    return mvp, ((0, 0) if skip_zero else mvp)


@pytest.mark.parametrize("intra_share", [0.0, 0.3])
@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (1, 5), (4, 1), (5, 7), (9, 11)])
def test_predictors_match_the_spec_at_every_position(rows: int, cols: int, intra_share: float) -> None:
    rng = np.random.default_rng(rows * 10 + cols)
    mv = rng.integers(-6, 7, (rows, cols, 2)) * 4
    mv[rng.random((rows, cols)) < 0.3] = 0  # zero vectors switch the P_Skip rule
    inter = rng.random((rows, cols)) >= intra_share
    mvp, skip = predictors(mv, inter)
    for r in range(rows):
        for c in range(cols):
            expected_mvp, expected_skip = spec_predictors(mv, inter, r, c)
            assert tuple(mvp[r, c]) == expected_mvp, (r, c)
            assert tuple(skip[r, c]) == expected_skip, (r, c)


def test_a_field_of_different_motions_decodes_exactly() -> None:
    # Each macroblock of the second picture is the first one's samples at its own offset,
    # or unchanged: varied predictors, P_Skip next to moving neighbours.
    rng = np.random.default_rng(11)
    h, w = 96, 128
    y0 = rng.integers(0, 256, (h, w), dtype=np.uint8)
    padded = np.pad(y0, 8, mode="edge")
    y1 = y0.copy()
    offsets = rng.integers(-4, 5, (h // 16, w // 16, 2))
    offsets[rng.random((h // 16, w // 16)) < 0.4] = 0
    for r in range(h // 16):
        for c in range(w // 16):
            dx, dy = offsets[r, c]
            y0_, x0_ = 8 + 16 * r + dy, 8 + 16 * c + dx
            y1[16 * r : 16 * r + 16, 16 * c : 16 * c + 16] = padded[y0_ : y0_ + 16, x0_ : x0_ + 16]
    uv = np.full((h // 2, w), 128, np.uint8)
    stream = encode([np.vstack([y0, uv]), np.vstack([y1, uv])], w, h, qp=30)
    assert_decodes_to_reconstruction(stream)
    mbs = stream.infos[1].macroblocks
    assert len({tuple(v) for v in mbs.mv.reshape(-1, 2)}) > 10
    assert (mbs.kind == P_SKIP).any()
    still_but_coded = (mbs.kind == P_L0_16X16) & ~mbs.mv.any(axis=-1) & (mbs.cbp_luma == 0) & (mbs.cbp_chroma == 0)
    assert still_but_coded.any()  # a neighbour's motion gives a nonzero P_Skip vector: coded with (0, 0)
