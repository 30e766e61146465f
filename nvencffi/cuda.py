"""The CUDA context NVENC encodes in: the device's primary context.

NVENC's CUDA interface takes a ``CUcontext`` when the session is opened, and input
pointers must belong to that context. CuPy, PyTorch and JAX all allocate in the
device's *primary* context, so we retain that one (never create our own), push it
around every NVENC call, and release it on close.

``set_context_flags`` lets an application choose blocking synchronization (the CPU
sleeps instead of spinning while it waits for the GPU) before anything activates the
primary context; afterwards the flags cannot change, and it says so by returning False.

The context also answers what the encoder must know about a frame's memory before
NVENC sees it (:class:`PointerInfo`, from ``cuPointerGetAttributes``: which device and
context, whether it comes from a stream-ordered pool, which allocation it is), and does
the little memory work the encoder's staging needs (allocate, 2-D copy, fill, free).

``NullContext`` stands in for CUDA where there is none: it is only useful with the NVENC
emulator reading host memory (the test suite), never with a real driver. It takes an
optional attribute source, so tests can say what a pointer would be (the emulator's
``pointer_info``).

cuda-python (``cuda.bindings.driver``) is imported on first use only; without it, the
error says what to install.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from nvencffi.errors import CudaError, CudaUnavailable

INSTALL_HINT = "pip install cuda-python"

# CUmemorytype values (cuda.h), and what PointerInfo.kind calls them.
MEMORY_KINDS = {1: "host", 2: "device", 3: "array", 4: "managed"}


@dataclass(frozen=True, slots=True)
class PointerInfo:
    """What CUDA says about the allocation behind a pointer.

    ``kind``: "device", "host", "managed", "array", or "unknown" (not CUDA memory).
    ``context``: the CUcontext it was allocated in, 0 when none is reported (memory of a
    stream-ordered pool has none). ``mempool``: it comes from a stream-ordered pool
    (``CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE`` is not NULL: CuPy's MemoryAsyncPool,
    PyTorch's cudaMallocAsync backend, RMM's async resource), which NVENC cannot
    register. ``buffer_id``: ``CU_POINTER_ATTRIBUTE_BUFFER_ID``, unique per allocation
    for the life of the process, so a new allocation at a reused address is told apart.
    ``start``/``size``: the allocation's address range.
    """

    kind: str
    device: int | None
    context: int
    mempool: bool
    buffer_id: int
    start: int
    size: int

    @classmethod
    def from_mapping(cls, info: Mapping[str, Any]) -> PointerInfo:
        """From a dict with these keys (what the emulator's ``pointer_info`` returns)."""
        device = info.get("device")
        return cls(
            kind=str(info.get("kind", "device")),
            device=None if device is None else int(device),
            context=int(info.get("context") or 0),
            mempool=bool(info.get("mempool")),
            buffer_id=int(info.get("buffer_id") or 0),
            start=int(info.get("start") or 0),
            size=int(info.get("size") or 0),
        )


class EncodeContext(Protocol):
    """What an encoder needs from a CUDA context (see PrimaryContext, NullContext).

    ``copy_2d`` runs with the context current (the encoder pushes it); the other memory
    methods push it themselves.
    """

    handle: int  # the CUcontext as an integer (0 for NullContext)
    device: int
    gpu_name: str | None

    def pushed(self) -> Any: ...  # a context manager: current on this thread inside

    def synchronize_stream(self, stream: int) -> None: ...

    def pointer_info(self, pointer: int) -> PointerInfo | None: ...  # None: cannot tell

    def buffer_id(self, pointer: int) -> int | None: ...  # the allocation's id, None: cannot tell

    def allocate(self, nbytes: int) -> int: ...

    def free(self, pointer: int) -> None: ...

    def memset(self, pointer: int, value: int, nbytes: int) -> None: ...

    def copy_2d(
        self, dst: int, dst_pitch: int, src: int, src_pitch: int, row_bytes: int, rows: int, stream: int | None
    ) -> None: ...

    def close(self) -> None: ...


def _driver() -> Any:
    try:
        from cuda.bindings import driver
    except ImportError as exc:
        raise CudaUnavailable(
            f"cuda-python is not installed ({exc}); NVENC's CUDA interface needs it: {INSTALL_HINT}"
        ) from None
    try:
        (err,) = driver.cuInit(0)
    except RuntimeError as exc:  # cuda.pathfinder: libcuda.so.1 not found (no NVIDIA driver)
        raise CudaUnavailable(f"no CUDA driver on this machine: {exc}") from None
    _check(driver, err, "cuInit")
    return driver


def _check(driver: Any, err: Any, function: str) -> None:
    if err != driver.CUresult.CUDA_SUCCESS:
        _, name = driver.cuGetErrorName(err)
        label = name.decode() if isinstance(name, bytes) else str(err)
        raise CudaUnavailable(f"{function} failed: {label}")


def _check_call(driver: Any, err: Any, function: str) -> None:
    """Like _check, for calls made while encoding: a CudaError, not "unavailable"."""
    if err != driver.CUresult.CUDA_SUCCESS:
        _, name = driver.cuGetErrorName(err)
        label = name.decode() if isinstance(name, bytes) else str(err)
        raise CudaError(function, label, int(err))


def _int(value: Any) -> int:
    """A CUDA handle, pointer or enum returned by cuda-python as an int (None: 0)."""
    return 0 if value is None else int(value)


def _device(driver: Any, ordinal: int) -> Any:
    err, count = driver.cuDeviceGetCount()
    _check(driver, err, "cuDeviceGetCount")
    if not 0 <= ordinal < count:
        raise CudaUnavailable(f"CUDA device {ordinal} requested; this machine has {count} CUDA device(s)")
    err, device = driver.cuDeviceGet(ordinal)
    _check(driver, err, "cuDeviceGet")
    return device


# The primary context's CPU wait modes set_context_flags(schedule=...) can ask for.
SCHEDULES = {
    "auto": "CU_CTX_SCHED_AUTO",  # the driver's default: spin while contexts <= cores, else yield
    "spin": "CU_CTX_SCHED_SPIN",
    "yield": "CU_CTX_SCHED_YIELD",
    "blocking": "CU_CTX_SCHED_BLOCKING_SYNC",
}


def set_context_flags(device: int = 0, *, blocking_sync: bool | None = None, schedule: str | None = None) -> bool:
    """Choose the primary context's CPU wait mode, if it is not active yet.

    ``blocking_sync`` picks ``CU_CTX_SCHED_BLOCKING_SYNC`` (True) or the driver's
    default ``CU_CTX_SCHED_AUTO`` (False); ``schedule`` (one of :data:`SCHEDULES`:
    ``"auto"``, ``"spin"``, ``"yield"``, ``"blocking"``) names any of the modes. Give
    one or the other (ValueError for both); with neither, ``CU_CTX_SCHED_BLOCKING_SYNC``.
    Returns True when the primary context's flags now hold the requested scheduling
    mode, False when the context was already active with another mode (the flags of an
    active context cannot change; call this before CuPy/PyTorch/JAX touch the device).
    """
    if schedule is None:
        schedule = "auto" if blocking_sync is False else "blocking"
    elif blocking_sync is not None:
        raise ValueError(
            f"expected blocking_sync or schedule, not both; got blocking_sync={blocking_sync!r} "
            f"and schedule={schedule!r}"
        )
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
    driver = _driver()
    dev = _device(driver, device)
    flags_enum = driver.CUctx_flags
    wanted = int(getattr(flags_enum, SCHEDULES[schedule]))
    sched_mask = int(flags_enum.CU_CTX_SCHED_MASK)
    err, flags, active = driver.cuDevicePrimaryCtxGetState(dev)
    _check(driver, err, "cuDevicePrimaryCtxGetState")
    if (int(flags) & sched_mask) == wanted:
        return True
    if active:
        return False
    (err,) = driver.cuDevicePrimaryCtxSetFlags(dev, (int(flags) & ~sched_mask) | wanted)
    _check(driver, err, "cuDevicePrimaryCtxSetFlags")
    return True


class _Pushed:
    """Reusable push/pop of one context (a class, not a generator: it is per-frame)."""

    __slots__ = ("_driver", "_context")

    def __init__(self, driver: Any, context: Any) -> None:
        self._driver = driver
        self._context = context

    def __enter__(self) -> None:
        (err,) = self._driver.cuCtxPushCurrent(self._context)
        _check(self._driver, err, "cuCtxPushCurrent")

    def __exit__(self, *exc: object) -> None:
        err, _ = self._driver.cuCtxPopCurrent()
        _check(self._driver, err, "cuCtxPopCurrent")


class _NoPush:
    """A context manager that does nothing: the context is current already (or there is none)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_ALREADY_CURRENT = _NoPush()


class PrimaryContext:
    """A retained reference to one device's primary context; ``close()`` releases it."""

    def __init__(self, device: int = 0) -> None:
        driver = _driver()
        self.device = device
        self._driver = driver
        self._dev = _device(driver, device)
        err, name = driver.cuDeviceGetName(256, self._dev)
        _check(driver, err, "cuDeviceGetName")
        self.gpu_name: str | None = name.split(b"\0", 1)[0].decode(errors="replace")
        err, context = driver.cuDevicePrimaryCtxRetain(self._dev)
        _check(driver, err, "cuDevicePrimaryCtxRetain")
        self._context = context
        self.handle = int(context)
        self._push = _Pushed(driver, context)
        attribute = driver.CUpointer_attribute
        self._attributes = [
            attribute.CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
            attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
            attribute.CU_POINTER_ATTRIBUTE_CONTEXT,
            attribute.CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE,
            attribute.CU_POINTER_ATTRIBUTE_BUFFER_ID,
            attribute.CU_POINTER_ATTRIBUTE_RANGE_START_ADDR,
            attribute.CU_POINTER_ATTRIBUTE_RANGE_SIZE,
        ]
        self._buffer_id_attribute = attribute.CU_POINTER_ATTRIBUTE_BUFFER_ID
        self._released = False

    def pushed(self) -> _Pushed | _NoPush:
        """A context manager making this context current on the calling thread.

        Where it is current already (the framework that allocated the frame made it so,
        or an outer block pushed it) nothing is pushed or popped: one ``cuCtxGetCurrent``
        costs less than a push and a pop (docs/performance.md, "Host overhead"). The
        answer is the calling thread's, decided on each call, so the returned managers
        hold no state and nest.
        """
        _, current = self._driver.cuCtxGetCurrent()
        if current == self._context:  # CUcontext compares by handle; a failed call pushes (and raises there)
            return _ALREADY_CURRENT
        return self._push

    def synchronize_stream(self, stream: int) -> None:
        """Wait for ``stream`` (a CUstream as an integer) to finish its queued work."""
        driver = self._driver
        with self.pushed():
            (err,) = driver.cuStreamSynchronize(driver.CUstream(stream))
        _check(driver, err, "cuStreamSynchronize")

    def pointer_info(self, pointer: int) -> PointerInfo:
        """``cuPointerGetAttributes`` of ``pointer`` (one call, seven attributes).

        Memory CUDA does not know comes back as kind "unknown" (that call reports NULL
        attributes rather than failing for it).
        """
        driver = self._driver
        with self._push:
            err, values = driver.cuPointerGetAttributes(len(self._attributes), self._attributes, pointer)
        _check_call(driver, err, "cuPointerGetAttributes")
        memory_type, ordinal, context, pool, buffer_id, start, size = values
        kind = MEMORY_KINDS.get(_int(memory_type), "unknown")
        return PointerInfo(
            kind=kind,
            device=None if kind == "unknown" else _int(ordinal),
            context=_int(context),
            mempool=_int(pool) != 0,
            buffer_id=_int(buffer_id),
            start=_int(start),
            size=_int(size),
        )

    def buffer_id(self, pointer: int) -> int | None:
        """``CU_POINTER_ATTRIBUTE_BUFFER_ID`` alone (the per-frame check, made with this
        context already current: no push of its own); None if CUDA does not know the
        pointer (freed)."""
        err, value = self._driver.cuPointerGetAttribute(self._buffer_id_attribute, pointer)
        if err != self._driver.CUresult.CUDA_SUCCESS:
            return None
        return _int(value)

    def allocate(self, nbytes: int) -> int:
        """``cuMemAlloc`` in this context (not from a pool: NVENC can register it)."""
        driver = self._driver
        with self._push:
            err, pointer = driver.cuMemAlloc(nbytes)
        _check_call(driver, err, "cuMemAlloc")
        return _int(pointer)

    def free(self, pointer: int) -> None:
        driver = self._driver
        with self._push:
            (err,) = driver.cuMemFree(driver.CUdeviceptr(pointer))
        _check_call(driver, err, "cuMemFree")

    def memset(self, pointer: int, value: int, nbytes: int) -> None:
        driver = self._driver
        with self._push:
            (err,) = driver.cuMemsetD8(driver.CUdeviceptr(pointer), value, nbytes)
        _check_call(driver, err, "cuMemsetD8")

    def copy_2d(
        self, dst: int, dst_pitch: int, src: int, src_pitch: int, row_bytes: int, rows: int, stream: int | None
    ) -> None:
        """``cuMemcpy2DAsync`` device to device, queued on ``stream`` (None: the NULL stream).

        The source is addressed as unified memory, so any CUDA allocation of this device
        (another context's, a pool's) is read.
        """
        driver = self._driver
        copy = driver.CUDA_MEMCPY2D()
        copy.srcMemoryType = driver.CUmemorytype.CU_MEMORYTYPE_UNIFIED
        copy.srcDevice = driver.CUdeviceptr(src)
        copy.srcPitch = src_pitch
        copy.dstMemoryType = driver.CUmemorytype.CU_MEMORYTYPE_DEVICE
        copy.dstDevice = driver.CUdeviceptr(dst)
        copy.dstPitch = dst_pitch
        copy.WidthInBytes = row_bytes
        copy.Height = rows
        (err,) = driver.cuMemcpy2DAsync(copy, driver.CUstream(stream or 0))
        _check_call(driver, err, "cuMemcpy2DAsync")

    def close(self) -> None:
        """Release the retained primary context (idempotent)."""
        if self._released:
            return
        self._released = True
        (err,) = self._driver.cuDevicePrimaryCtxRelease(self._dev)
        _check(self._driver, err, "cuDevicePrimaryCtxRelease")

    def __repr__(self) -> str:
        return f"<nvencffi.PrimaryContext device={self.device} {self.gpu_name!r} handle=0x{self.handle:x}>"


PointerSource = Callable[[int], "Mapping[str, Any] | None"]


class NullContext:
    """No CUDA at all: the session is opened with a NULL device.

    Test-only: valid solely with the NVENC emulator, which then reads frames from host
    memory. A real driver rejects a NULL CUDA context.

    ``attributes`` answers for ``cuPointerGetAttributes``, which needs CUDA: a callable
    taking a pointer and returning None (nothing known: the pointer is taken as it is)
    or a mapping with :class:`PointerInfo`'s fields (the emulator's ``pointer_info``).
    Memory the encoder allocates (its staging) is host memory, 256-byte aligned.
    """

    handle = 0
    gpu_name: str | None = None
    _push = _NoPush()

    def __init__(self, *, device: int = 0, attributes: PointerSource | None = None) -> None:
        self.device = device
        self._attributes = attributes
        self._allocations: dict[int, Any] = {}

    def pushed(self) -> _NoPush:
        return self._push

    def synchronize_stream(self, stream: int) -> None:
        return None

    def pointer_info(self, pointer: int) -> PointerInfo | None:
        if self._attributes is None:
            return None
        info = self._attributes(pointer)
        return None if info is None else PointerInfo.from_mapping(info)

    def buffer_id(self, pointer: int) -> int | None:
        if self._attributes is None:
            return None
        info = self._attributes(pointer)
        return None if info is None else int(info.get("buffer_id") or 0)

    def allocate(self, nbytes: int) -> int:
        block = ctypes.create_string_buffer(nbytes + 255)
        pointer = (ctypes.addressof(block) + 255) & ~255
        self._allocations[pointer] = block
        return pointer

    def free(self, pointer: int) -> None:
        if self._allocations.pop(pointer, None) is None:
            raise CudaError("cuMemFree", "CUDA_ERROR_INVALID_VALUE", 1)

    @property
    def allocations(self) -> int:
        """How many allocations are live (tests check that the encoder freed its own)."""
        return len(self._allocations)

    def memset(self, pointer: int, value: int, nbytes: int) -> None:
        ctypes.memset(pointer, value, nbytes)

    def copy_2d(
        self, dst: int, dst_pitch: int, src: int, src_pitch: int, row_bytes: int, rows: int, stream: int | None
    ) -> None:
        if dst_pitch == src_pitch == row_bytes:
            ctypes.memmove(dst, src, row_bytes * rows)
            return
        for row in range(rows):
            ctypes.memmove(dst + row * dst_pitch, src + row * src_pitch, row_bytes)

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return "<nvencffi.NullContext (no CUDA; emulator only)>"
