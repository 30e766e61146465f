"""DeviceStaging: what passes through untouched, what is staged, and into which buffers.

The choices (direct layouts, pitch alignment, device) are made before any GPU work and
run everywhere, on fake CUDA arrays; the staging itself runs where CuPy and a CUDA
device are (``-m gpu``). The NVENC routes' use of it is tested with them
(tests/encoders/test_nvenc_gpu_*.py), the adapter's in test_adapter.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from rfb.colorspace import rgb_to_nv12_host
from rfb.frames import FrameError, frame_from_array
from rfb.gpu import DeviceStaging, GpuUnavailable, copy_frame_to_host, cuda_frame
from rfb.gpu.staging import aligned_pitch
from tests.gpu import FakeCudaArray, require_cupy, skip_if_cupy_works


def fake_nv12(width: int, height: int, pitch: int, device: int | None = None) -> FakeCudaArray:
    return FakeCudaArray(np.zeros((height * 3 // 2, pitch), dtype=np.uint8)[:, :width], device=device)


def test_the_choices_are_checked() -> None:
    with pytest.raises(ValueError, match=r"direct must include 'nv12'"):
        DeviceStaging(("rgba8",))
    with pytest.raises(ValueError, match=r"'nv12' or 'rgb24' and one of direct \('nv12',\), got 'rgb24'"):
        DeviceStaging(("nv12",), target="rgb24")
    with pytest.raises(ValueError, match=r"pitch_alignment must be a positive number of bytes, got 0"):
        DeviceStaging(("nv12",), pitch_alignment=0)
    assert [aligned_pitch(n) for n in (1, 256, 257, 98 * 3)] == [256, 256, 512, 512] and aligned_pitch(7, 1) == 7


def test_direct_layouts_at_an_accepted_pitch_pass_through_without_a_gpu_library() -> None:
    any_pitch = DeviceStaging(("nv12", "rgb24"), target="rgb24", pitch_alignment=1, device_id=None)
    for frame in (cuda_frame(fake_nv12(6, 4, 6, device=1)), cuda_frame(FakeCudaArray(np.zeros((4, 6, 3), np.uint8)))):
        assert any_pitch.device_frame(frame) is frame
    nvenc = DeviceStaging(("nv12", "rgba8"))
    aligned = cuda_frame(fake_nv12(6, 4, 8))
    assert nvenc.device_frame(aligned) is aligned
    assert (nvenc.uploads, nvenc.conversions, nvenc.copies, nvenc.buffers) == (0, 0, 0, {})
    assert "uploads=0" in repr(nvenc) and "device=each frame's" in repr(any_pitch)


def test_the_device_is_checked_unless_it_follows_the_frames() -> None:
    on_one = cuda_frame(fake_nv12(6, 4, 8, device=1))
    with pytest.raises(FrameError, match=r"encoder runs on CUDA device 0, the frame lives on device 1"):
        DeviceStaging(("nv12",)).device_frame(on_one)
    assert DeviceStaging(("nv12",), device_id=None).device_frame(on_one) is on_one


def test_work_that_needs_cupy_says_so() -> None:
    skip_if_cupy_works()
    staging = DeviceStaging(("nv12",))
    for frame in (
        cuda_frame(fake_nv12(6, 4, 6)),  # a pitch NVENC refuses: copied
        cuda_frame(FakeCudaArray(np.zeros((4, 6, 3), np.uint8))),  # converted
        frame_from_array(np.zeros((4, 6, 3), np.uint8)),  # uploaded
    ):
        with pytest.raises(GpuUnavailable, match=r"CuPy"):
            staging.device_frame(frame)
    staging.close()
    with pytest.raises(RuntimeError, match="DeviceStaging is closed"):
        staging.device_frame(cuda_frame(fake_nv12(6, 4, 8)))


# -- on the GPU ---------------------------------------------------------------------------------


def scene(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


@pytest.mark.gpu
def test_rgba_is_packed_to_rgb24_on_the_device() -> None:
    cp = require_cupy()
    staging = DeviceStaging(("nv12", "rgb24"), target="rgb24", pitch_alignment=1, device_id=None)
    rgba = scene(66, 98, 4)
    staged = staging.device_frame(cuda_frame(cp.asarray(rgba)))
    assert (staged.pixel_format, staged.pitch, staging.conversions) == ("rgb24", 512, 1)  # 98 * 3 up to 256s
    assert np.array_equal(copy_frame_to_host(staged), rgba[..., :3])
    host = staging.device_frame(frame_from_array(rgba))  # uploaded as rgba8, then packed
    assert (staging.uploads, staging.conversions) == (1, 2) and np.array_equal(copy_frame_to_host(host), rgba[..., :3])
    assert sorted(staging.buffers) == ["rgb24", "rgba8"]
    staging.close()
    assert staging.buffers == {}


@pytest.mark.gpu
def test_buffers_are_reused_until_the_size_changes() -> None:
    cp = require_cupy()
    staging = DeviceStaging(("nv12", "rgba8"))
    first = staging.device_frame(cuda_frame(cp.asarray(scene(66, 98, 3, 0))))
    buffer = staging.buffers["nv12"]
    second = staging.device_frame(cuda_frame(cp.asarray(scene(66, 98, 3, 1))))
    assert second.data is buffer and first.data is buffer and second.pitch == aligned_pitch(98)
    assert int(np.abs(copy_frame_to_host(second).astype(int) - rgb_to_nv12_host(scene(66, 98, 3, 1))).max()) <= 1
    staging.device_frame(cuda_frame(cp.asarray(scene(48, 64, 3))))
    assert staging.buffers["nv12"] is not buffer and staging.buffers["nv12"].shape == (72, 64)
    packed = cp.zeros((99, 98), dtype=cp.uint8)  # a pitch of 98: not a multiple of 4
    copied = staging.device_frame(cuda_frame(packed))
    assert (staging.copies, copied.pitch % 4) == (1, 0)
    staging.close()
