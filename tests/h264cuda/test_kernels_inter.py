"""The P picture kernels on the CPU (inter.cu, mvpred.cu), against the golden model, exactly.

Consecutive pictures with motion come from the model tests' patterns (each pattern
moves from picture to picture) and from the mvpred tests' field of macroblocks each
moving by its own offset; the reference is the model's own reconstruction of the
picture before, as in a stream.
"""

from __future__ import annotations

import numpy as np
import pytest

from rfb.h264cuda import inter, mvpred
from rfb.h264cuda.model import inter as model_inter
from rfb.h264cuda.model import mvpred as model_mvpred
from tests.support.kernels_cpu import CpuLauncher

from .streams import nv12_pictures

CPU = CpuLauncher()


def _planes(nv12: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    # Padded luma and (2, H/2, W/2) chroma, as ModelEncoder.encode hands them to the coder.
    from rfb.h264cuda.model.encoder import _pad

    rows, cols = -(-height // 16) * 16, -(-width // 16) * 16
    y, uv = nv12[:height], nv12[height:]
    c = np.stack([_pad(uv[:, 0::2], rows // 2, cols // 2), _pad(uv[:, 1::2], rows // 2, cols // 2)])
    return _pad(y, rows, cols), c


def moving_pair(pattern: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A pattern's second picture (y, c) and the first one's (ref_y, ref_c)."""
    first, second = nv12_pictures(pattern, width, height, 2)
    ref_y, ref_c = _planes(first, width, height)
    y, c = _planes(second, width, height)
    return y, c, ref_y, ref_c


def motion_field(width: int, height: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(picture, reference) luma: each macroblock the reference's at its own offset, or unchanged."""
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 256, (height, width), dtype=np.uint8)
    padded = np.pad(ref, 8, mode="edge")
    y = ref.copy()
    offsets = rng.integers(-5, 6, (height // 16, width // 16, 2))
    offsets[rng.random((height // 16, width // 16)) < 0.3] = 0
    for r in range(height // 16):
        for c in range(width // 16):
            dx, dy = offsets[r, c]
            y[16 * r : 16 * r + 16, 16 * c : 16 * c + 16] = padded[8 + 16 * r + dy :, 8 + 16 * c + dx :][:16, :16]
    return y, ref


# -- predictors ---------------------------------------------------------------------


@pytest.mark.parametrize("intra_share", [0.0, 0.3, 1.0])
@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (1, 5), (4, 1), (5, 7), (9, 11)])
def test_predictors_equal_the_model(rows: int, cols: int, intra_share: float) -> None:
    rng = np.random.default_rng(rows * 10 + cols)
    mv = (rng.integers(-6, 7, (rows, cols, 2)) * 4).astype(np.int32)
    mv[rng.random((rows, cols)) < 0.3] = 0  # zero vectors switch the P_Skip rule
    is_inter = rng.random((rows, cols)) >= intra_share
    got_mvp, got_skip = mvpred.predictors(CPU, mv, is_inter)
    want_mvp, want_skip = model_mvpred.predictors(mv, is_inter)
    np.testing.assert_array_equal(got_mvp, want_mvp)
    np.testing.assert_array_equal(got_skip, want_skip)
    assert got_mvp.dtype == np.int32 and got_skip.dtype == np.int32


def test_predictors_default_to_every_macroblock_inter() -> None:
    mv = (np.random.default_rng(3).integers(-9, 10, (4, 6, 2)) * 4).astype(np.int32)
    got = mvpred.predictors(CPU, mv)
    want = model_mvpred.predictors(mv)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_predictors_refuse_a_mask_of_another_shape() -> None:
    with pytest.raises(ValueError, match=r"expected an inter mask shaped \(2, 3\), got \(3, 2\)"):
        mvpred.predictors(CPU, np.zeros((2, 3, 2), np.int32), np.ones((3, 2), bool))


# -- motion search ------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "width", "height"), [("scene", 64, 48), ("gradient", 70, 38)])
@pytest.mark.parametrize("qp", [18, 40])
def test_motion_search_equals_the_model_on_moving_patterns(pattern: str, width: int, height: int, qp: int) -> None:
    y, _, ref_y, _ = moving_pair(pattern, width, height)
    got_mv, got_cost = inter.motion_search(CPU, y, ref_y, 8, qp)
    want_mv, want_cost = model_inter.motion_search(y, ref_y, 8, qp)
    np.testing.assert_array_equal(got_mv, want_mv)
    np.testing.assert_array_equal(got_cost, want_cost)


@pytest.mark.parametrize(("search", "qp"), [(0, 26), (2, 51), (5, 26), (8, 18)])
def test_motion_search_equals_the_model_on_a_field_of_motions(search: int, qp: int) -> None:
    y, ref = motion_field(96, 64, seed=search)
    got_mv, got_cost = inter.motion_search(CPU, y, ref, search, qp)
    want_mv, want_cost = model_inter.motion_search(y, ref, search, qp)
    np.testing.assert_array_equal(got_mv, want_mv)
    np.testing.assert_array_equal(got_cost, want_cost)
    if search >= 5:
        assert len({tuple(v) for v in want_mv.reshape(-1, 2)}) > 5  # the field does move


def test_motion_search_ties_go_to_the_first_candidate_in_the_model_order() -> None:
    # Binary noise at lambda 1: many candidates of a macroblock share the least cost,
    # so the order alone decides (the test checks that such ties occur).
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, (64, 96), dtype=np.uint8)
    ref = rng.integers(0, 2, (64, 96), dtype=np.uint8)
    search, qp = 4, 0
    got_mv, got_cost = inter.motion_search(CPU, y, ref, search, qp)
    want_mv, want_cost = model_inter.motion_search(y, ref, search, qp)
    np.testing.assert_array_equal(got_mv, want_mv)
    np.testing.assert_array_equal(got_cost, want_cost)
    padded = np.pad(ref.astype(np.int32), search, mode="edge")
    tied = np.zeros(want_cost.shape, np.int32)
    for dx, dy in model_inter.candidates(search):
        shifted = padded[search + dy : search + dy + 64, search + dx : search + dx + 96]
        sad = np.abs(y.astype(np.int32) - shifted).reshape(4, 16, 6, 16).sum(axis=(1, 3))
        tied += sad + model_inter.LAMBDA[qp] * model_inter._mv_bits(dx, dy) == want_cost
    assert (tied > 1).sum() >= 3


def test_motion_search_ties_at_one_distance_go_by_dy_then_dx() -> None:
    # The reference holds the outline of the middle macroblock over a black picture: the
    # four diagonal neighbours (+-1, +-1) tie at the least cost, and (-1, -1) comes first.
    y = np.zeros((48, 48), np.uint8)
    ref = np.zeros((48, 48), np.uint8)
    ref[16, 16:32] = ref[31, 16:32] = ref[16:32, 16] = ref[16:32, 31] = 1
    got_mv, got_cost = inter.motion_search(CPU, y, ref, 2, 0)
    want_mv, want_cost = model_inter.motion_search(y, ref, 2, 0)
    assert tuple(want_mv[1, 1]) == (-1, -1)
    np.testing.assert_array_equal(got_mv, want_mv)
    np.testing.assert_array_equal(got_cost, want_cost)
