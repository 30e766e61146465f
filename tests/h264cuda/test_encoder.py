"""CudaEncoder on the CPU build of the kernels equals the golden model's encoder, byte for byte.

Each stage runs on its kernel driver where that exists, else on the model behind the
driver's signature (tests/h264cuda/stages.py); the padding kernels always run. The
streams mix IDR and P pictures with motion, a forced IDR, rate control with its retry,
a cropped size and pictures read from pitched views, and FFmpeg decodes them to the
encoder's own reconstruction exactly.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

import numpy as np
import pytest

from rfb.benchmark.patterns import make
from rfb.encoders import h264
from rfb.gpu import rgb_to_nv12_host
from rfb.h264cuda import encoder as cuda_encoder
from rfb.h264cuda.encoder import CudaEncoder, StageDriver, Stages, StagesMissing, load_driver
from rfb.h264cuda.model.encoder import ModelEncoder
from rfb.h264cuda.model.picture import I_16X16, P_L0_16X16, P_SKIP
from tests.support.kernels_cpu import CpuLauncher

from .stages import model_stages, stages_for_tests
from .streams import Stream, assert_decodes_to_reconstruction, nv12_pictures


def pitched_views(nv12: np.ndarray, height: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Y and UV of ``nv12`` as views of a buffer whose rows are ``pad`` bytes wider (a device frame's pitch)."""
    rows, width = nv12.shape
    wide = np.full((rows, width + pad), 0xAB, np.uint8)  # the padding holds garbage the kernels must not read
    wide[:, :width] = nv12
    return wide[:height, :width], wide[height:, :width]


def encode_both(
    pictures: list[np.ndarray],
    width: int,
    height: int,
    *,
    idr_at: tuple[int, ...] = (),
    pad: int = 0,
    bitrate: int = 2_000_000,
    **options: Any,
) -> Stream:
    """Encode with ModelEncoder and CudaEncoder side by side; assert every output equal; the CUDA stream."""
    stages, _ = stages_for_tests()
    model = ModelEncoder(width, height, 30, bitrate, **options)
    cuda = CudaEncoder(CpuLauncher(), width, height, 30, bitrate, stages=stages, **options)
    stream = Stream([], [], [], list(pictures))
    for i, nv12 in enumerate(pictures):
        want = model.encode(nv12[:height], nv12[height:], force_idr=i in idr_at)
        y, uv = pitched_views(nv12, height, pad) if pad else (nv12[:height], nv12[height:])
        got = cuda.encode(y, uv, force_idr=i in idr_at)
        assert got == want, f"picture {i}: {len(got)} bytes, the model {len(want)}"
        assert model.last is not None and cuda.last is not None
        for field in ("idr", "qp", "frame_num", "size", "retried"):
            assert getattr(cuda.last, field) == getattr(model.last, field), (i, field)
        for field in dataclasses.fields(model.last.macroblocks):
            np.testing.assert_array_equal(
                getattr(cuda.last.macroblocks, field.name), getattr(model.last.macroblocks, field.name)
            )
        for got_plane, want_plane in zip(cuda.reconstruction, model.reconstruction, strict=True):
            np.testing.assert_array_equal(got_plane, want_plane)
        stream.units.append(got)
        stream.recons.append(cuda.reconstruction)
        stream.infos.append(cuda.last)
    return stream


def test_idr_p_with_motion_and_a_forced_idr_at_a_constant_qp() -> None:
    stream = encode_both(nv12_pictures("scene", 64, 48, 6), 64, 48, idr_at=(4,), qp=26)
    assert [h264.is_idr(u) for u in stream.units] == [i in (0, 4) for i in range(6)]
    kinds = np.concatenate([info.macroblocks.kind.ravel() for info in stream.infos if not info.idr])
    assert (kinds == P_L0_16X16).any(), "expected moving macroblocks coded with a vector"
    assert_decodes_to_reconstruction(stream)


def test_rate_control_with_its_retry_on_a_cropped_size_from_pitched_rows() -> None:
    # 70x38: cropped to whole macroblocks; 60 kbit/s at 30 fps is a 2,000-bit budget that
    # the first IDR overshoots more than twice, so it is coded again at a higher QP.
    stream = encode_both(nv12_pictures("scene", 70, 38, 6), 70, 38, idr_at=(3,), pad=22, bitrate=60_000)
    assert stream.infos[0].retried and stream.infos[0].idr
    assert len({info.qp for info in stream.infos}) > 1, "expected the rate control to move the QP"
    assert_decodes_to_reconstruction(stream)
    payloads = h264.PayloadStream(70, 38).payloads(stream.units)
    assert payloads[0].codec == h264.codec_string(stream.units[0]) == "avc1.42C00A"


def test_intra_macroblocks_in_p_pictures_and_static_skips() -> None:
    # A cut to noise makes P pictures code intra macroblocks; a repeated picture settles
    # into P_Skip (the first repeat may still refine what was quantised).
    pictures = nv12_pictures("gradient", 48, 32, 1) + nv12_pictures("noise", 48, 32, 2)
    stream = encode_both([*pictures, pictures[-1], pictures[-1], pictures[-1]], 48, 32, qp=30)
    assert (stream.infos[1].macroblocks.kind == I_16X16).sum() >= 4
    assert (stream.infos[-1].macroblocks.kind == P_SKIP).all()
    assert_decodes_to_reconstruction(stream)


