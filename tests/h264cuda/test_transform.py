"""Transforms and quantiser of the golden model, against the spec's equations."""

from __future__ import annotations

import numpy as np
import pytest

from rfb.h264cuda.model import residual
from rfb.h264cuda.model import transform as tf


def spec_inverse(d: np.ndarray) -> np.ndarray:
    # 8.5.12.2 written out element by element: rows first, then columns.
    f = np.zeros((4, 4), np.int64)
    for i in range(4):
        e0, e1 = d[i, 0] + d[i, 2], d[i, 0] - d[i, 2]
        e2, e3 = (d[i, 1] >> 1) - d[i, 3], d[i, 1] + (d[i, 3] >> 1)
        f[i] = [e0 + e3, e1 + e2, e1 - e2, e0 - e3]
    h = np.zeros((4, 4), np.int64)
    for j in range(4):
        g0, g1 = f[0, j] + f[2, j], f[0, j] - f[2, j]
        g2, g3 = (f[1, j] >> 1) - f[3, j], f[1, j] + (f[3, j] >> 1)
        h[:, j] = [g0 + g3, g1 + g2, g1 - g2, g0 - g3]
    return (h + 32) >> 6


def test_inverse_transform_is_the_spec_equations() -> None:
    rng = np.random.default_rng(3)
    d = rng.integers(-3000, 3000, (64, 4, 4))
    got = tf.inverse4x4(d)
    for k in range(64):
        assert np.array_equal(got[k], spec_inverse(d[k]))


def test_forward_transform_is_cf_x_cf_transposed() -> None:
    cf = np.array([[1, 1, 1, 1], [2, 1, -1, -2], [1, -1, -1, 1], [1, -2, 2, -1]])
    x = np.random.default_rng(4).integers(-255, 256, (32, 4, 4))
    assert np.array_equal(tf.forward4x4(x), cf @ x @ cf.T)


def test_hadamards_are_their_own_inverse_up_to_scale() -> None:
    x = np.random.default_rng(5).integers(-2000, 2000, (16, 4, 4))
    assert np.array_equal(tf.hadamard4(tf.hadamard4(x)), 16 * x)
    y = np.random.default_rng(6).integers(-2000, 2000, (16, 2, 2))
    assert np.array_equal(tf.hadamard2(tf.hadamard2(y)), 4 * y)


@pytest.mark.parametrize("qp", range(52))
def test_dequantise_equals_the_spec_branches_at_every_qp(qp: int) -> None:
    # 8-336 / 8-337 with LevelScale4x4 = 16 * v (flat weight scale).
    c = np.random.default_rng(qp).integers(-200, 200, (8, 4, 4))
    scale = 16 * tf.V[qp % 6]
    if qp >= 24:
        expected = (c * scale) << (qp // 6 - 4)
    else:
        expected = (c * scale + (1 << (3 - qp // 6))) >> (4 - qp // 6)
    assert np.array_equal(tf.dequantise(c, qp), expected)


def test_chroma_qp_follows_table_8_15() -> None:
    assert [tf.chroma_qp(q) for q in (0, 29, 30, 34, 39, 43, 51)] == [0, 29, 29, 32, 35, 37, 39]


@pytest.mark.parametrize("qp", [10, 20, 28, 36, 44])
def test_coding_then_decoding_stays_within_a_quantiser_step(qp: int) -> None:
    rng = np.random.default_rng(qp)
    luma = rng.integers(-60, 60, (6, 16, 16))
    chroma = rng.integers(-60, 60, (6, 2, 8, 8))
    step = 0.625 * 2 ** (qp / 6)  # Qstep of the spec's table, for a loose bound only
    for rebuilt in (residual.code_luma_intra16(luma, qp).residual, residual.code_luma_inter(luma, qp).residual):
        assert np.abs(rebuilt - luma).mean() < step
    assert np.abs(residual.code_chroma(chroma, qp, True).residual - chroma).mean() < step


def test_low_qp_reconstructs_almost_exactly() -> None:
    x = np.random.default_rng(9).integers(-100, 100, (4, 16, 16))
    error = np.abs(residual.code_luma_inter(x, 10).residual - x)
    assert error.max() <= 3 and error.mean() < 1  # Qstep is 2 at QP 10


def test_block_split_and_join_follow_luma4x4blkidx() -> None:
    mb = np.arange(256).reshape(16, 16)
    blocks = residual.split_luma(mb)
    assert blocks[2, 0, 0] == mb[4, 0]  # luma4x4BlkIdx 2 is the second row of the first 8x8
    assert blocks[4, 0, 0] == mb[0, 8]  # 4 starts the second 8x8
    assert np.array_equal(residual.join_luma(blocks), mb)
    assert np.array_equal(residual.unscan(residual.scan(blocks)), blocks)
    assert list(residual.scan(np.arange(16).reshape(4, 4))) == [0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15]


def test_levels_are_clamped_to_what_cavlc_codes() -> None:
    assert tf.quantise_dc(np.full((4, 4), 32640), 0, intra=True).max() == tf.LEVEL_MAX
