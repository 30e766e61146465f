"""rfb.frames: RawFrame and the validation at publish() (frame_from_array)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rfb.frames import FrameError, RawFrame, frame_from_array


class FakeCudaArray:
    """Anything with __cuda_array_interface__ counts as device memory."""

    __cuda_array_interface__: ClassVar[dict[str, object]] = {
        "shape": (4, 4, 3),
        "typestr": "|u1",
        "data": (0, False),
        "version": 3,
    }


class FakeDlpackCuda:
    def __dlpack__(self) -> None:  # pragma: no cover - never called
        raise AssertionError

    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, 0)  # kDLCUDA


class FakeDlpackCpu(FakeDlpackCuda):
    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # kDLCPU


def test_rgb24_and_rgba8_are_recognised_by_shape() -> None:
    rgb = np.zeros((48, 64, 3), np.uint8)
    f = frame_from_array(rgb, timestamp_us=123)
    assert (f.width, f.height, f.pixel_format, f.memory) == (64, 48, "rgb24", "cpu")
    assert f.data is rgb  # no copy
    assert f.size == (64, 48) and f.row_bytes == 192 and f.stride == 192 and f.timestamp_us == 123
    g = frame_from_array(np.zeros((48, 64, 4), np.uint8))
    assert g.pixel_format == "rgba8" and g.row_bytes == 256


def test_nv12_needs_to_be_named_and_gives_plane_views() -> None:
    nv12 = np.arange(72 * 64, dtype=np.uint32).astype(np.uint8).reshape(72, 64)
    f = frame_from_array(nv12, "nv12")
    assert (f.width, f.height, f.pixel_format, f.row_bytes) == (64, 48, "nv12", 64)
    y, uv = f.nv12_planes()
    assert y.shape == (48, 64) and uv.shape == (24, 32, 2)
    assert np.shares_memory(y, nv12) and np.shares_memory(uv, nv12)
    assert uv[0, 0, 0] == nv12[48, 0] and uv[0, 0, 1] == nv12[48, 1] and uv[1, 3, 1] == nv12[49, 7]
    with pytest.raises(FrameError, match=r"expected shape \(H, W, 3\) for rgb24 .* got \(72, 64\)"):
        frame_from_array(nv12)  # 2-D is only nv12 when asked for


def test_nv12_planes_only_for_host_nv12() -> None:
    with pytest.raises(FrameError, match="needs a cpu nv12 frame, got cpu rgb24"):
        frame_from_array(np.zeros((4, 4, 3), np.uint8)).nv12_planes()


@pytest.mark.parametrize(
    ("array", "fmt", "message"),
    [
        (np.zeros((4, 4, 3), np.float32), None, r"expected dtype uint8, got float32 \(convert with"),
        (np.zeros((4, 4, 2), np.uint8), None, r"got \(4, 4, 2\)"),
        (np.zeros((4, 4), np.uint8), None, r"got \(4, 4\)"),
        (np.zeros((4, 4, 3), np.uint8)[:, ::2], None, r"expected a C-contiguous array, got strides"),
        (np.zeros((4, 4, 4), np.uint8), "rgb24", r"expected rgb24 of shape \(4, 4, 3\), got \(4, 4, 4\)"),
        (np.zeros((4, 4, 3), np.uint8), "rgba8", r"expected rgba8 of shape \(4, 4, 4\), got \(4, 4, 3\)"),
        (np.zeros((7, 4), np.uint8), "nv12", r"expected nv12 as one \(H \+ H/2, W\) uint8 array, got shape \(7, 4\)"),
        (np.zeros((6, 4, 1), np.uint8), "nv12", r"got shape \(6, 4, 1\)"),
        (np.zeros((6, 5), np.uint8), "nv12", r"nv12 needs even width and height, got 5x4"),
        (np.zeros((0, 4, 3), np.uint8), None, r"height must be a positive integer, got 0"),
        (np.zeros((4, 4, 3), np.uint8), "bgr24", r"pixel_format must be one of \('rgb24', .*\), got 'bgr24'"),
    ],
)
def test_bad_arrays_say_what_was_expected(array: np.ndarray, fmt: str | None, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        frame_from_array(array, fmt)  # type: ignore[arg-type]


def test_non_arrays_are_rejected() -> None:
    with pytest.raises(FrameError, match="got list"):
        frame_from_array([[1, 2, 3]])
    with pytest.raises(FrameError, match="got FakeDlpackCpu"):
        frame_from_array(FakeDlpackCpu())


@pytest.mark.parametrize("device_array", [FakeCudaArray(), FakeDlpackCuda()])
def test_device_arrays_point_to_the_gpu_wrappers(device_array: object) -> None:
    with pytest.raises(FrameError, match=r"got a CUDA array .*rfb\.gpu\.cuda_frame"):
        frame_from_array(device_array)


def test_raw_frames_pass_through_and_host_ones_are_rechecked() -> None:
    good = RawFrame(np.zeros((4, 6, 3), np.uint8), 6, 4)
    assert frame_from_array(good) is good
    cuda = RawFrame(FakeCudaArray(), 4, 4, "rgb24", "cuda", pitch=16)
    assert frame_from_array(cuda) is cuda  # device frames are validated by rfb.gpu
    assert cuda.stride == 16 and cuda.row_bytes == 12
    with pytest.raises(FrameError, match=r"expected rgb24 of shape \(5, 6, 3\), got \(4, 6, 3\)"):
        frame_from_array(RawFrame(np.zeros((4, 6, 3), np.uint8), 6, 5))
    with pytest.raises(FrameError, match="needs a NumPy array as data, got bytes"):
        frame_from_array(RawFrame(b"\x00" * 72, 6, 4))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pixel_format": "yuv420p"}, r"pixel_format must be one of .* got 'yuv420p'"),
        ({"memory": "gpu"}, r"memory must be one of \('cpu', 'cuda'\), got 'gpu'"),
        ({"width": 0}, r"width must be a positive integer, got 0 \(int\)"),
        ({"height": -1}, r"height must be a positive integer, got -1 \(int\)"),
        ({"width": 6.0}, r"width must be a positive integer, got 6.0 \(float\)"),
    ],
)
def test_raw_frame_checks_its_fields(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"data": None, "width": 6, "height": 4, **kwargs}
    with pytest.raises(FrameError, match=message):
        RawFrame(**fields)  # type: ignore[arg-type]


def test_raw_frame_is_immutable_and_compares_without_timestamp() -> None:
    data = np.zeros((4, 6, 3), np.uint8)
    a = RawFrame(data, 6, 4, timestamp_us=1)
    b = RawFrame(data, 6, 4, timestamp_us=2)
    assert a == b
    with pytest.raises(AttributeError):
        a.width = 8  # type: ignore[misc]


def test_frame_error_is_a_value_error() -> None:
    assert issubclass(FrameError, ValueError)


@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.sampled_from(["rgb24", "rgba8", "nv12"]),
)
def test_any_valid_geometry_round_trips(width: int, height: int, fmt: str) -> None:
    if fmt == "nv12":
        width, height = 2 * width, 2 * height
        array = np.zeros((height + height // 2, width), np.uint8)
    else:
        array = np.zeros((height, width, 3 if fmt == "rgb24" else 4), np.uint8)
    frame = frame_from_array(array, fmt)  # type: ignore[arg-type]
    assert (frame.width, frame.height, frame.pixel_format) == (width, height, fmt)
    assert frame_from_array(frame) is frame


def test_numpy_integer_sizes_are_accepted_as_ints() -> None:
    arr = np.zeros((4, 6, 3), np.uint8)
    frame = RawFrame(arr, np.int64(6), np.int32(4))
    assert (frame.width, frame.height) == (6, 4)
    assert type(frame.width) is int and type(frame.height) is int


@pytest.mark.parametrize("bad", [True, 2.0, "4", 0, -2])
def test_bad_sizes_name_the_dimension(bad: object) -> None:
    with pytest.raises(FrameError, match="width must be a positive integer"):
        RawFrame(np.zeros((4, 6, 3), np.uint8), bad, 4)  # type: ignore[arg-type]


def test_timestamp_is_applied_to_a_raw_frame() -> None:
    frame = RawFrame(np.zeros((4, 6, 3), np.uint8), 6, 4)
    assert frame_from_array(frame, timestamp_us=123).timestamp_us == 123
    assert frame_from_array(frame).timestamp_us is None
