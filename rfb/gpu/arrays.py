"""What a CUDA array is made of (pointer, shape, byte strides, dtype, device), and the
validation that turns one into a ``RawFrame(memory="cuda")``.

Every framework speaks one of two protocols: ``__cuda_array_interface__`` (CuPy,
PyTorch, Numba, JAX on one device) or DLPack (``__dlpack__``/``__dlpack_device__``).
Reading them here, without importing any framework, lets rfb accept all of them,
validate a frame in the caller's stack, and hand encoders a plain pointer and pitch.

Rows may be padded (a pitch larger than the row), as a slice of a wider buffer or a
pitched allocation is; the pixels within a row must be packed, because every consumer
(the NV12 kernel, NVENC, a 2-D memcpy) addresses a row as one run of bytes.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

from rfb.frames import FrameError, PixelFormat, RawFrame

# DLPack device types that are CUDA memory the GPU can read directly.
_DL_CUDA, _DL_CUDA_MANAGED = 2, 13
_DL_DEVICE_NAMES = {1: "cpu", 2: "cuda", 3: "cuda_host", 4: "opencl", 7: "vulkan", 8: "metal", 10: "rocm", 13: "cuda_managed"}
# DLPack dtype codes -> NumPy kind letters (bfloat16 and friends have no NumPy name).
_DL_KINDS = {0: "i", 1: "u", 2: "f", 5: "c", 6: "b"}


@dataclass(frozen=True, slots=True)
class DeviceArray:
    """The memory layout of a CUDA array, framework-independent.

    ``strides`` are in bytes and always filled (C order when the producer left them
    out). ``device_id`` is None when the producer does not say (a bare CUDA array
    interface). ``owner`` keeps alive whatever the pointer belongs to (the array, or a
    DLPack capsule whose deleter runs when it is collected).
    """

    ptr: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: np.dtype
    device_id: int | None
    readonly: bool
    protocol: str  # "cuda_array_interface" or "dlpack"
    owner: Any = None
    stream: int | None = None  # the producer's stream (CUDA array interface v3), if it named one


def describe_device_array(obj: Any) -> DeviceArray:
    """Read the layout of a CUDA array through its CUDA array interface, else DLPack.

    Raises :class:`~rfb.frames.FrameError` naming what was expected when ``obj`` is
    not CUDA memory or its description is malformed.
    """
    if isinstance(obj, np.ndarray):
        raise FrameError("expected a CUDA array (CuPy, PyTorch, JAX...), got a host NumPy array")
    try:
        cai = obj.__cuda_array_interface__
    except AttributeError:
        cai = None
    except RuntimeError as exc:  # e.g. torch: "Can't get __cuda_array_interface__ on Variable that requires grad"
        raise FrameError(f"{_type_name(obj)} refused its CUDA array interface: {exc} (pass tensor.detach())") from exc
    if cai is not None:
        return _from_cai(obj, cai)
    if hasattr(obj, "__dlpack__"):
        return _from_dlpack(obj)
    raise FrameError(
        f"expected a CUDA array exposing __cuda_array_interface__ or __dlpack__ (CuPy, PyTorch, JAX), "
        f"got {_type_name(obj)}"
    )


def cuda_frame(
    array: Any,
    pixel_format: PixelFormat | str = "auto",
    *,
    device_id: int | None = None,
    timestamp_us: int | None = None,
) -> RawFrame:
    """Validate a CUDA array and describe it as a ``RawFrame(memory="cuda")``.

    ``(H, W, 3)`` is rgb24, ``(H, W, 4)`` is rgba8 and a 2-D ``(H + H/2, W)`` array is
    nv12 (the only 2-D layout rfb takes, so ``"auto"`` reads 2-D as nv12). The frame
    keeps ``array`` itself as its data, with the pitch read from the strides. The
    device is the one the array reports; ``device_id`` is used when it reports none
    (a bare CUDA array interface), and must agree with it otherwise.
    """
    if isinstance(array, RawFrame):
        raise FrameError("cuda_frame() takes a device array, got a RawFrame (it is already a frame)")
    info = describe_device_array(array)
    if info.dtype != np.uint8:
        raise FrameError(f"expected dtype uint8, got {info.dtype} (convert on the device, e.g. (x * 255).clip(0, 255).astype(uint8))")
    fmt, width, height = _layout(info.shape, pixel_format)
    pitch = row_pitch(info, fmt)
    if device_id is not None and info.device_id is not None and device_id != info.device_id:
        raise FrameError(f"device_id={device_id} was given but the array lives on CUDA device {info.device_id}")
    resolved = info.device_id if info.device_id is not None else (device_id if device_id is not None else 0)
    return RawFrame(array, width, height, fmt, "cuda", pitch=pitch, device_id=resolved, timestamp_us=timestamp_us)


def check_cuda_frame(frame: RawFrame) -> DeviceArray:
    """Check that a cuda RawFrame's data has the geometry the frame claims; its layout.

    A RawFrame built by hand is not validated against its data; anything that reads
    device memory through one (a kernel, a 2-D copy, NVENC) checks here first so that a
    wrong size or pitch is an error, not an out-of-bounds read.
    """
    if frame.memory != "cuda":
        raise FrameError(f"expected a cuda frame, got a {frame.memory} one")
    info = describe_device_array(frame.data)
    expected = host_shape(frame)
    if info.dtype != np.uint8 or info.shape != expected:
        raise FrameError(
            f"a {frame.width}x{frame.height} cuda {frame.pixel_format} frame needs uint8 data of shape {expected}, "
            f"got {info.dtype} {info.shape}"
        )
    pitch = row_pitch(info, frame.pixel_format)
    if frame.stride != pitch:
        raise FrameError(f"the frame says its rows are {frame.stride} bytes apart, its data's strides say {pitch}")
    return info


def host_shape(frame: RawFrame) -> tuple[int, ...]:
    """The packed array shape of a frame's layout: (H, W, 3), (H, W, 4) or (H + H/2, W)."""
    if frame.pixel_format == "nv12":
        return (frame.height + frame.height // 2, frame.width)
    return (frame.height, frame.width, 4 if frame.pixel_format == "rgba8" else 3)


def row_pitch(info: DeviceArray, pixel_format: str) -> int:
    """The row pitch in bytes of a validated frame layout; rows packed, pitch >= row."""
    channels = {"rgb24": 3, "rgba8": 4, "nv12": 1}[pixel_format]
    width = info.shape[1]
    inner = info.strides[1:]
    expected_inner = (channels, 1) if pixel_format != "nv12" else (1,)
    # A dimension of extent 1 may carry any stride; it never moves the address.
    packed = all(n == 1 or s == e for n, s, e in zip(info.shape[1:], inner, expected_inner))
    if not packed:
        raise FrameError(
            f"expected the pixels of a row packed (strides (pitch, {', '.join(map(str, expected_inner))})) "
            f"for {pixel_format}, got strides {info.strides} for shape {info.shape}; copy it "
            "contiguous on the device first (e.g. cupy.ascontiguousarray / tensor.contiguous())"
        )
    row_bytes = width * channels
    pitch = info.strides[0] if info.shape[0] > 1 else row_bytes
    if pitch < row_bytes:
        raise FrameError(
            f"expected a row pitch of at least {row_bytes} bytes ({width} px x {channels}) for {pixel_format}, "
            f"got {info.strides[0]} (strides {info.strides}); flipped or overlapping rows are not supported"
        )
    return pitch


def as_cupy(data: Any) -> Any:
    """``data`` as a CuPy array sharing its memory (zero copy): CuPy arrays pass as they are.

    Needs CuPy (see :func:`rfb.gpu.context.import_cupy`). CuPy honours the producer's
    stream named in a CUDA array interface v3 by synchronizing it.
    """
    from rfb.gpu.context import import_cupy

    cp = import_cupy()
    if isinstance(data, cp.ndarray):
        return data
    try:
        has_cai = hasattr(data, "__cuda_array_interface__")
    except RuntimeError as exc:
        raise FrameError(f"{_type_name(data)} refused its CUDA array interface: {exc}") from exc
    if has_cai:
        return cp.asarray(data)
    if hasattr(data, "__dlpack__"):
        return cp.from_dlpack(data)
    raise FrameError(f"expected a CUDA array exposing __cuda_array_interface__ or __dlpack__, got {_type_name(data)}")


def _layout(shape: tuple[int, ...], pixel_format: str) -> tuple[PixelFormat, int, int]:
    if pixel_format not in ("auto", "rgb24", "rgba8", "nv12"):
        raise FrameError(f"pixel_format must be 'auto', 'rgb24', 'rgba8' or 'nv12', got {pixel_format!r}")
    if len(shape) == 3 and shape[2] in (3, 4) and pixel_format != "nv12":
        fmt: PixelFormat = "rgb24" if shape[2] == 3 else "rgba8"
        if pixel_format not in ("auto", fmt):
            raise FrameError(f"expected {pixel_format} of shape (H, W, {4 if pixel_format == 'rgba8' else 3}), got {shape}")
        height, width = shape[0], shape[1]
    elif len(shape) == 2 and pixel_format in ("auto", "nv12"):
        fmt = "nv12"
        if shape[0] % 3:
            raise FrameError(f"expected nv12 as one (H + H/2, W) array (rows a multiple of 3), got shape {shape}")
        height, width = shape[0] * 2 // 3, shape[1]
        if height % 2 or width % 2:
            raise FrameError(f"nv12 needs even width and height, got {width}x{height} (array shape {shape})")
    else:
        wanted = {
            "auto": "(H, W, 3) rgb24, (H, W, 4) rgba8 or (H + H/2, W) nv12",
            "rgb24": "(H, W, 3)",
            "rgba8": "(H, W, 4)",
            "nv12": "(H + H/2, W)",
        }[pixel_format]
        raise FrameError(f"expected a uint8 CUDA array of shape {wanted}, got shape {shape}")
    if width <= 0 or height <= 0:
        raise FrameError(f"expected a non-empty frame, got shape {shape}")
    return fmt, width, height


def _from_cai(obj: Any, cai: Any) -> DeviceArray:
    if not isinstance(cai, dict):
        raise FrameError(f"__cuda_array_interface__ of {_type_name(obj)} must be a dict, got {type(cai).__name__}")
    try:
        shape = tuple(int(n) for n in cai["shape"])
        dtype = np.dtype(cai["typestr"])
        ptr, readonly = cai["data"]
    except (KeyError, TypeError, ValueError) as exc:
        raise FrameError(f"malformed __cuda_array_interface__ from {_type_name(obj)}: {exc!r} in {cai!r}") from exc
    if cai.get("mask") is not None:
        raise FrameError(f"masked CUDA arrays are not supported (got a mask from {_type_name(obj)})")
    strides = cai.get("strides")
    strides = _c_strides(shape, dtype.itemsize) if strides is None else tuple(int(s) for s in strides)
    if len(strides) != len(shape):
        raise FrameError(f"__cuda_array_interface__ strides {strides} do not match shape {shape}")
    stream = cai.get("stream")
    return DeviceArray(
        ptr=int(ptr or 0),
        shape=shape,
        strides=strides,
        dtype=dtype,
        device_id=_dlpack_device_id(obj),
        readonly=bool(readonly),
        protocol="cuda_array_interface",
        owner=obj,
        stream=int(stream) if stream is not None else None,
    )


def _dlpack_device_id(obj: Any) -> int | None:
    """The CUDA device ordinal from ``__dlpack_device__``, when the object has one."""
    dev = getattr(obj, "__dlpack_device__", None)
    if dev is None:
        return None
    try:
        dev_type, dev_id = dev()
    except (TypeError, ValueError, RuntimeError):
        return None
    return int(dev_id) if int(dev_type) in (_DL_CUDA, _DL_CUDA_MANAGED) else None


# DLPack's C structs (dlpack.h, unversioned capsule "dltensor"). DLManagedTensor starts
# with its DLTensor, so the capsule pointer is a DLTensor pointer.
class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", _DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


# Private prototypes of the C API functions: ``ctypes.pythonapi.X`` is one object shared
# by the whole process, and setting its argtypes here would change them for everyone.
_capsule_get_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi)
)
_capsule_is_valid = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_IsValid", ctypes.pythonapi)
)


