"""CUDA array introspection and cuda_frame() validation, on fake CUDA arrays (host memory
described through the CUDA array interface or a hand-built DLPack capsule): the
layout logic runs without a GPU; nothing here touches device memory."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rfb.frames import FrameError, RawFrame
from rfb.gpu.arrays import check_cuda_frame, cuda_frame, describe_device_array, host_shape, read_dlpack_capsule
from tests.gpu import FakeCudaArray
from tests.support.dlpack import KDL_BFLOAT, KDL_CPU, KDL_CUDA, KDL_FLOAT, FakeDLPack, rename_capsule


def fake(shape: tuple[int, ...], **kwargs: Any) -> FakeCudaArray:
    return FakeCudaArray(np.zeros(shape, dtype=np.uint8), **kwargs)


# -- the CUDA array interface ------------------------------------------------------


def test_rgb24_packed() -> None:
    array = fake((4, 6, 3))
    frame = cuda_frame(array, timestamp_us=7)
    assert frame == RawFrame(array, 6, 4, "rgb24", "cuda", pitch=18, device_id=0)
    assert frame.data is array and frame.timestamp_us == 7 and frame.stride == 18


def test_rgba8_and_nv12_are_recognised() -> None:
    rgba = cuda_frame(fake((4, 6, 4)))
    assert (rgba.pixel_format, rgba.width, rgba.height, rgba.pitch) == ("rgba8", 6, 4, 24)
    array = fake((6, 8))
    nv12 = cuda_frame(array)
    assert (nv12.pixel_format, nv12.width, nv12.height, nv12.pitch) == ("nv12", 8, 4, 8)
    assert cuda_frame(array, "nv12") == nv12


def test_producer_without_strides_is_c_contiguous() -> None:
    frame = cuda_frame(fake((4, 6, 3), strides=None))
    assert frame.pitch == 18
    assert describe_device_array(fake((4, 6, 3), strides=None)).strides == (18, 3, 1)


def test_padded_rows_give_the_pitch() -> None:
    wide = np.zeros((4, 10, 3), dtype=np.uint8)
    frame = cuda_frame(FakeCudaArray(wide[:, 2:8]))
    assert (frame.width, frame.height, frame.pitch, frame.row_bytes) == (6, 4, 30, 18)
    nv12 = cuda_frame(FakeCudaArray(np.zeros((6, 64), dtype=np.uint8)[:, :8]))
    assert (nv12.width, nv12.height, nv12.pitch) == (8, 4, 64)


def test_height_one_ignores_the_row_stride() -> None:
    frame = cuda_frame(fake((1, 6, 3), strides=(0, 3, 1)))
    assert frame.pitch == 18


def test_describe_reports_pointer_and_flags() -> None:
    host = np.zeros((4, 6, 3), dtype=np.uint8)
    info = describe_device_array(FakeCudaArray(host[1:], readonly=True, stream=5))
    assert info.ptr == host[1:].ctypes.data == host.ctypes.data + 18
    assert info.shape == (3, 6, 3) and info.strides == (18, 3, 1)
    assert info.dtype == np.uint8 and info.readonly and info.stream == 5
    assert info.protocol == "cuda_array_interface" and info.device_id is None


def test_pixels_within_a_row_must_be_packed() -> None:
    every_other = np.zeros((4, 12, 3), dtype=np.uint8)[:, ::2]
    with pytest.raises(
        FrameError, match=r"pixels of a row packed \(strides \(pitch, 3, 1\)\) for rgb24, got strides \(36, 6, 1\)"
    ):
        cuda_frame(FakeCudaArray(every_other))
    rgb_of_rgba = np.zeros((4, 6, 4), dtype=np.uint8)[..., :3]
    with pytest.raises(FrameError, match=r"got strides \(24, 4, 1\) for shape \(4, 6, 3\)"):
        cuda_frame(FakeCudaArray(rgb_of_rgba))
    fortran = np.asfortranarray(np.zeros((6, 8), dtype=np.uint8))
    with pytest.raises(FrameError, match=r"for nv12, got strides \(1, 6\)"):
        cuda_frame(FakeCudaArray(fortran))


def test_flipped_rows_are_refused() -> None:
    flipped = np.zeros((4, 6, 3), dtype=np.uint8)[::-1]
    with pytest.raises(FrameError, match=r"row pitch of at least 18 bytes .* got -18"):
        cuda_frame(FakeCudaArray(flipped))


def test_dtype_must_be_uint8() -> None:
    with pytest.raises(FrameError, match=r"expected dtype uint8, got float32"):
        cuda_frame(FakeCudaArray(np.zeros((4, 6, 3), dtype=np.float32)))


@pytest.mark.parametrize(
    ("shape", "fmt", "message"),
    [
        (
            (4, 6, 2),
            "auto",
            r"shape \(H, W, 3\) rgb24, \(H, W, 4\) rgba8 or \(H \+ H/2, W\) nv12, got shape \(4, 6, 2\)",
        ),
        ((4, 6, 3), "rgba8", r"expected rgba8 of shape \(H, W, 4\), got \(4, 6, 3\)"),
        ((4, 6, 4), "rgb24", r"expected rgb24 of shape \(H, W, 3\), got \(4, 6, 4\)"),
        ((6, 8), "rgb24", r"shape \(H, W, 3\), got shape \(6, 8\)"),
        ((4, 6, 3), "nv12", r"shape \(H \+ H/2, W\), got shape \(4, 6, 3\)"),
        ((5, 8), "auto", r"rows a multiple of 3\), got shape \(5, 8\)"),
        ((6, 7), "nv12", r"even width and height, got 7x4"),
        ((0, 6, 3), "auto", r"non-empty frame, got shape \(0, 6, 3\)"),
        ((4, 6, 3), "bgr24", r"pixel_format must be 'auto', 'rgb24', 'rgba8' or 'nv12', got 'bgr24'"),
        ((2, 2, 2, 3), "auto", r"got shape \(2, 2, 2, 3\)"),
    ],
)
def test_layout_errors_name_expected_and_got(shape: tuple[int, ...], fmt: str, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        cuda_frame(fake(shape), fmt)


def test_device_id_comes_from_the_array() -> None:
    assert cuda_frame(fake((4, 6, 3), device=1)).device_id == 1
    assert cuda_frame(fake((4, 6, 3), device=1), device_id=1).device_id == 1
    with pytest.raises(FrameError, match=r"device_id=0 was given but the array lives on CUDA device 1"):
        cuda_frame(fake((4, 6, 3), device=1), device_id=0)
    assert cuda_frame(fake((4, 6, 3)), device_id=3).device_id == 3  # the array does not say


def test_not_a_cuda_array() -> None:
    with pytest.raises(FrameError, match=r"expected a CUDA array .* got a host NumPy array"):
        cuda_frame(np.zeros((4, 6, 3), dtype=np.uint8))
    with pytest.raises(FrameError, match=r"__cuda_array_interface__ or __dlpack__ .* got builtins.list"):
        cuda_frame([[1, 2]])
    frame = cuda_frame(fake((4, 6, 3)))
    with pytest.raises(FrameError, match=r"got a RawFrame"):
        cuda_frame(frame)


def test_framework_refusal_becomes_a_frame_error() -> None:
    class RequiresGrad:
        @property
        def __cuda_array_interface__(self) -> dict[str, Any]:
            raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires grad.")

    with pytest.raises(FrameError, match=r"refused its CUDA array interface: Can't get .* \(pass tensor.detach\(\)\)"):
        cuda_frame(RequiresGrad())


def test_malformed_interfaces() -> None:
    with pytest.raises(FrameError, match=r"masked CUDA arrays are not supported"):
        cuda_frame(fake((4, 6, 3), mask=object()))
    broken = fake((4, 6, 3))
    del broken.__cuda_array_interface__["typestr"]
    with pytest.raises(FrameError, match=r"malformed __cuda_array_interface__ .*'typestr'"):
        cuda_frame(broken)
    with pytest.raises(FrameError, match=r"strides \(3, 1\) do not match shape \(4, 6, 3\)"):
        cuda_frame(fake((4, 6, 3), strides=(3, 1)))


# -- DLPack ------------------------------------------------------------------------


def test_reads_a_real_capsule() -> None:
    base = np.zeros((8, 20), dtype=np.uint8)
    view = base[1:7, 2:16:2]
    ptr, shape, strides, dtype, dev_type, dev_id = read_dlpack_capsule(view.__dlpack__())
    assert (ptr, shape, strides, dtype) == (view.ctypes.data, (6, 7), (20, 2), np.uint8)
    assert (dev_type, dev_id) == (1, 0)  # kDLCPU
    wide = np.zeros((3, 4), dtype=np.int32)
    assert read_dlpack_capsule(wide.__dlpack__())[1:4] == ((3, 4), (16, 4), np.int32)


def test_dlpack_only_cuda_array() -> None:
    array = FakeDLPack((4, 6, 3), (30, 3, 1), device=(KDL_CUDA, 1), byte_offset=6)
    info = describe_device_array(array)
    assert info.protocol == "dlpack" and info.device_id == 1
    assert info.ptr == 0x7F00_0000_0000 + 6 and info.strides == (30, 3, 1)
    frame = cuda_frame(array)
    assert (frame.pixel_format, frame.width, frame.height, frame.pitch, frame.device_id) == ("rgb24", 6, 4, 30, 1)
    packed = cuda_frame(FakeDLPack((6, 8)))  # no strides: compact row-major
    assert (packed.pixel_format, packed.pitch) == ("nv12", 8)


def test_dlpack_on_the_host_is_refused() -> None:
    with pytest.raises(FrameError, match=r"expected a CUDA array, got a DLPack array on device cpu"):
        cuda_frame(FakeDLPack((4, 6, 3), device=(KDL_CPU, 0)))

    class Lies(FakeDLPack):  # the device call says CUDA, the tensor says host
        def __dlpack_device__(self) -> tuple[int, int]:
            return (KDL_CUDA, 0)

    with pytest.raises(FrameError, match=r"got a DLPack tensor on device cpu"):
        cuda_frame(Lies((4, 6, 3), device=(KDL_CPU, 0)))


def test_dlpack_dtypes() -> None:
    with pytest.raises(FrameError, match=r"expected dtype uint8, got float32"):
        cuda_frame(FakeDLPack((4, 6, 3), dtype=(KDL_FLOAT, 32)))
    with pytest.raises(FrameError, match=r"unsupported DLPack dtype \(code=4, bits=16"):
        cuda_frame(FakeDLPack((4, 6, 3), dtype=(KDL_BFLOAT, 16)))


def test_consumed_capsule_is_refused() -> None:
    capsule = np.zeros(3, dtype=np.uint8).__dlpack__()
    rename_capsule(capsule, b"used_dltensor")
    with pytest.raises(FrameError, match=r"unconsumed DLPack capsule"):
        read_dlpack_capsule(capsule)
    rename_capsule(capsule, b"dltensor")  # so that NumPy's destructor frees the tensor
    del capsule


def test_capsules_do_not_depend_on_global_ctypes_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another module's argtypes on the shared ``ctypes.pythonapi`` functions change nothing here."""
    import ctypes

    for name in ("PyCapsule_New", "PyCapsule_GetPointer", "PyCapsule_IsValid", "PyCapsule_SetName"):
        monkeypatch.setattr(getattr(ctypes.pythonapi, name), "argtypes", [ctypes.c_double])
    info = describe_device_array(FakeDLPack((6, 8), device=(KDL_CUDA, 0)))
    assert (info.shape, info.ptr) == ((6, 8), 0x7F00_0000_0000)
    capsule = np.zeros(3, dtype=np.uint8).__dlpack__()
    rename_capsule(capsule, b"used_dltensor")
    with pytest.raises(FrameError, match=r"unconsumed DLPack capsule"):
        read_dlpack_capsule(capsule)
    rename_capsule(capsule, b"dltensor")


