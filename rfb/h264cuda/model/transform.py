"""The 4x4 integer transforms and the scalar quantiser of H.264 (8.5.6, 8.5.10-8.5.12).

Every function works on whole arrays: the last two axes are one 4x4 (or 2x2) block,
all leading axes are blocks processed alike, as one CUDA thread (or a 4-lane group)
per block would. Arithmetic is int32 throughout, with the bounds stated where a
product gets large, so that the kernels can use the same types.

The decoder side (dequantisation, inverse transform) is normative: the encoder's
reconstruction must equal the decoder's picture bit for bit, so these follow the
spec's equations literally (flat scaling lists, ``weightScale4x4 = 16``). The
encoder side (forward transform scaling, rounding offsets of the quantiser) is ours
to choose; it is the usual one (deadzone 1/3 intra, 1/6 inter).
"""

from __future__ import annotations

import numpy as np

# Zigzag scan of a 4x4 frame block (8.5.6, Table 8-13): scan index -> raster index y*4 + x.
ZIGZAG = np.array([0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15])

# The order of the sixteen 4x4 luma blocks in a macroblock (6.4.3): luma4x4BlkIdx ->
# block column and row, in 4-sample units. Two levels of Z order (8x8, then 4x4).
BLK_X = np.array([0, 1, 0, 1, 2, 3, 2, 3, 0, 1, 0, 1, 2, 3, 2, 3])
BLK_Y = np.array([0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3])
BLK_RASTER = BLK_Y * 4 + BLK_X

# Largest |level| that Baseline CAVLC can code (level_prefix <= 15, 9.2.2.1).
LEVEL_MAX = 2063

# Quantiser multipliers MF (encoder's choice, the usual ones) and the spec's dequant
# factors v (8.5.9, normAdjust4x4), by qP % 6, for the three position classes:
# (even row, even column), (odd, odd), and the rest.
_MF = np.array(
    [
        [13107, 5243, 8066],
        [11916, 4660, 7490],
        [10082, 4194, 6554],
        [9362, 3647, 5825],
        [8192, 3355, 5243],
        [7282, 2893, 4559],
    ],
    dtype=np.int32,
)
_V = np.array([[10, 16, 13], [11, 18, 14], [13, 20, 16], [14, 23, 18], [16, 25, 20], [18, 29, 23]], dtype=np.int32)
_CLASS = np.array([[0, 2, 0, 2], [2, 1, 2, 1], [0, 2, 0, 2], [2, 1, 2, 1]])
MF = _MF[:, _CLASS]  # (6, 4, 4)
V = _V[:, _CLASS]  # (6, 4, 4)

# QPc as a function of qPI (Table 8-15); below 30 they are equal.
_QPC_HIGH = (29, 30, 31, 32, 32, 33, 34, 34, 35, 35, 36, 36, 37, 37, 37, 38, 38, 38, 39, 39, 39, 39)


def chroma_qp(qp: int, offset: int = 0) -> int:
    """QP'c for luma ``qp`` and ``chroma_qp_index_offset`` (8.5.8, 8-bit video)."""
    qpi = min(max(qp + offset, 0), 51)
    return qpi if qpi < 30 else _QPC_HIGH[qpi - 30]


def _along(x: np.ndarray, axis: int) -> tuple[np.ndarray, ...]:
    return tuple(np.take(x, i, axis=axis) for i in range(x.shape[axis]))


def _core_1d(x: np.ndarray, axis: int) -> np.ndarray:
    # Forward core transform of 8.5.6's inverse, rows [1 1 1 1], [2 1 -1 -2], [1 -1 -1 1], [1 -2 2 -1].
    x0, x1, x2, x3 = _along(x, axis)
    s03, d03, s12, d12 = x0 + x3, x0 - x3, x1 + x2, x1 - x2
    return np.stack([s03 + s12, 2 * d03 + d12, s03 - s12, d03 - 2 * d12], axis=axis)


def forward4x4(block: np.ndarray) -> np.ndarray:
    """W = Cf X Cf^T of each 4x4 residual block (|X| <= 255 gives |W| <= 9,180)."""
    x = block.astype(np.int32)
    return _core_1d(_core_1d(x, -1), -2)


def _inverse_1d(d: np.ndarray, axis: int) -> np.ndarray:
    # 8.5.12.2, equations 8-338..8-345 (one dimension).
    d0, d1, d2, d3 = _along(d, axis)
    e0, e1, e2, e3 = d0 + d2, d0 - d2, (d1 >> 1) - d3, d1 + (d3 >> 1)
    return np.stack([e0 + e3, e1 + e2, e1 - e2, e0 - e3], axis=axis)