def read_dlpack_capsule(capsule: Any) -> tuple[int, tuple[int, ...], tuple[int, ...], np.dtype, int, int]:
    """(pointer, shape, byte strides, dtype, device type, device id) of an unconsumed capsule.

    The capsule is only read, not consumed: its destructor still runs the producer's
    deleter, so whoever holds the capsule owns the memory reference.
    """
    if not _capsule_is_valid(capsule, b"dltensor"):
        raise FrameError(f"expected an unconsumed DLPack capsule named 'dltensor', got {capsule!r}")
    tensor = _DLTensor.from_address(_capsule_get_pointer(capsule, b"dltensor"))
    code, bits, lanes = tensor.dtype.code, tensor.dtype.bits, tensor.dtype.lanes
    if code not in _DL_KINDS or lanes != 1 or bits % 8:
        raise FrameError(f"unsupported DLPack dtype (code={code}, bits={bits}, lanes={lanes}); expected uint8")
    dtype = np.dtype(f"{_DL_KINDS[code]}{bits // 8}") if code != 6 else np.dtype(bool)
    ndim = tensor.ndim
    if ndim < 0 or (ndim and not tensor.shape):
        raise FrameError(f"malformed DLPack tensor: ndim={ndim} with shape pointer {'set' if tensor.shape else 'NULL'}")
    shape = tuple(int(tensor.shape[i]) for i in range(ndim))
    if tensor.strides:
        strides = tuple(int(tensor.strides[i]) * dtype.itemsize for i in range(ndim))
    else:
        strides = _c_strides(shape, dtype.itemsize)
    ptr = (tensor.data or 0) + int(tensor.byte_offset)
    return ptr, shape, strides, dtype, int(tensor.device.device_type), int(tensor.device.device_id)


