"""DLPack capsules built by hand, for tests of the code that reads them.

The structs are written here from ``dlpack.h`` (v0.8, the unversioned ``"dltensor"``
capsule), independently of the declarations ``nvencffi`` and ``rfb.gpu`` parse with, so
that a mistake in theirs cannot hide behind the same mistake here.

Why the private prototypes: ``ctypes.pythonapi.PyCapsule_New`` is ONE function object
shared by the whole process, so setting its ``argtypes`` in one test module changes it
for every other (two modules once set it differently, and whichever loaded last broke
the other). The prototypes below are fresh function objects bound to the same C
functions; nothing global is touched.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

# dlpack.h: DLDeviceType and DLDataTypeCode values the tests use.
KDL_CPU, KDL_CUDA = 1, 2
KDL_INT, KDL_UINT, KDL_FLOAT, KDL_BFLOAT = 0, 1, 2, 4


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


_capsule_new = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(
    ("PyCapsule_New", ctypes.pythonapi)
)
_capsule_set_name = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_void_p)(
    ("PyCapsule_SetName", ctypes.pythonapi)
)

# A capsule keeps a pointer to its name, never a copy: the names live as long as the module.
_NAMES: dict[bytes, ctypes.Array[ctypes.c_char]] = {}


def _name(name: bytes) -> int:
    buffer = _NAMES.get(name)
    if buffer is None:
        buffer = _NAMES[name] = ctypes.create_string_buffer(name)
    return ctypes.addressof(buffer)


def new_capsule(managed: DLManagedTensor, name: bytes = b"dltensor") -> Any:
    """A capsule named ``name`` pointing at ``managed`` (no destructor: the caller owns it)."""
    return _capsule_new(ctypes.addressof(managed), _name(name), None)


def rename_capsule(capsule: Any, name: bytes) -> None:
    """Rename a capsule, as a consumer does when it takes the tensor (``"used_dltensor"``)."""
    if _capsule_set_name(capsule, _name(name)) != 0:
        raise RuntimeError(f"PyCapsule_SetName failed for {capsule!r}")


class FakeDLPack:
    """An array that speaks only DLPack (no CUDA array interface), claiming any device.

    ``data`` is the address the tensor names (never dereferenced here); ``strides`` are
    in elements, as DLPack has them (None: compact row-major). Each ``__dlpack__`` call
    hands out a new capsule over the same tensor and records its keyword arguments in
    ``calls``. ``__dlpack_device__`` says ``device``, as every real producer does.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        strides: tuple[int, ...] | None = None,
        *,
        data: int = 0x7F00_0000_0000,
        device: tuple[int, int] = (KDL_CUDA, 0),
        dtype: tuple[int, int] = (KDL_UINT, 8),
        byte_offset: int = 0,
        owner: Any = None,
    ) -> None:
        n = len(shape)
        self.owner = owner  # whatever ``data`` points into, kept alive with the producer
        self.device = device
        self.calls: list[dict[str, Any]] = []
        self._shape = (ctypes.c_int64 * n)(*shape)
        self._strides = (ctypes.c_int64 * n)(*strides) if strides is not None else None
        self._managed = DLManagedTensor()
        t = self._managed.dl_tensor
        t.data, t.device, t.ndim = data, DLDevice(*device), n
        t.dtype = DLDataType(dtype[0], dtype[1], 1)
        t.shape = ctypes.cast(self._shape, ctypes.POINTER(ctypes.c_int64))
        t.strides = ctypes.cast(self._strides, ctypes.POINTER(ctypes.c_int64)) if self._strides is not None else None
        t.byte_offset = byte_offset

    @classmethod
    def over(
        cls,
        array: np.ndarray,
        *,
        device_type: int = KDL_CUDA,
        dtype: tuple[int, int] = (KDL_UINT, 8),
        strides: tuple[int, ...] | None = None,
        byte_offset: int = 0,
    ) -> FakeDLPack:
        """A producer exporting ``array``'s host memory as if it lived on ``device_type``.

        The tensor's ``data`` is ``byte_offset`` bytes before the array, so that
        ``data + byte_offset`` (what a reader must compute) is the array's first byte.
        """
        return cls(
            tuple(array.shape),
            strides,
            data=array.ctypes.data - byte_offset,
            device=(device_type, 0),
            dtype=dtype,
            byte_offset=byte_offset,
            owner=array,
        )

    def __dlpack__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return new_capsule(self._managed)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.device
