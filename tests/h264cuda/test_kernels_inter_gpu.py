"""The P picture kernels built by NVRTC, on a GPU, against the golden model (marker gpu).

The CPU build checks the kernels against the model in CI (test_kernels_inter.py); these
tests run the same drivers with :class:`CudaLauncher` at real sizes and compare every
MacroblockArrays field and both reconstructions with the model, exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rfb.h264cuda import inter, mvpred
from rfb.h264cuda.model import inter as model_inter
from rfb.h264cuda.model import intra as model_intra
from rfb.h264cuda.model import mvpred as model_mvpred
from rfb.h264cuda.model.picture import MacroblockArrays
from tests.gpu import require_cupy

from .streams import nv12_pictures
from .test_kernels_inter import _planes, assert_same_picture, mixed_pair, moving_pair

pytestmark = pytest.mark.gpu


def _launcher() -> Any:
    require_cupy()
    from rfb.h264cuda.kernels.cuda import CudaLauncher

    return CudaLauncher()


def _host(cp: Any, got: tuple[MacroblockArrays, Any, Any]) -> tuple[MacroblockArrays, np.ndarray, np.ndarray]:
    mbs, y, c = got
    fields = {name: cp.asnumpy(getattr(mbs, name)) for name in MacroblockArrays.__slots__}
    return MacroblockArrays(**fields), cp.asnumpy(y), cp.asnumpy(c)


def test_predictors_on_the_gpu_equal_the_model() -> None:
    launcher = _launcher()
    cp = launcher.xp
    rng = np.random.default_rng(7)
    mv = (rng.integers(-9, 10, (68, 120, 2)) * 4).astype(np.int32)
    mv[rng.random((68, 120)) < 0.3] = 0
    is_inter = rng.random((68, 120)) >= 0.2
    got_mvp, got_skip = mvpred.predictors(launcher, cp.asarray(mv), cp.asarray(is_inter))
    want_mvp, want_skip = model_mvpred.predictors(mv, is_inter)
    np.testing.assert_array_equal(cp.asnumpy(got_mvp), want_mvp)
    np.testing.assert_array_equal(cp.asnumpy(got_skip), want_skip)


@pytest.mark.parametrize(("width", "height"), [(320, 240), (1280, 720)])
def test_motion_search_on_the_gpu_equals_the_model(width: int, height: int) -> None:
    launcher = _launcher()
    cp = launcher.xp
    y, _, ref_y, _ = moving_pair("scene", width, height)
    got_mv, got_cost = inter.motion_search(launcher, cp.asarray(y), cp.asarray(ref_y), 8, 26)
    want_mv, want_cost = model_inter.motion_search(y, ref_y, 8, 26)
    np.testing.assert_array_equal(cp.asnumpy(got_mv), want_mv)
    np.testing.assert_array_equal(cp.asnumpy(got_cost), want_cost)


@pytest.mark.parametrize(
    ("pattern", "width", "height", "qp"),
    [
        ("scene", 320, 240, 18),
        ("gradient", 320, 240, 40),
        ("noise", 320, 240, 51),
        ("scene", 1280, 720, 26),
        ("scene", 1920, 1080, 30),
        ("gradient", 1920, 1080, 26),
    ],
)
def test_p_pictures_on_the_gpu_equal_the_model(pattern: str, width: int, height: int, qp: int) -> None:
    launcher = _launcher()
    cp = launcher.xp
    y, c, first_y, first_c = moving_pair(pattern, width, height)
    _, ref_y, ref_c = model_intra.code_i_picture(first_y, first_c, qp)
    got = inter.code_p_picture(launcher, *(cp.asarray(a) for a in (y, c, ref_y, ref_c)), qp, 8)
    assert_same_picture(_host(cp, got), model_inter.code_p_picture(y, c, ref_y, ref_c, qp, 8))


def test_a_field_of_motions_with_intra_on_the_gpu_equals_the_model() -> None:
    launcher = _launcher()
    cp = launcher.xp
    y, c, ref_y, ref_c = mixed_pair(320, 240, 3)
    got = inter.code_p_picture(launcher, *(cp.asarray(a) for a in (y, c, ref_y, ref_c)), 30, 8)
    assert_same_picture(_host(cp, got), model_inter.code_p_picture(y, c, ref_y, ref_c, 30, 8))


def test_a_chain_of_p_pictures_on_the_gpu_equals_the_model() -> None:
    launcher = _launcher()
    cp = launcher.xp
    width, height, qp = 320, 240, 26
    pictures = [_planes(p, width, height) for p in nv12_pictures("scene", width, height, 5)]
    _, want_y, want_c = model_intra.code_i_picture(*pictures[0], qp)
    got_y, got_c = cp.asarray(want_y), cp.asarray(want_c)
    for y, c in pictures[1:]:
        got = inter.code_p_picture(launcher, cp.asarray(y), cp.asarray(c), got_y, got_c, qp, 8)
        want = model_inter.code_p_picture(y, c, want_y, want_c, qp, 8)
        assert_same_picture(_host(cp, got), want)
        (_, got_y, got_c), (_, want_y, want_c) = got, want