def _from_dlpack(obj: Any) -> DeviceArray:
    dev = getattr(obj, "__dlpack_device__", None)
    if dev is not None:
        try:
            dev_type = int(dev()[0])
        except (TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise FrameError(f"{_type_name(obj)}.__dlpack_device__() failed: {exc}") from exc
        if dev_type not in (_DL_CUDA, _DL_CUDA_MANAGED):
            raise FrameError(
                f"expected a CUDA array, got a DLPack array on device "
                f"{_DL_DEVICE_NAMES.get(dev_type, dev_type)} ({_type_name(obj)})"
            )
    try:
        capsule = obj.__dlpack__()
    except (TypeError, ValueError, RuntimeError, BufferError) as exc:
        raise FrameError(f"{_type_name(obj)}.__dlpack__() failed: {exc}") from exc
    ptr, shape, strides, dtype, dev_type, dev_id = read_dlpack_capsule(capsule)
    if dev_type not in (_DL_CUDA, _DL_CUDA_MANAGED):
        raise FrameError(
            f"expected a CUDA array, got a DLPack tensor on device {_DL_DEVICE_NAMES.get(dev_type, dev_type)} "
            f"({_type_name(obj)})"
        )
    return DeviceArray(
        ptr=ptr,
        shape=shape,
        strides=strides,
        dtype=dtype,
        device_id=dev_id,
        readonly=False,
        protocol="dlpack",
        owner=(obj, capsule),
    )


def _c_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    strides = []
    step = itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _type_name(obj: Any) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"
