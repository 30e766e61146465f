"""What a CUDA array is made of (pointer, shape, byte strides, dtype, device), and the
validation that turns one into a ``RawFrame(memory="cuda")``.

Every framework speaks one of two protocols: ``__cuda_array_interface__`` (CuPy,
PyTorch, Numba, JAX on one device) or DLPack (``__dlpack__``/``__dlpack_device__``).
Reading them here, without importing any framework, lets rfb accept all of them,
validate a frame in the caller's stack, and hand encoders a plain pointer and pitch.

The protocols themselves are read by ``nvencffi.frames.read_cuda_array`` (the binding
needs the same facts and must not import rfb, so the reader lives there); this module
turns what it reads into rfb's :class:`DeviceArray` and :class:`~rfb.frames.FrameError`
s, and validates frames. nvencffi is imported on the first call, not with ``rfb.gpu``.

Rows may be padded (a pitch larger than the row), as a slice of a wider buffer or a
pitched allocation is; the pixels within a row must be packed, because every consumer
(the NV12 kernel, NVENC, a 2-D memcpy) addresses a row as one run of bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rfb.frames import FrameError, PixelFormat, RawFrame

if TYPE_CHECKING:
    from nvencffi.frames import CudaArrayInfo

# DLPack device types that are CUDA memory the GPU can read directly (kDLCUDA, kDLCUDAManaged).
_CUDA_DEVICE_TYPES = (2, 13)


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
    from nvencffi import frames as nvf

    try:
        info = nvf.read_cuda_array(obj, dlpack_devices=_CUDA_DEVICE_TYPES)
    except nvf.ArrayInterfaceError as exc:
        raise FrameError(str(exc)) from exc
    if info is None:
        raise FrameError(
            f"expected a CUDA array exposing __cuda_array_interface__ or __dlpack__ (CuPy, PyTorch, JAX), "
            f"got {nvf.type_name(obj)}"
        )
    dtype = _numpy_dtype(info)
    if info.protocol == nvf.DLPACK and info.device_type not in _CUDA_DEVICE_TYPES:
        raise FrameError(
            f"expected a CUDA array, got a DLPack tensor on device {info.device_name} ({nvf.type_name(obj)})"
        )
    return DeviceArray(
        ptr=info.pointer,
        shape=info.shape,
        strides=info.byte_strides,
        dtype=dtype,
        device_id=info.device_id,
        readonly=info.readonly,
        protocol=info.protocol,
        owner=info.owner,
        stream=info.stream,
    )


def read_dlpack_capsule(capsule: Any) -> tuple[int, tuple[int, ...], tuple[int, ...], np.dtype, int, int]:
    """(pointer, shape, byte strides, dtype, device type, device id) of an unconsumed capsule.

    The capsule is only read, not consumed: its destructor still runs the producer's
    deleter, so whoever holds the capsule owns the memory reference.
    """
    from nvencffi import frames as nvf

    try:
        info = nvf.read_dlpack_capsule(capsule)
    except nvf.ArrayInterfaceError as exc:
        raise FrameError(str(exc)) from exc
    dtype = _numpy_dtype(info)
    return info.pointer, info.shape, info.byte_strides, dtype, info.device_type, info.device_id or 0


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
        raise FrameError(
            f"expected dtype uint8, got {info.dtype} (convert on the device, e.g. (x * 255).clip(0, 255).astype(uint8))"
        )
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
    packed = all(n == 1 or s == e for n, s, e in zip(info.shape[1:], inner, expected_inner, strict=True))
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
    from nvencffi.frames import type_name

    try:
        has_cai = hasattr(data, "__cuda_array_interface__")
    except RuntimeError as exc:
        raise FrameError(f"{type_name(data)} refused its CUDA array interface: {exc}") from exc
    if has_cai:
        return cp.asarray(data)
    if hasattr(data, "__dlpack__"):
        return cp.from_dlpack(data)
    raise FrameError(f"expected a CUDA array exposing __cuda_array_interface__ or __dlpack__, got {type_name(data)}")


def _layout(shape: tuple[int, ...], pixel_format: str) -> tuple[PixelFormat, int, int]:
    if pixel_format not in ("auto", "rgb24", "rgba8", "nv12"):
        raise FrameError(f"pixel_format must be 'auto', 'rgb24', 'rgba8' or 'nv12', got {pixel_format!r}")
    if len(shape) == 3 and shape[2] in (3, 4) and pixel_format != "nv12":
        fmt: PixelFormat = "rgb24" if shape[2] == 3 else "rgba8"
        if pixel_format not in ("auto", fmt):
            raise FrameError(
                f"expected {pixel_format} of shape (H, W, {4 if pixel_format == 'rgba8' else 3}), got {shape}"
            )
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


def _numpy_dtype(info: CudaArrayInfo) -> np.dtype:
    """The NumPy dtype of what was read; FrameError for a type NumPy cannot name."""
    if info.typestr is None:
        code, bits, lanes = info.dlpack_dtype or (None, None, None)
        raise FrameError(f"unsupported DLPack dtype (code={code}, bits={bits}, lanes={lanes}); expected uint8")
    try:
        return np.dtype(info.typestr)
    except TypeError as exc:
        raise FrameError(
            f"malformed __cuda_array_interface__: typestr {info.typestr!r} is not a NumPy type ({exc})"
        ) from exc


_CAI_LEGACY_STREAM = 1  # how a CUDA array interface v3 names the legacy default stream


def frame_stream(info: DeviceArray) -> int:
    """The CUDA stream (as a ``cudaStream_t`` integer) a frame's pixels are ready on.

    The stream a CUDA array interface v3 names (CuPy, PyTorch); the legacy default
    stream (0) when it names none or names the legacy stream by its alias 1.
    """
    stream = info.stream
    if stream is None or stream == _CAI_LEGACY_STREAM:
        return 0
    return stream  # 2 (the per-thread default stream) is a valid handle too


def cupy_stream(cp: Any, stream: int) -> Any:
    """A CuPy stream object for a raw stream handle, to make current with ``with`` (0: CuPy's null stream).

    Work queued inside runs after what the frame's producer queued on that stream, and
    before anything queued there later: no host synchronisation needed.
    """
    return cp.cuda.Stream.null if stream == 0 else cp.cuda.ExternalStream(stream)