def inverse4x4(coef: np.ndarray) -> np.ndarray:
    """The residual r of 8.5.12.2: rows (horizontal) first, then columns, then (x + 32) >> 6."""
    h = _inverse_1d(_inverse_1d(coef.astype(np.int32), -1), -2)
    return (h + 32) >> 6


def _hadamard_1d(x: np.ndarray, axis: int) -> np.ndarray:
    x0, x1, x2, x3 = _along(x, axis)
    s01, s23, d01, d23 = x0 + x1, x2 + x3, x0 - x1, x2 - x3
    return np.stack([s01 + s23, s01 - s23, d01 - d23, d01 + d23], axis=axis)


def hadamard4(block: np.ndarray) -> np.ndarray:
    """A c A with A = [[1 1 1 1], [1 1 -1 -1], [1 -1 -1 1], [1 -1 1 -1]] (8.5.10, 8-320)."""
    return _hadamard_1d(_hadamard_1d(block.astype(np.int32), -1), -2)


def hadamard2(block: np.ndarray) -> np.ndarray:
    """[[1 1], [1 -1]] c [[1 1], [1 -1]] of each 2x2 block (8.5.11.1, 4:2:0 chroma DC)."""
    c = block.astype(np.int32)
    a, b, c_, d = c[..., 0, 0], c[..., 0, 1], c[..., 1, 0], c[..., 1, 1]
    return np.stack(
        [np.stack([a + b + c_ + d, a - b + c_ - d], -1), np.stack([a + b - c_ - d, a - b - c_ + d], -1)], -2
    )


def _deadzone(qbits: int, intra: bool) -> int:
    return (1 << qbits) // (3 if intra else 6)


def _signed(magnitude: np.ndarray, like: np.ndarray) -> np.ndarray:
    return np.where(like < 0, -magnitude, magnitude).astype(np.int32)


def quantise(coef: np.ndarray, qp: int, intra: bool) -> np.ndarray:
    """Levels of (..., 4, 4) coefficients: sign(W) (|W| MF + f) >> (15 + qp/6), clamped.

    |W| MF <= 9,180 * 13,107 < 2^27: int32 holds it.
    """
    qbits = 15 + qp // 6
    mag = (np.abs(coef) * MF[qp % 6] + _deadzone(qbits, intra)) >> qbits
    return _signed(np.minimum(mag, LEVEL_MAX), coef)


def quantise_dc(coef: np.ndarray, qp: int, intra: bool) -> np.ndarray:
    """Levels of DC coefficients after their Hadamard: one more bit of shift (and 2f).

    Luma DC after (A W A) >> 1 is at most 16 * 4,080 / 2 = 32,640; times 13,107 < 2^29.
    """
    qbits = 15 + qp // 6
    mag = (np.abs(coef) * MF[qp % 6][0, 0] + 2 * _deadzone(qbits, intra)) >> (qbits + 1)
    return _signed(np.minimum(mag, LEVEL_MAX), coef)


def dequantise(levels: np.ndarray, qp: int) -> np.ndarray:
    """d = c LevelScale4x4 << (qp/6 - 4) (8.5.12.1, flat scaling: LevelScale = 16 v).

    With LevelScale = 16 v the rounding branch for qp < 24 is exact, so this is
    c v << (qp / 6) at every qp.
    """
    scaled: np.ndarray = (levels.astype(np.int32) * V[qp % 6]) << (qp // 6)
    return scaled


def dequantise_luma_dc(levels: np.ndarray, qp: int) -> np.ndarray:
    """dcY of 8.5.10 (8-321, 8-322) from the 4x4 DC levels (raster), Intra16x16."""
    f = hadamard4(levels)
    scale = 16 * int(V[qp % 6][0, 0])
    if qp >= 36:
        return (f * scale) << (qp // 6 - 6)
    return (f * scale + (1 << (5 - qp // 6))) >> (6 - qp // 6)


def dequantise_chroma_dc(levels: np.ndarray, qpc: int) -> np.ndarray:
    """dcC of 8.5.11.2 (8-330) from the 2x2 DC levels of one chroma component."""
    f = hadamard2(levels)
    return ((f * (16 * int(V[qpc % 6][0, 0]))) << (qpc // 6)) >> 5
