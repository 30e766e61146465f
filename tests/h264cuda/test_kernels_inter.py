"""The P picture kernels on the CPU (inter.cu, mvpred.cu), against the golden model, exactly.

Consecutive pictures with motion come from the model tests' patterns (each pattern
moves from picture to picture) and from the mvpred tests' field of macroblocks each
moving by its own offset; the reference is the model's own reconstruction of the
picture before, as in a stream.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfb.h264cuda import inter, mvpred
from rfb.h264cuda.model import inter as model_inter
from rfb.h264cuda.model import intra as model_intra
from rfb.h264cuda.model import mvpred as model_mvpred
from rfb.h264cuda.model import residual
from rfb.h264cuda.model.picture import I_16X16, P_L0_16X16, P_SKIP, MacroblockArrays, mb_view
from rfb.h264cuda.model.transform import chroma_qp
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
    y, ref, _ = _motion_field(width, height, seed)
    return y, ref


def _motion_field(width: int, height: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    return y, ref, offsets


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


def test_predictors_write_a_given_mvp_array_in_place() -> None:
    mv = (np.random.default_rng(5).integers(-9, 10, (3, 5, 2)) * 4).astype(np.int32)
    is_inter = np.random.default_rng(6).random((3, 5)) >= 0.3
    into = np.full((3, 5, 2), -12345, np.int32)  # every entry is overwritten
    got_mvp, got_skip = mvpred.predictors(CPU, mv, is_inter, mvp=into)
    want_mvp, want_skip = model_mvpred.predictors(mv, is_inter)
    assert got_mvp is into
    np.testing.assert_array_equal(got_mvp, want_mvp)
    np.testing.assert_array_equal(got_skip, want_skip)
    with pytest.raises(ValueError, match=r"mvp: expected C-contiguous int32 \(3, 5, 2\), got int64"):
        mvpred.predictors(CPU, mv, is_inter, mvp=np.zeros((3, 5, 2), np.int64))


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


# -- residual: the still test and the inter macroblocks' levels and reconstruction ----


def model_residual(
    y: np.ndarray, c: np.ndarray, ref_y: np.ndarray, ref_c: np.ndarray, mv: np.ndarray, qp: int
) -> tuple[residual.LumaInter, residual.Chroma, np.ndarray, np.ndarray]:
    """The model's residual of every macroblock at quarter-sample vectors ``mv``, as code_p_picture makes it."""
    pred_y, pred_c = model_inter.predict_luma(ref_y, mv // 4), model_inter.predict_chroma(ref_c, mv // 4)
    src_y = mb_view(y.astype(np.int32), 16)
    src_c = mb_view(c.astype(np.int32), 8).transpose(1, 2, 0, 3, 4)
    luma = residual.code_luma_inter(src_y - pred_y, qp)
    chroma = residual.code_chroma(src_c - pred_c, chroma_qp(qp), intra=False)
    return luma, chroma, np.clip(pred_y + luma.residual, 0, 255), np.clip(pred_c + chroma.residual, 0, 255)


@pytest.mark.parametrize(("seed", "qp"), [(1, 18), (2, 26), (3, 40), (4, 51)])
def test_residual_at_any_vector_equals_the_model(seed: int, qp: int) -> None:
    # Vectors up to +-20 samples (past the edges: clamped), odd ones (half chroma samples).
    y, c, ref_y, ref_c = mixed_pair(96, 64, seed)
    rng = np.random.default_rng(seed)
    mv = (rng.integers(-20, 21, (4, 6, 2)) * 4).astype(np.int32)
    mv[0, 0] = 0
    intra_mask = rng.random((4, 6)) < 0.25
    got = inter.residual(CPU, y, c, ref_y, ref_c, mv, qp, intra_mask)
    luma, chroma, rec_y, rec_c = model_residual(y, c, ref_y, ref_c, mv, qp)
    coded = ~intra_mask
    zero = np.zeros_like
    np.testing.assert_array_equal(got.luma, np.where(coded[..., None, None], luma.levels, 0))
    np.testing.assert_array_equal(got.chroma_dc, np.where(coded[..., None, None], chroma.dc, 0))
    np.testing.assert_array_equal(got.chroma_ac, np.where(coded[..., None, None, None], chroma.ac, 0))
    np.testing.assert_array_equal(got.rec_y[coded], rec_y[coded])
    np.testing.assert_array_equal(got.rec_c[coded], rec_c[coded])
    np.testing.assert_array_equal(got.rec_y[intra_mask], zero(rec_y[intra_mask]))
    luma_flags = np.any(luma.levels != 0, axis=-1)
    chroma_flags = np.any(chroma.dc != 0, axis=-1) + 2 * np.any(chroma.ac != 0, axis=(-2, -1))
    want_flags = np.concatenate([luma_flags, chroma_flags], axis=-1) * coded[..., None]
    np.testing.assert_array_equal(got.flags, want_flags)
    assert luma_flags.any() and (chroma_flags == 3).any()


@pytest.mark.parametrize("qp", [18, 26, 40, 51])
def test_the_still_test_equals_the_model(qp: int) -> None:
    # Still: no level at the zero vector, luma or chroma (the flags of the residual at (0, 0)).
    y, c, ref_y, ref_c = reconstructed_pair("scene", 176, 144, qp)
    got = inter.residual(CPU, y, c, ref_y, ref_c, np.zeros((9, 11, 2), np.int32), qp)
    luma, chroma, _, _ = model_residual(y, c, ref_y, ref_c, np.zeros((9, 11, 2), np.int32), qp)
    want_still = ~np.any(luma.levels != 0, axis=(-2, -1)) & (chroma.cbp == 0)
    np.testing.assert_array_equal(~got.flags.any(axis=-1), want_still)
    assert want_still.any() and not want_still.all()


# -- whole P pictures ---------------------------------------------------------------


def assert_same_picture(got: tuple[Any, Any, Any], want: tuple[MacroblockArrays, np.ndarray, np.ndarray]) -> None:
    """Every MacroblockArrays field and both reconstructions, exactly (field named on failure)."""
    for field in fields(MacroblockArrays):
        g, w = getattr(got[0], field.name), getattr(want[0], field.name)
        assert g.dtype == np.int32 and g.shape == w.shape, (field.name, g.dtype, g.shape, w.shape)
        mismatch = np.argwhere(g != w)
        assert mismatch.size == 0, f"{field.name} differs at {mismatch[:4].tolist()}"
    for name, g, w in (("luma", got[1], want[1]), ("chroma", got[2], want[2])):
        assert g.dtype == np.uint8 and g.shape == w.shape, (name, g.dtype, g.shape)
        assert np.array_equal(g, w), f"{name} reconstruction differs at {np.argwhere(g != w)[:4].tolist()}"


def reconstructed_pair(
    pattern: str, width: int, height: int, qp: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A pattern's second picture against the model's reconstruction of its first (an IDR), as in a stream."""
    y, c, first_y, first_c = moving_pair(pattern, width, height)
    _, ref_y, ref_c = model_intra.code_i_picture(first_y, first_c, qp)
    return y, c, ref_y, ref_c


def mixed_pair(width: int, height: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A field of motions (whole and half chroma samples, past the edges), unchanged
    macroblocks, and a patch of new noise where nothing predicts: P_Skip, still but
    coded, moving and intra macroblocks side by side."""
    y, ref_y, offsets = _motion_field(width, height, seed)
    rng = np.random.default_rng(seed + 100)
    ref_c = rng.integers(40, 220, (2, height // 2, width // 2), dtype=np.uint8)
    c = ref_c.copy()
    rows, cols = height // 16, width // 16
    src = np.pad(ref_c, ((0, 0), (4, 4), (4, 4)), mode="edge")
    for r in range(rows):  # chroma moves with its macroblock's luma, in whole chroma samples
        for col in range(cols):
            dx, dy = offsets[r, col] // 2
            c[:, 8 * r : 8 * r + 8, 8 * col : 8 * col + 8] = src[:, 4 + 8 * r + dy :, 4 + 8 * col + dx :][:, :8, :8]
    top, left = rows // 3 * 16, cols // 3 * 16
    y[top : top + 32, left : left + 48] = rng.integers(0, 256, (32, 48), dtype=np.uint8)
    return y, c, ref_y, ref_c


@pytest.mark.parametrize(
    ("pattern", "width", "height"), [("scene", 64, 48), ("gradient", 70, 38), ("scene", 176, 144), ("noise", 48, 32)]
)
@pytest.mark.parametrize("qp", [18, 26, 40, 51])
def test_p_pictures_equal_the_model(pattern: str, width: int, height: int, qp: int) -> None:
    y, c, ref_y, ref_c = reconstructed_pair(pattern, width, height, qp)
    got = inter.code_p_picture(CPU, y, c, ref_y, ref_c, qp, 8)
    want = model_inter.code_p_picture(y, c, ref_y, ref_c, qp, 8)
    assert_same_picture(got, want)


@pytest.mark.parametrize(("seed", "qp", "search"), [(1, 18, 8), (2, 26, 8), (3, 40, 5), (4, 51, 3), (5, 30, 0)])
def test_a_field_of_motions_with_intra_and_skipped_macroblocks_equals_the_model(
    seed: int, qp: int, search: int
) -> None:
    y, c, ref_y, ref_c = mixed_pair(160, 96, seed)
    got = inter.code_p_picture(CPU, y, c, ref_y, ref_c, qp, search)
    want = model_inter.code_p_picture(y, c, ref_y, ref_c, qp, search)
    assert_same_picture(got, want)
    if search >= 5:  # the picture holds every kind of macroblock
        assert set(np.unique(want[0].kind).tolist()) == {P_SKIP, P_L0_16X16, I_16X16}


def test_a_static_picture_is_all_p_skip_as_the_model() -> None:
    y, c, ref_y, ref_c = reconstructed_pair("scene", 64, 48, 26)
    got = inter.code_p_picture(CPU, ref_y, ref_c, ref_y, ref_c, 26, 8)
    want = model_inter.code_p_picture(ref_y, ref_c, ref_y, ref_c, 26, 8)
    assert_same_picture(got, want)
    assert (want[0].kind == P_SKIP).all()


def test_a_p_picture_refuses_a_reference_of_another_size() -> None:
    y = np.zeros((32, 48), np.uint8)
    c = np.zeros((2, 16, 24), np.uint8)
    with pytest.raises(ValueError, match=r"expected ref_y shaped like y \(32, 48\), got \(32, 32\)"):
        inter.code_p_picture(CPU, y, c, np.zeros((32, 32), np.uint8), c, 26, 8)


@pytest.mark.parametrize(("pattern", "qp"), [("scene", 26), ("gradient", 40)])
def test_a_chain_of_p_pictures_each_predicting_from_the_kernels_reconstruction(pattern: str, qp: int) -> None:
    # As in a stream: every P picture predicts from the reconstruction of the one before,
    # the kernels' from the kernels', so a difference anywhere would carry forward.
    width, height = 96, 64
    pictures = [_planes(p, width, height) for p in nv12_pictures(pattern, width, height, 4)]
    _, want_y, want_c = model_intra.code_i_picture(*pictures[0], qp)
    got_y, got_c = want_y, want_c
    for y, c in pictures[1:]:
        got = inter.code_p_picture(CPU, y, c, got_y, got_c, qp, 8)
        want = model_inter.code_p_picture(y, c, want_y, want_c, qp, 8)
        assert_same_picture(got, want)
        (_, got_y, got_c), (_, want_y, want_c) = got, want


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    qp=st.integers(0, 51),
    search=st.integers(0, 9),
    size=st.sampled_from([(16, 16), (32, 48), (48, 32), (64, 16)]),
    smooth=st.booleans(),
)
def test_random_p_pictures_equal_the_model(
    seed: int, qp: int, search: int, size: tuple[int, int], smooth: bool
) -> None:
    # Random content and QP (the model's whole range), pictures that partly move and partly change.
    width, height = size
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 256, (height * 3 // 2, width), dtype=np.uint8)
    if smooth:
        ref = (np.cumsum(rng.integers(-3, 4, ref.shape), axis=1) + 128).clip(0, 255).astype(np.uint8)
    nxt = np.roll(ref, shift=tuple(int(v) for v in rng.integers(-6, 7, 2)), axis=(0, 1))
    patch_y, patch_x = int(rng.integers(0, height - 8)), int(rng.integers(0, width - 12))
    nxt[patch_y : patch_y + 8, patch_x : patch_x + 12] = rng.integers(0, 256, (8, 12), dtype=np.uint8)
    y, c = _planes(nxt, width, height)
    ref_y, ref_c = _planes(ref, width, height)
    got = inter.code_p_picture(CPU, y, c, ref_y, ref_c, qp, search)
    want = model_inter.code_p_picture(y, c, ref_y, ref_c, qp, search)
    assert_same_picture(got, want)


@pytest.mark.parametrize(("qp", "search"), [(-1, 8), (52, 8), (26, -1)])
def test_a_p_picture_refuses_a_qp_or_search_out_of_range(qp: int, search: int) -> None:
    y = np.zeros((32, 48), np.uint8)
    c = np.zeros((2, 16, 24), np.uint8)
    with pytest.raises(ValueError, match=rf"expected search >= 0 and a QP in 0..51, got {search} and {qp}"):
        inter.code_p_picture(CPU, y, c, y, c, qp, search)
