"""RGB -> NV12 on the GPU against the NumPy reference, and copies between host and device.

Validation and the host paths run everywhere; the kernel runs where CuPy and a CUDA
device are (``-m gpu``), and skips with the reason elsewhere.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from rfb.frames import FrameError, RawFrame, frame_from_array
from rfb.gpu import (
    GpuUnavailable,
    copy_frame_to_device,
    copy_frame_to_host,
    cuda_frame,
    nv12_to_rgb_host,
    rgb_to_nv12,
    rgb_to_nv12_host,
    to_host_rgb,
)
from tests.gpu import FakeCudaArray, require_cupy, skip_if_cupy_works


def host_image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Noise over a diagonal gradient, with saturated corners: every rounding case shows."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = ((xx[..., None] * 7 + yy[..., None] * 3 + np.arange(channels) * 85) % 256).astype(np.uint8)
    noisy = rng.random((height, width)) < 0.3
    image[noisy] = rng.integers(0, 256, (int(noisy.sum()), channels), dtype=np.uint8)
    image[: height // 4, : width // 4, :3] = (255, 0, 0)
    image[-(height // 4) :, -(width // 4) :, :3] = (0, 255, 255)
    return image


# -- everywhere ---------------------------------------------------------------------------


def test_host_arrays_are_refused_with_a_pointer_to_the_host_function() -> None:
    rgb = host_image(4, 6)
    with pytest.raises(FrameError, match=r"got a host NumPy array"):
        rgb_to_nv12(rgb)
    with pytest.raises(FrameError, match=r"got a cpu rgb24 frame; use rfb.colorspace.rgb_to_nv12_host"):
        rgb_to_nv12(RawFrame(rgb, 6, 4))


def test_validation_happens_before_any_device_work() -> None:
    with pytest.raises(FrameError, match=r"expected a CUDA rgb24 or rgba8 image, got a cuda nv12 frame"):
        rgb_to_nv12(FakeCudaArray(np.zeros((6, 4), dtype=np.uint8)))
    with pytest.raises(FrameError, match=r"NV12 needs even width and height, got 5x4"):
        rgb_to_nv12(FakeCudaArray(np.zeros((4, 5, 3), dtype=np.uint8)))
    with pytest.raises(ValueError, match=r"matrix must be one of"):
        rgb_to_nv12(FakeCudaArray(np.zeros((4, 6, 3), dtype=np.uint8)), matrix="srgb")
    with pytest.raises(FrameError, match=r"8x4 cuda rgb24 frame needs uint8 data of shape \(4, 8, 3\)"):
        rgb_to_nv12(RawFrame(FakeCudaArray(np.zeros((4, 6, 3), dtype=np.uint8)), 8, 4, "rgb24", "cuda"))


def test_without_cupy_the_error_says_how_to_get_it() -> None:
    skip_if_cupy_works()
    with pytest.raises(GpuUnavailable, match=r"CuPy|CUDA"):
        rgb_to_nv12(FakeCudaArray(np.zeros((4, 6, 3), dtype=np.uint8)))


def test_to_host_rgb_of_host_frames() -> None:
    rgb = host_image(4, 6)
    assert to_host_rgb(RawFrame(rgb, 6, 4)) is rgb
    rgba = host_image(4, 6, 4)
    out = to_host_rgb(RawFrame(rgba, 6, 4, "rgba8"))
    assert out.flags.c_contiguous and np.array_equal(out, rgba[..., :3])
    nv12 = rgb_to_nv12_host(rgb)
    assert np.array_equal(to_host_rgb(RawFrame(nv12, 6, 4, "nv12")), nv12_to_rgb_host(nv12))
    assert np.array_equal(
        to_host_rgb(RawFrame(nv12, 6, 4, "nv12"), matrix="bt601"), nv12_to_rgb_host(nv12, matrix="bt601")
    )


def test_copy_frame_to_host_needs_a_cuda_frame() -> None:
    with pytest.raises(FrameError, match=r"expected a cuda frame, got a cpu one"):
        copy_frame_to_host(RawFrame(host_image(4, 6), 6, 4))


def test_copy_frame_to_device_checks_both_frames_first() -> None:
    nv12 = cuda_frame(FakeCudaArray(np.zeros((6, 4), dtype=np.uint8)))
    with pytest.raises(FrameError, match=r"expected a cuda frame, got a cpu one"):
        copy_frame_to_device(nv12, RawFrame(np.zeros((6, 4), dtype=np.uint8), 4, 4, "nv12"))
    with pytest.raises(FrameError, match=r"one layout and size, got a 6x4 rgb24 frame and a 4x4 nv12 one"):
        copy_frame_to_device(RawFrame(host_image(4, 6), 6, 4), nv12)
    with pytest.raises(FrameError, match=r"one layout and size, got a 4x2 nv12 frame and a 4x4 nv12 one"):
        copy_frame_to_device(RawFrame(np.zeros((3, 4), dtype=np.uint8), 4, 2, "nv12"), nv12)


# -- on the GPU ---------------------------------------------------------------------------------

MATRICES = list(itertools.product(("bt601", "bt709"), (False, True)))


def max_error(a: Any, b: np.ndarray) -> int:
    return int(np.abs(np.asarray(a, dtype=np.int16) - b.astype(np.int16)).max())


@pytest.mark.gpu
@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (2, 2), (98, 66), (640, 2), (2, 480)])
def test_kernel_matches_reference(width: int, height: int) -> None:
    cp = require_cupy()
    host = host_image(height, width)
    device = cp.asarray(host)
    for matrix, full_range in MATRICES:
        got = rgb_to_nv12(device, matrix=matrix, full_range=full_range)
        assert got.shape == (height * 3 // 2, width) and got.dtype == cp.uint8 and got.flags.c_contiguous
        expected = rgb_to_nv12_host(host, matrix=matrix, full_range=full_range)
        assert max_error(got.get(), expected) <= 1, (matrix, full_range)


@pytest.mark.gpu
def test_default_matrix_is_bt709_limited() -> None:
    cp = require_cupy()
    host = host_image(66, 98)
    got = rgb_to_nv12(cp.asarray(host)).get()
    assert max_error(got, rgb_to_nv12_host(host, matrix="bt709", full_range=False)) <= 1
    assert max_error(got, rgb_to_nv12_host(host, matrix="bt601")) > 1


@pytest.mark.gpu
def test_pitch_padded_input_and_rgba() -> None:
    cp = require_cupy()
    host = host_image(66, 98, 4, seed=3)
    expected = rgb_to_nv12_host(host)
    wide = cp.zeros((66, 98 + 30, 4), dtype=cp.uint8)
    wide[:, 10:108] = cp.asarray(host)
    assert max_error(rgb_to_nv12(wide[:, 10:108]).get(), expected) <= 1  # rgba8, pitch 512
    rgb_wide = cp.ascontiguousarray(wide[..., :3])
    frame = cuda_frame(rgb_wide[:, 10:108])
    assert frame.pitch == 128 * 3
    assert max_error(rgb_to_nv12(frame).get(), expected) <= 1  # rgb24, pitch 384, as a RawFrame


@pytest.mark.gpu
def test_out_is_reused_and_may_be_pitched() -> None:
    cp = require_cupy()
    a, b = host_image(66, 98, seed=1), host_image(66, 98, seed=2)
    out = cp.empty((99, 98), dtype=cp.uint8)
    assert rgb_to_nv12(cp.asarray(a), out=out) is out
    assert max_error(out.get(), rgb_to_nv12_host(a)) <= 1
    assert rgb_to_nv12(cp.asarray(b), out=out) is out
    assert max_error(out.get(), rgb_to_nv12_host(b)) <= 1
    big = cp.full((99, 98 + 64), 7, dtype=cp.uint8)
    pitched = big[:, :98]
    assert rgb_to_nv12(cp.asarray(a), out=pitched) is pitched
    assert max_error(pitched.get(), rgb_to_nv12_host(a)) <= 1
    assert bool((big[:, 98:] == 7).all())  # the padding is never written


@pytest.mark.gpu
def test_cupy_fast_path_equals_the_checked_path_and_reuses_its_launch() -> None:
    cp = require_cupy()
    from rfb.gpu import convert

    for channels, seed in ((3, 4), (4, 5)):
        host = host_image(66, 98, channels, seed=seed)
        device = cp.asarray(host)
        assert convert._fast_cupy_args(device, None) is not None  # CuPy in: the fast path is taken
        fast = rgb_to_nv12(device).get()
        checked = rgb_to_nv12(cuda_frame(device)).get()  # a RawFrame: the full check
        assert np.array_equal(fast, checked)
        assert max_error(fast, rgb_to_nv12_host(host)) <= 1
    before = convert._plan.cache_info()
    out = cp.empty((99, 98), dtype=cp.uint8)
    for seed in range(3):  # fresh arrays (new pointers) of one geometry: one plan
        host = host_image(66, 98, seed=seed)
        rgb_to_nv12(cp.asarray(host), out=out)
        assert max_error(out.get(), rgb_to_nv12_host(host)) <= 1
    after = convert._plan.cache_info()
    assert after.misses - before.misses <= 1 and after.hits - before.hits >= 2


@pytest.mark.gpu
def test_out_is_validated() -> None:
    cp = require_cupy()
    rgb = cp.zeros((4, 6, 3), dtype=cp.uint8)
    with pytest.raises(FrameError, match=r"out must be a uint8 CUDA array of shape \(6, 6\), got uint8 \(6, 8\)"):
        rgb_to_nv12(rgb, out=cp.empty((6, 8), dtype=cp.uint8))
    with pytest.raises(FrameError, match=r"got float32"):
        rgb_to_nv12(rgb, out=cp.empty((6, 6), dtype=cp.float32))
    with pytest.raises(FrameError, match=r"pixels of a row packed"):
        rgb_to_nv12(rgb, out=cp.empty((6, 12), dtype=cp.uint8)[:, ::2])
    with pytest.raises(FrameError, match=r"got a host NumPy array"):
        rgb_to_nv12(rgb, out=np.empty((6, 6), dtype=np.uint8))


@pytest.mark.gpu
def test_runs_on_the_given_stream() -> None:
    cp = require_cupy()
    host = host_image(480, 640)
    with cp.cuda.Stream(non_blocking=True) as stream:
        device = cp.asarray(host)
        out = cp.empty((720, 640), dtype=cp.uint8)
    rgb_to_nv12(device, out=out, stream=stream)
    stream.synchronize()
    assert max_error(out.get(stream=stream), rgb_to_nv12_host(host)) <= 1


@pytest.mark.gpu
def test_the_kernel_is_built_once() -> None:
    require_cupy()
    from rfb.gpu import convert

    assert convert._kernel() is convert._kernel()


@pytest.mark.gpu
def test_torch_input() -> None:
    cp = require_cupy()
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA device here")
    host = host_image(66, 98)
    wide = torch.zeros((66, 120, 3), dtype=torch.uint8, device="cuda")
    wide[:, 4:102] = torch.from_numpy(host).cuda()
    torch.cuda.synchronize()
    got = rgb_to_nv12(wide[:, 4:102])
    assert isinstance(got, cp.ndarray)
    assert max_error(got.get(), rgb_to_nv12_host(host)) <= 1


@pytest.mark.gpu
@pytest.mark.parametrize("fmt", ["rgb24", "rgba8", "nv12"])
def test_copies_back_with_padded_pitch(fmt: str) -> None:
    cp = require_cupy()
    if fmt == "nv12":
        host = rgb_to_nv12_host(host_image(66, 98))
        wide = cp.zeros((99, 160), dtype=cp.uint8)
        wide[:, :98] = cp.asarray(host)
        frame = cuda_frame(wide[:, :98])
        expected_rgb = nv12_to_rgb_host(host)
    else:
        host = host_image(66, 98, 3 if fmt == "rgb24" else 4)
        wide = cp.zeros((66, 160, host.shape[2]), dtype=cp.uint8)
        wide[:, 20:118] = cp.asarray(host)
        frame = cuda_frame(wide[:, 20:118])
        expected_rgb = host[..., :3]
    assert frame.pixel_format == fmt and frame.pitch == wide.strides[0]
    assert np.array_equal(copy_frame_to_host(frame), host)
    pinned = cp.cuda.alloc_pinned_memory(host.nbytes)
    out = np.frombuffer(pinned, np.uint8, host.size).reshape(host.shape)
    assert copy_frame_to_host(frame, out) is out and np.array_equal(out, host)
    assert np.array_equal(to_host_rgb(frame), expected_rgb)
    with pytest.raises(FrameError, match=r"out must be a C-contiguous uint8 array"):
        copy_frame_to_host(frame, np.empty((2, 2), dtype=np.uint8))


@pytest.mark.gpu
@pytest.mark.parametrize("fmt", ["rgb24", "rgba8", "nv12"])
def test_copies_up_and_across_into_a_padded_pitch(fmt: str) -> None:
    cp = require_cupy()
    host = rgb_to_nv12_host(host_image(66, 98)) if fmt == "nv12" else host_image(66, 98, 3 if fmt == "rgb24" else 4)
    source = frame_from_array(host, fmt)
    rows, row_bytes = host.shape[0], host[0].size

    def padded(pitch: int) -> RawFrame:
        storage = cp.zeros((rows, pitch), dtype=cp.uint8)
        view = storage[:, :row_bytes].reshape(host.shape)
        return cuda_frame(view, fmt)

    up = padded(row_bytes + 40)
    assert copy_frame_to_device(source, up) is up  # host -> device
    across = padded(row_bytes + 200)
    copy_frame_to_device(up, across)  # device -> device, pitch to pitch
    cp.cuda.get_current_stream().synchronize()
    assert np.array_equal(copy_frame_to_host(up), host) and np.array_equal(copy_frame_to_host(across), host)
