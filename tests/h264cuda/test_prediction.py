"""Intra and inter prediction of the golden model against the spec's equations, sample by sample."""

from __future__ import annotations

import numpy as np

from rfb.h264cuda.model import inter, intra
from rfb.h264cuda.model.picture import CHROMA_DC, CHROMA_HORIZONTAL, I16_DC, I16_HORIZONTAL


def test_luma_without_a_neighbour_is_dc_128() -> None:
    modes, preds = intra.luma_predictions(None, rows=3)
    assert modes == [I16_DC] and preds.shape == (1, 3, 16, 16) and (preds == 128).all()


def test_luma_dc_and_horizontal_from_the_left_column() -> None:
    left = np.arange(32, dtype=np.int32).reshape(2, 16) * 7
    modes, preds = intra.luma_predictions(left, rows=2)
    assert modes == [I16_DC, I16_HORIZONTAL]
    for r in range(2):
        assert (preds[0, r] == (int(left[r].sum()) + 8) >> 4).all()  # 8-119
        assert all((preds[1, r, y] == left[r, y]).all() for y in range(16))  # 8-116


def test_chroma_dc_is_per_four_row_band_of_the_left_column() -> None:
    left = np.random.default_rng(1).integers(0, 256, (1, 2, 8)).astype(np.int32)
    modes, preds = intra.chroma_predictions(left, rows=1)
    assert modes == [CHROMA_DC, CHROMA_HORIZONTAL]
    for comp in range(2):
        for band in range(2):
            rows = slice(4 * band, 4 * band + 4)
            expected = (int(left[0, comp, rows].sum()) + 2) >> 2  # 8-134 / 8-139: left only
            assert (preds[0, 0, comp, rows] == expected).all()
        assert all((preds[1, 0, comp, y] == left[0, comp, y]).all() for y in range(8))


def test_candidates_start_at_zero_and_cover_the_window_nearest_first() -> None:
    c = inter.candidates(2)
    assert c[0] == (0, 0) and len(c) == 25 and len(set(c)) == 25
    distances = [abs(dx) + abs(dy) for dx, dy in c]
    assert distances == sorted(distances)


def spec_chroma_sample(ref: np.ndarray, x_int: int, y_int: int, xf: int, yf: int) -> int:
    # 8-266 with the reference clamped at its edges (8-264, 8-265).
    h, w = ref.shape

    def s(y: int, x: int) -> int:
        return int(ref[min(max(y, 0), h - 1), min(max(x, 0), w - 1)])

    a, b, c, d = s(y_int, x_int), s(y_int, x_int + 1), s(y_int + 1, x_int), s(y_int + 1, x_int + 1)
    return ((8 - xf) * (8 - yf) * a + xf * (8 - yf) * b + (8 - xf) * yf * c + xf * yf * d + 32) >> 6


def test_chroma_prediction_is_8_266_at_whole_and_half_samples_and_past_the_edges() -> None:
    rng = np.random.default_rng(2)
    ref = rng.integers(0, 256, (2, 16, 24), dtype=np.uint8)  # a 2x3-macroblock picture's chroma
    mv = np.array([[[3, -5], [0, 0], [-9, 2]], [[8, 7], [1, 1], [-2, -3]]], np.int32)  # whole luma samples
    pred = inter.predict_chroma(ref, mv)
    for r in range(2):
        for c in range(3):
            mvc = 4 * mv[r, c]  # eighth chroma samples
            for comp in range(2):
                for y in range(8):
                    for x in range(8):
                        expected = spec_chroma_sample(
                            ref[comp], 8 * c + x + (mvc[0] >> 3), 8 * r + y + (mvc[1] >> 3), mvc[0] & 7, mvc[1] & 7
                        )
                        assert pred[r, c, comp, y, x] == expected


def test_luma_prediction_copies_and_clamps_at_the_edges() -> None:
    ref = np.arange(32 * 48, dtype=np.int32).reshape(32, 48).astype(np.uint8)
    mv = np.zeros((2, 3, 2), np.int32)
    mv[0, 0] = (-5, -3)
    mv[1, 2] = (4, 8)
    pred = inter.predict_luma(ref, mv)
    ys, xs = np.clip(np.arange(16) - 3, 0, 31), np.clip(np.arange(16) - 5, 0, 47)
    assert np.array_equal(pred[0, 0], ref[np.ix_(ys, xs)])
    ys, xs = np.clip(16 + np.arange(16) + 8, 0, 31), np.clip(32 + np.arange(16) + 4, 0, 47)
    assert np.array_equal(pred[1, 2], ref[np.ix_(ys, xs)])
    assert np.array_equal(pred[0, 1], ref[:16, 16:32])