# ---------------------------------------------------------------- validation, as the model's


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        ((64, 48, 30, 1), {"qp": 52}, r"expected a QP in 10\.\.51, got 52"),
        ((64, 48, 30, 1), {"search": -1}, r"expected a search range >= 0, got -1"),
        ((63, 48, 30, 1), {}, r"expected a positive even width and height \(4:2:0\), got 63x48"),
        ((64, 48, 0, 1), {}, r"expected a positive fps and bitrate, got 0 fps and 1 bit/s"),
    ],
)
def test_arguments_are_checked_as_the_model_checks_them(
    args: tuple[int, int, int, int], options: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ModelEncoder(*args, **options)
    with pytest.raises(ValueError, match=message):
        CudaEncoder(CpuLauncher(), *args, stages=model_stages(), **options)


def test_pictures_of_the_wrong_shape_type_or_layout_are_refused() -> None:
    enc = CudaEncoder(CpuLauncher(), 32, 16, 30, 100_000, stages=model_stages())
    y, uv = np.zeros((16, 32), np.uint8), np.zeros((8, 32), np.uint8)
    with pytest.raises(RuntimeError, match="expected a picture to have been encoded"):
        _ = enc.reconstruction
    with pytest.raises(ValueError, match=r"expected uint8 Y \(16, 32\), got uint8 \(16, 30\)"):
        enc.encode(y[:, :30], uv)
    with pytest.raises(ValueError, match=r"expected uint8 UV \(8, 32\), got int16 \(8, 32\)"):
        enc.encode(y, uv.astype(np.int16))
    with pytest.raises(ValueError, match=r"expected Y rows of contiguous bytes 32 or more apart, got strides"):
        enc.encode(np.zeros((16, 64), np.uint8)[:, ::2], uv)
    assert enc.last is None  # nothing was coded


# ---------------------------------------------------------------- the stages


def test_the_product_stages_are_all_kernel_drivers_or_name_each_missing_one() -> None:
    missing = [d for d in cuda_encoder.DRIVERS if importlib.util.find_spec(d.module) is None]
    if not missing:
        stages = cuda_encoder.kernel_stages()
        assert isinstance(stages, Stages) and cuda_encoder.missing_stages() == []
        return
    with pytest.raises(StagesMissing) as info:
        cuda_encoder.kernel_stages()
    message = str(info.value)
    assert message.startswith("h264_cuda unavailable: ")
    for driver in missing:
        assert f"{driver.what} ({driver.qualname}) has no kernels yet" in message
    with pytest.raises(StagesMissing):
        CudaEncoder(CpuLauncher(), 32, 16, 30, 100_000)  # no stages given: the kernels' or nothing


def test_a_driver_that_is_missing_or_broken_says_which() -> None:
    absent = StageDriver("slice_nal", "rfb.h264cuda._no_such_driver", "slice_nal", "the entropy stage")
    assert load_driver(absent) == (
        None,
        "the entropy stage (rfb.h264cuda._no_such_driver.slice_nal) has no kernels yet",
    )
    no_function = StageDriver("i_picture", "rfb.h264cuda.model.intra", "code_everything", "the I-picture stage")
    function, reason = load_driver(no_function)
    assert function is None and reason is not None
    assert reason.endswith("has no kernels yet: rfb.h264cuda.model.intra has no code_everything")
    broken = StageDriver("p_picture", "tests.h264cuda._broken_driver", "code_p_picture", "the P-picture stage")
    function, reason = load_driver(broken)
    assert function is None and reason is not None
    assert "cannot be imported: ModuleNotFoundError: No module named 'rfb_no_such_dependency'" in reason
    present = StageDriver("i_picture", "rfb.h264cuda.model.intra", "code_i_picture", "the I-picture stage")
    function, reason = load_driver(present)
    assert callable(function) and reason is None


# ---------------------------------------------------------------- long streams: no drift


def kernel_stream(launcher: Any, pattern: str, width: int, height: int, count: int, bitrate: int) -> Stream:
    """``count`` moving pictures of ``pattern`` through CudaEncoder on ``launcher`` alone, rate control on.

    An IDR in the middle, P pictures elsewhere: each P picture predicts from the kernels'
    own reconstruction of the one before, so any drift from the decoder accumulates.
    """
    stages, missing = stages_for_tests()
    assert not missing, f"expected every stage to have kernels, missing: {missing}"
    cuda = CudaEncoder(launcher, width, height, 30, bitrate, stages=stages)
    xp = launcher.xp
    stream = Stream([], [], [], [])
    for i in range(count):
        nv12 = xp.asarray(rgb_to_nv12_host(make(pattern, width, height, i)))
        stream.units.append(cuda.encode(nv12[:height], nv12[height:], force_idr=i == count // 2))
        stream.recons.append(tuple(np.asarray(xp.asnumpy(p) if xp is not np else p) for p in cuda.reconstruction))
    return stream


def test_a_long_stream_on_the_cpu_build_decodes_without_drift() -> None:
    stream = kernel_stream(CpuLauncher(), "scene", 64, 48, 240, 300_000)
    assert sum(h264.is_idr(u) for u in stream.units) == 2
    assert_decodes_to_reconstruction(stream)


@pytest.mark.gpu
def test_a_thousand_frame_stream_on_the_gpu_decodes_without_drift() -> None:
    from rfb.h264cuda.kernels.cuda import CudaLauncher
    from tests.gpu import require_cupy

    require_cupy()
    stream = kernel_stream(CudaLauncher(), "scene", 1280, 720, 1000, 4_000_000)
    assert sum(h264.is_idr(u) for u in stream.units) == 2
    assert_decodes_to_reconstruction(stream)