# -- frames built by hand ------------------------------------------------------------


def test_check_cuda_frame_catches_lies() -> None:
    array = fake((4, 6, 3))
    assert check_cuda_frame(RawFrame(array, 6, 4, "rgb24", "cuda")).shape == (4, 6, 3)
    with pytest.raises(
        FrameError, match=r"8x4 cuda rgb24 frame needs uint8 data of shape \(4, 8, 3\), got uint8 \(4, 6, 3\)"
    ):
        check_cuda_frame(RawFrame(array, 8, 4, "rgb24", "cuda"))
    with pytest.raises(FrameError, match=r"rows are 24 bytes apart, its data's strides say 18"):
        check_cuda_frame(RawFrame(array, 6, 4, "rgb24", "cuda", pitch=24))
    with pytest.raises(FrameError, match=r"expected a cuda frame, got a cpu one"):
        check_cuda_frame(RawFrame(np.zeros((4, 6, 3), dtype=np.uint8), 6, 4))


def test_host_shape() -> None:
    assert host_shape(RawFrame(None, 6, 4, "nv12", "cuda")) == (6, 6)
    assert host_shape(RawFrame(None, 6, 4, "rgba8", "cuda")) == (4, 6, 4)
    assert host_shape(RawFrame(None, 6, 4, "rgb24", "cuda")) == (4, 6, 3)


