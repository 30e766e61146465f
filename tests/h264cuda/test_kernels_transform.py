"""kernels/transform.h against the model's transform and scan, on random blocks (CPU build)."""

from __future__ import annotations

import numpy as np
import pytest

from rfb.h264cuda.kernels import blocks
from rfb.h264cuda.model import residual
from rfb.h264cuda.model import transform as tf
from tests.support import kernels_cpu

# Operation codes of transform_check (kernels/transform_check.cu), in its order.
(
    FORWARD,
    INVERSE,
    HADAMARD4,
    HADAMARD2,
    QUANTISE,
    QUANTISE_DC,
    DEQUANTISE,
    DEQUANTISE_LUMA_DC,
    DEQUANTISE_CHROMA_DC,
    SCAN,
    UNSCAN,
    CHROMA_QP,
) = range(12)

QPS = range(52)


def run(op: int, data: np.ndarray, qp: int = 0, intra: bool = False) -> np.ndarray:
    """Blocks (n, 16) int32 through transform_check operation ``op``."""
    data = np.ascontiguousarray(data, np.int32).reshape(-1, 16)
    out = np.full_like(data, -12345)
    kernels_cpu.launch("transform_check", blocks(len(data), 64), (64, 1, 1), op, data, out, len(data), qp, int(intra))
    return out


def rand(rng: np.random.Generator, bound: int, n: int = 200) -> np.ndarray:
    x = rng.integers(-bound, bound + 1, (n, 4, 4), np.int32)
    x[0] = bound  # the extremes, as well as random blocks
    x[1] = -bound
    return x


def test_forward_and_inverse_transforms():
    rng = np.random.default_rng(1)
    x = rand(rng, 255)
    np.testing.assert_array_equal(run(FORWARD, x).reshape(-1, 4, 4), tf.forward4x4(x))
    d = rand(rng, 1 << 20)
    np.testing.assert_array_equal(run(INVERSE, d).reshape(-1, 4, 4), tf.inverse4x4(d))
    d = rand(rng, 3000)  # small values, where the shifts' rounding shows
    np.testing.assert_array_equal(run(INVERSE, d).reshape(-1, 4, 4), tf.inverse4x4(d))


def test_hadamards():
    rng = np.random.default_rng(2)
    x = rand(rng, 1 << 16)
    np.testing.assert_array_equal(run(HADAMARD4, x).reshape(-1, 4, 4), tf.hadamard4(x))
    got = run(HADAMARD2, x)[:, :4].reshape(-1, 2, 2)
    np.testing.assert_array_equal(got, tf.hadamard2(x.reshape(-1, 16)[:, :4].reshape(-1, 2, 2)))


@pytest.mark.parametrize("intra", [True, False])
def test_quantise_every_qp(intra: bool):
    rng = np.random.default_rng(3)
    ac, dc = rand(rng, 9180), rand(rng, 32640)
    for qp in QPS:
        np.testing.assert_array_equal(run(QUANTISE, ac, qp, intra).reshape(-1, 4, 4), tf.quantise(ac, qp, intra))
        np.testing.assert_array_equal(run(QUANTISE_DC, dc, qp, intra).reshape(-1, 4, 4), tf.quantise_dc(dc, qp, intra))


def test_dequantise_every_qp():
    rng = np.random.default_rng(4)
    levels = rand(rng, tf.LEVEL_MAX)
    small = rand(rng, 3)  # where the DC paths' rounding shows
    for qp in QPS:
        for lv in (levels, small):
            np.testing.assert_array_equal(run(DEQUANTISE, lv, qp).reshape(-1, 4, 4), tf.dequantise(lv, qp))
            np.testing.assert_array_equal(
                run(DEQUANTISE_LUMA_DC, lv, qp).reshape(-1, 4, 4), tf.dequantise_luma_dc(lv, qp)
            )
    for qpc in range(40):
        for lv in (levels, small):
            two = lv.reshape(-1, 16)[:, :4].reshape(-1, 2, 2)
            got = run(DEQUANTISE_CHROMA_DC, lv, qpc)[:, :4].reshape(-1, 2, 2)
            np.testing.assert_array_equal(got, tf.dequantise_chroma_dc(two, qpc))


def test_scan_and_unscan():
    rng = np.random.default_rng(5)
    x = rand(rng, 1000)
    np.testing.assert_array_equal(run(SCAN, x), residual.scan(x))
    z = x.reshape(-1, 16)
    np.testing.assert_array_equal(run(UNSCAN, z).reshape(-1, 4, 4), residual.unscan(z))


def test_chroma_qp():
    pairs = np.array([(qp, offset) for qp in range(52) for offset in range(-12, 13)], np.int32)
    data = np.zeros((len(pairs), 16), np.int32)
    data[:, :2] = pairs
    got = run(CHROMA_QP, data)[:, 0]
    np.testing.assert_array_equal(got, [tf.chroma_qp(int(q), int(o)) for q, o in pairs])
