"""Reading a caller's GPU frame without copying it: pointer, pitch, size, format.

NVENC registers the caller's own device allocation (zero copy), so all we need is the
address, the row pitch and the layout, taken from the array's
``__cuda_array_interface__`` (CuPy, PyTorch, Numba; v2 and v3) or, failing that, its
``__dlpack__`` capsule (JAX and any array-API library), parsed with cffi. No framework is
imported.

Two layouts are accepted, both uint8:

- NV12 as ONE allocation of shape ``(H + H/2, W)``: the luma rows, then the interleaved
  chroma rows (so the chroma plane starts at ``ptr + pitch * H``). Any row pitch that is
  a multiple of 4 and at least ``W`` (strides ``(pitch, 1)``).
- RGBA8 as ``(H, W, 4)``, bytes R, G, B, A in memory order, i.e. NVENC's
  ``NV_ENC_BUFFER_FORMAT_ABGR`` (a little-endian 32-bit word with R in the low byte);
  strides ``(pitch, 4, 1)``. NVENC converts it to YUV on the engine.

Anything else is rejected with a ``FrameLayoutError`` naming the expected layout and
what arrived.
"""

from __future__ import annotations

import ctypes
from typing import Any

from nvencffi._api import enum_value

NV12 = enum_value("NV_ENC_BUFFER_FORMAT", "NV_ENC_BUFFER_FORMAT_NV12")
ABGR = enum_value("NV_ENC_BUFFER_FORMAT", "NV_ENC_BUFFER_FORMAT_ABGR")

FORMAT_NAMES = {NV12: "nv12", ABGR: "rgba8 (NV_ENC_BUFFER_FORMAT_ABGR)"}

EXPECTED = (
    "expected a CUDA array (__cuda_array_interface__ or a CUDA __dlpack__) of uint8, either "
    "NV12 as one (H + H/2, W) allocation with a row pitch that is a multiple of 4, "
    "or RGBA8 as (H, W, 4) with strides (pitch, 4, 1); H and W even"
)

# DLPack device types (dlpack.h)
_DL_DEVICE_NAMES = {1: "cpu", 2: "cuda", 3: "cuda_host", 4: "opencl", 7: "vulkan", 8: "metal",
                    9: "vpi", 10: "rocm", 11: "rocm_host", 13: "cuda_managed", 14: "oneapi"}
_KDL_CUDA = 2
_UINT8_TYPESTRS = frozenset(("|u1", "<u1", ">u1", "u1"))
_KDL_UINT = 1


class FrameLayoutError(ValueError):
    """The frame is not a layout NVENC can take directly; the message says what arrived."""


class FrameView:
    """Where a frame lives and how it is laid out; borrowed, valid while the array is.

    ``key`` is the registration-cache key: one NVENC registration describes exactly
    (pointer, pitch, width, height, buffer format).
    """

    __slots__ = ("pointer", "pitch", "width", "height", "buffer_format", "stream", "key")

    def __init__(self, pointer: int, pitch: int, width: int, height: int, buffer_format: int, stream: int | None) -> None:
        self.pointer = pointer
        self.pitch = pitch
        self.width = width
        self.height = height
        self.buffer_format = buffer_format
        self.stream = stream
        self.key = (pointer, pitch, width, height, buffer_format)

    def __repr__(self) -> str:
        return (f"FrameView({FORMAT_NAMES[self.buffer_format]} {self.width}x{self.height} "
                f"ptr=0x{self.pointer:x} pitch={self.pitch})")


def _describe(shape: Any, dtype: Any, strides: Any, device: str) -> str:
    return f"got shape={tuple(shape) if shape is not None else None}, dtype={dtype}, strides={strides}, device={device}"


def _layout(shape: tuple[int, ...], strides: tuple[int, ...] | None, describe: Any) -> tuple[int, int, int, int]:
    """(width, height, pitch, format) from a uint8 shape and byte strides (None: C order).

    ``describe()`` words what arrived; it is only called to build an error message.
    """
    if len(shape) == 2:
        rows, width = shape
        if rows % 3 or width <= 0 or rows <= 0:
            raise FrameLayoutError(f"{EXPECTED}; a 2-D array is read as NV12 but its row count {rows} is not H + H/2; {describe()}")
        height = rows * 2 // 3
        if strides is None:
            pitch = width
        elif len(strides) == 2 and strides[1] == 1:
            pitch = strides[0]
        else:
            raise FrameLayoutError(f"{EXPECTED}; NV12 rows must be contiguous bytes (strides (pitch, 1)); {describe()}")
        fmt = NV12
        min_pitch = width
    elif len(shape) == 3 and shape[2] == 4:
        height, width, _ = shape
        if strides is None:
            pitch = width * 4
        elif len(strides) == 3 and strides[1] == 4 and strides[2] == 1:
            pitch = strides[0]
        else:
            raise FrameLayoutError(f"{EXPECTED}; RGBA8 pixels must be packed (strides (pitch, 4, 1)); {describe()}")
        fmt = ABGR
        min_pitch = width * 4
    else:
        raise FrameLayoutError(f"{EXPECTED}; {describe()}")
    if height <= 0 or width <= 0 or height % 2 or width % 2:
        raise FrameLayoutError(f"{EXPECTED}; the frame is {width}x{height}, which is not even in both dimensions; {describe()}")
    if pitch < min_pitch:
        raise FrameLayoutError(f"{EXPECTED}; the row pitch {pitch} is smaller than a row ({min_pitch} bytes); {describe()}")
    if pitch % 4:
        raise FrameLayoutError(f"{EXPECTED}; the row pitch {pitch} is not a multiple of 4 (NVENC requires it); {describe()}")
    return width, height, pitch, fmt


