"""Intra and inter prediction of the golden model against the spec's equations, sample by sample."""

from __future__ import annotations

import numpy as np
import pytest

from rfb.h264cuda.model import inter, intra


def clip1(v: int) -> int:
    return min(max(v, 0), 255)


def spec_luma(top: list[int] | None, left: list[int] | None, corner: int | None) -> dict[int, np.ndarray]:
    # 8.3.3.1-8.3.3.4, sample by sample: the allowed Intra16x16 predictions by mode.
    out = {}
    if top is not None:
        out[0] = np.array([[top[x] for x in range(16)] for _ in range(16)])
    if left is not None:
        out[1] = np.array([[left[y]] * 16 for y in range(16)])
    if top is not None and left is not None:
        dc = (sum(top) + sum(left) + 16) >> 5
    elif left is not None:
        dc = (sum(left) + 8) >> 4
    elif top is not None:
        dc = (sum(top) + 8) >> 4
    else:
        dc = 128
    out[2] = np.full((16, 16), dc)
    if top is not None and left is not None and corner is not None:

        def p_top(x: int) -> int:
            return corner if x == -1 else top[x]

        def p_left(y: int) -> int:
            return corner if y == -1 else left[y]

        h = sum((x + 1) * (p_top(8 + x) - p_top(6 - x)) for x in range(8))
        v = sum((y + 1) * (p_left(8 + y) - p_left(6 - y)) for y in range(8))
        a, b, c = 16 * (left[15] + top[15]), (5 * h + 32) >> 6, (5 * v + 32) >> 6
        out[3] = np.array([[clip1((a + b * (x - 7) + c * (y - 7) + 16) >> 5) for x in range(16)] for y in range(16)])
    return out


def spec_chroma(top: list[int] | None, left: list[int] | None, corner: int | None) -> dict[int, np.ndarray]:
    # 8.3.4.1-8.3.4.4 for one 8x8 component (4:2:0).
    out = {}
    dc = np.zeros((8, 8), int)
    for yo in (0, 4):
        for xo in (0, 4):
            t = sum(top[xo : xo + 4]) if top is not None else None
            lf = sum(left[yo : yo + 4]) if left is not None else None
            if (xo, yo) in ((0, 0), (4, 4)):
                value = (
                    (t + lf + 4) >> 3
                    if t is not None and lf is not None
                    else (lf + 2) >> 2
                    if lf is not None
                    else (t + 2) >> 2
                    if t is not None
                    else 128
                )
            elif xo > 0:
                value = (t + 2) >> 2 if t is not None else (lf + 2) >> 2 if lf is not None else 128
            else:
                value = (lf + 2) >> 2 if lf is not None else (t + 2) >> 2 if t is not None else 128
            dc[yo : yo + 4, xo : xo + 4] = value
    out[0] = dc
    if left is not None:
        out[1] = np.array([[left[y]] * 8 for y in range(8)])
    if top is not None:
        out[2] = np.array([[top[x] for x in range(8)] for _ in range(8)])
    if top is not None and left is not None and corner is not None:

        def p_top(x: int) -> int:
            return corner if x == -1 else top[x]

        def p_left(y: int) -> int:
            return corner if y == -1 else left[y]

        h = sum((x + 1) * (p_top(4 + x) - p_top(2 - x)) for x in range(4))
        v = sum((y + 1) * (p_left(4 + y) - p_left(2 - y)) for y in range(4))
        a, b, c = 16 * (left[7] + top[7]), (34 * h + 32) >> 6, (34 * v + 32) >> 6
        out[3] = np.array([[clip1((a + b * (x - 3) + c * (y - 3) + 16) >> 5) for x in range(8)] for y in range(8)])
    return out


@pytest.mark.parametrize(("has_top", "has_left"), [(False, False), (True, False), (False, True), (True, True)])
def test_intra_predictions_are_the_spec_equations(has_top: bool, has_left: bool) -> None:
    rng = np.random.default_rng(int(has_top) * 2 + int(has_left))
    n = 6
    top, left = rng.integers(0, 256, (n, 16)), rng.integers(0, 256, (n, 16))
    top[0], left[0] = np.arange(16) * 16, 255 - np.arange(16) * 16  # steep planes clip
    corner = rng.integers(0, 256, n)
    tops, lefts = np.full(n, has_top), np.full(n, has_left)
    preds, allowed = intra.luma_predictions(top * has_top, left * has_left, corner, tops, lefts)
    ctop, cleft = rng.integers(0, 256, (n, 2, 8)), rng.integers(0, 256, (n, 2, 8))
    ccorner = rng.integers(0, 256, (n, 2))
    cpreds, callowed = intra.chroma_predictions(ctop * has_top, cleft * has_left, ccorner, tops, lefts)
    for k in range(n):
        expected = spec_luma(list(top[k]) if has_top else None, list(left[k]) if has_left else None, int(corner[k]))
        assert {m for i, m in enumerate(intra.LUMA_MODES) if allowed[i, k]} == set(expected)
        for i, mode in enumerate(intra.LUMA_MODES):
            if mode in expected:
                assert np.array_equal(preds[i, k], expected[mode]), (mode, k)
        for comp in range(2):
            expected = spec_chroma(
                list(ctop[k, comp]) if has_top else None,
                list(cleft[k, comp]) if has_left else None,
                int(ccorner[k, comp]),
            )
            assert {m for i, m in enumerate(intra.CHROMA_MODES) if callowed[i, k]} == set(expected)
            for i, mode in enumerate(intra.CHROMA_MODES):
                if mode in expected:
                    assert np.array_equal(cpreds[i, k, comp], expected[mode]), (mode, k, comp)


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