# -- real frameworks, on the GPU ------------------------------------------------------------


def _host(height: int = 66, width: int = 98, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, (height, width, channels), dtype=np.uint8)


@pytest.mark.gpu
def test_cupy_arrays() -> None:
    from rfb.gpu import to_host_rgb
    from tests.gpu import require_cupy

    cp = require_cupy()
    host = _host(channels=4)
    wide = cp.zeros((66, 128, 4), dtype=cp.uint8)
    wide[:, 8:106] = cp.asarray(host)
    view = wide[:, 8:106]
    frame = cuda_frame(view)
    assert (frame.pixel_format, frame.width, frame.height, frame.pitch) == ("rgba8", 98, 66, 512)
    assert frame.device_id == view.device.id and frame.data is view
    info = describe_device_array(view)
    assert info.ptr == view.data.ptr and info.protocol == "cuda_array_interface"
    assert np.array_equal(to_host_rgb(frame), host[..., :3])


@pytest.mark.gpu
def test_dlpack_only_wrapper_of_a_cupy_array() -> None:
    from rfb.gpu import to_host_rgb
    from tests.gpu import require_cupy

    cp = require_cupy()

    class OnlyDLPack:
        def __init__(self, array: Any) -> None:
            self._array = array

        def __dlpack__(self, **kwargs: Any) -> Any:
            return self._array.__dlpack__(**kwargs)

        def __dlpack_device__(self) -> tuple[int, int]:
            return self._array.__dlpack_device__()

    host = _host()
    device = cp.asarray(host)
    wrapped = OnlyDLPack(device)
    info = describe_device_array(wrapped)
    assert info.protocol == "dlpack" and info.ptr == device.data.ptr and info.device_id == device.device.id
    frame = cuda_frame(wrapped)
    assert (frame.pixel_format, frame.pitch) == ("rgb24", 98 * 3)
    assert np.array_equal(to_host_rgb(frame), host)