def _from_cai(iface: dict[str, Any]) -> FrameView:
    shape = tuple(iface.get("shape", ()))
    typestr = iface.get("typestr")
    strides = iface.get("strides")
    strides = tuple(strides) if strides is not None else None

    def got() -> str:
        return _describe(shape, typestr, strides, "cuda (__cuda_array_interface__)")

    if typestr not in _UINT8_TYPESTRS:
        raise FrameLayoutError(f"{EXPECTED}; {got()}")
    if iface.get("mask") is not None:
        raise FrameLayoutError(f"{EXPECTED}; masked arrays are not supported; {got()}")
    width, height, pitch, fmt = _layout(shape, strides, got)
    pointer = int(iface["data"][0])
    if pointer == 0:
        raise FrameLayoutError(f"{EXPECTED}; the array's data pointer is NULL; {got()}")
    stream = iface.get("stream")
    return FrameView(pointer, pitch, width, height, fmt, int(stream) if stream is not None else None)


_DLPACK_CDEF = """
typedef struct { int32_t device_type; int32_t device_id; } DLDevice;
typedef struct { uint8_t code; uint8_t bits; uint16_t lanes; } DLDataType;
typedef struct {
    void *data; DLDevice device; int32_t ndim; DLDataType dtype;
    int64_t *shape; int64_t *strides; uint64_t byte_offset;
} DLTensor;
"""
_dlpack_ffi: Any = None
_capsule_pointer: Any = None


def _dlpack_tools() -> tuple[Any, Any]:
    global _dlpack_ffi, _capsule_pointer
    if _dlpack_ffi is None:
        from cffi import FFI

        dl = FFI()
        dl.cdef(_DLPACK_CDEF)
        get = ctypes.pythonapi.PyCapsule_GetPointer
        get.restype = ctypes.c_void_p
        get.argtypes = [ctypes.py_object, ctypes.c_char_p]
        _dlpack_ffi, _capsule_pointer = dl, get
    return _dlpack_ffi, _capsule_pointer


def _from_dlpack(obj: Any, stream: int | None) -> FrameView:
    dl, get_pointer = _dlpack_tools()
    capsule = obj.__dlpack__() if stream is None else obj.__dlpack__(stream=stream)
    # A DLManagedTensor starts with its DLTensor. We only read it; the capsule keeps its
    # name, so its destructor returns the tensor to the producer when it is collected.
    tensor = dl.cast("DLTensor *", get_pointer(capsule, b"dltensor"))
    ndim = tensor.ndim
    shape = tuple(tensor.shape[i] for i in range(ndim))
    dtype = tensor.dtype
    dtype_name = f"dlpack(code={dtype.code}, bits={dtype.bits}, lanes={dtype.lanes})"
    if dtype.code == _KDL_UINT and dtype.bits == 8 and dtype.lanes == 1:
        dtype_name = "uint8"
    strides = None if tensor.strides == dl.NULL else tuple(tensor.strides[i] for i in range(ndim))  # in elements = bytes for uint8
    device = _DL_DEVICE_NAMES.get(tensor.device.device_type, f"dlpack device type {tensor.device.device_type}")

    def got() -> str:
        return _describe(shape, dtype_name, strides, device)

    if dtype_name != "uint8":
        raise FrameLayoutError(f"{EXPECTED}; {got()}")
    if tensor.device.device_type != _KDL_CUDA:
        raise FrameLayoutError(f"{EXPECTED}; the array is not in CUDA device memory; {got()}")
    width, height, pitch, fmt = _layout(shape, strides, got)
    pointer = int(dl.cast("uintptr_t", tensor.data)) + int(tensor.byte_offset)
    if pointer == 0:
        raise FrameLayoutError(f"{EXPECTED}; the array's data pointer is NULL; {got()}")
    return FrameView(pointer, pitch, width, height, fmt, None)


def parse_frame(obj: Any, *, dlpack_stream: int | None = None) -> FrameView:
    """The :class:`FrameView` of a CUDA array; ``FrameLayoutError`` if it cannot be one."""
    iface = getattr(obj, "__cuda_array_interface__", None)
    if iface is not None:
        return _from_cai(iface)
    if hasattr(obj, "__dlpack__"):
        return _from_dlpack(obj, dlpack_stream)
    shape = getattr(obj, "shape", None)
    dtype = getattr(obj, "dtype", None)
    strides = getattr(obj, "strides", None)
    kind = type(obj).__module__ + "." + type(obj).__qualname__
    raise FrameLayoutError(f"{EXPECTED}; {_describe(shape, dtype, strides, f'not a CUDA array ({kind})')}")
