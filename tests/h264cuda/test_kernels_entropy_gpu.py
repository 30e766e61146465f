"""The entropy kernels built by NVRTC: the slice NAL unit equals the model's (marker gpu).

The model's own MacroblockArrays of I and P pictures at 320x240, 1280x720 and
1920x1080, uploaded with CuPy, and made-up macroblocks that reach the long codes,
the level escapes and emulation prevention (tests/h264cuda/test_kernels_entropy.py
checks the same against the CPU build of the same kernels).
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any

import pytest

from rfb.h264cuda import slicedata
from rfb.h264cuda.model import slicedata as model
from rfb.h264cuda.model.picture import P_L0_16X16, MacroblockArrays
from rfb.h264cuda.model.ratecontrol import QP_MIN
from tests.gpu import require_cupy

from .streams import encode, nv12_pictures
from .test_kernels_entropy import synthetic

pytestmark = pytest.mark.gpu


def launcher() -> Any:
    require_cupy()
    from rfb.h264cuda.kernels.cuda import CudaLauncher

    return CudaLauncher()


def upload(mbs: MacroblockArrays) -> MacroblockArrays:
    cp = require_cupy()
    return MacroblockArrays(**{f.name: cp.asarray(getattr(mbs, f.name)) for f in dataclasses.fields(mbs)})


def assert_same_nal(mbs: MacroblockArrays, idr: bool, frame_num: int, idr_pic_id: int, qp: int) -> None:
    want = model.slice_nal(mbs, idr, frame_num, idr_pic_id, qp)
    got = slicedata.slice_nal(launcher(), upload(mbs), idr, frame_num, idr_pic_id, qp)
    if got != want:
        at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
        raise AssertionError(
            f"expected the model's {len(want)} bytes, got {len(got)}; first difference at byte {at}: "
            f"{want[at : at + 8].hex()} vs {got[at : at + 8].hex()}"
        )


@cache
def model_stream(pattern: str, width: int, height: int, qp: int) -> list[tuple[MacroblockArrays, bool, int, int]]:
    stream = encode(nv12_pictures(pattern, width, height, 2), width, height, qp=qp)  # an I and a P picture
    return [(info.macroblocks, info.idr, info.frame_num, info.qp) for info in stream.infos]


@pytest.mark.parametrize(
    ("pattern", "width", "height", "qp"),
    [
        ("scene", 320, 240, 26),
        ("noise", 320, 240, QP_MIN),
        ("scene", 1280, 720, 26),
        ("scene", 1920, 1080, 30),
        ("gradient", 1920, 1080, 18),
    ],
)
def test_model_pictures_on_the_gpu(pattern: str, width: int, height: int, qp: int) -> None:
    launcher()  # skip before the model's (slow) encoding where there is no GPU
    for i, (mbs, idr, frame_num, picture_qp) in enumerate(model_stream(pattern, width, height, qp)):
        assert_same_nal(mbs, idr, frame_num, i, picture_qp)


@pytest.mark.parametrize(("rows", "cols"), [(15, 20), (45, 80), (68, 120)])
def test_made_up_macroblocks_on_the_gpu(rows: int, cols: int) -> None:
    launcher()
    for seed, big in ((rows, False), (cols, True)):
        assert_same_nal(synthetic(rows, cols, seed, big=big), False, seed, 0, 20)


def test_levels_the_model_refuses_are_refused_on_the_gpu() -> None:
    mbs = synthetic(4, 4, 3)
    mbs.luma[1, 1, 2, 3] = 9000
    mbs.kind[1, 1] = P_L0_16X16
    mbs.cbp_luma[1, 1] = 15
    with pytest.raises(ValueError):
        model.slice_nal(mbs, False, 0, 0, 26)
    with pytest.raises(ValueError, match="too large for Baseline CAVLC"):
        slicedata.slice_nal(launcher(), upload(mbs), False, 0, 0, 26)