@pytest.mark.gpu
def test_torch_tensors() -> None:
    from rfb.gpu import to_host_rgb
    from tests.gpu import require_cupy

    require_cupy()
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA device here")
    host = _host()
    wide = torch.zeros((66, 110, 3), dtype=torch.uint8, device="cuda")
    wide[:, 2:100] = torch.from_numpy(host).cuda()
    view = wide[:, 2:100]
    frame = cuda_frame(view)
    assert (frame.pixel_format, frame.width, frame.height, frame.pitch) == ("rgb24", 98, 66, 330)
    assert frame.device_id == view.device.index
    assert describe_device_array(view).ptr == view.data_ptr()
    assert np.array_equal(to_host_rgb(frame), host)
    nv12 = torch.zeros((99, 98), dtype=torch.uint8, device="cuda")
    assert cuda_frame(nv12).pixel_format == "nv12"
    with pytest.raises(FrameError, match=r"expected dtype uint8, got float32"):
        cuda_frame(torch.zeros((66, 98, 3), dtype=torch.float32, device="cuda"))
    with pytest.raises(FrameError, match=r"pixels of a row packed"):
        cuda_frame(torch.zeros((66, 98, 3), dtype=torch.uint8, device="cuda").transpose(0, 1))


@pytest.mark.gpu
def test_jax_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    from rfb.gpu import to_host_rgb
    from tests.gpu import require_cupy

    require_cupy()
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave the GPU to the other tests
    jax = pytest.importorskip("jax")
    try:
        gpus = jax.devices("gpu")
    except RuntimeError as exc:
        pytest.skip(f"JAX has no GPU backend here: {exc}")
    host = _host(channels=4)
    array = jax.device_put(host, gpus[0])
    array.block_until_ready()
    frame = cuda_frame(array)
    assert (frame.pixel_format, frame.width, frame.height, frame.pitch) == ("rgba8", 98, 66, 392)
    assert frame.device_id == getattr(gpus[0], "local_hardware_id", gpus[0].id)
    assert np.array_equal(to_host_rgb(frame), host[..., :3])
