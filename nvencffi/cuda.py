"""The CUDA context NVENC encodes in: the device's primary context.

NVENC's CUDA interface takes a ``CUcontext`` when the session is opened, and input
pointers must belong to that context. CuPy, PyTorch and JAX all allocate in the
device's *primary* context, so we retain that one (never create our own), push it
around every NVENC call, and release it on close.

``set_context_flags`` lets an application choose blocking synchronization (the CPU
sleeps instead of spinning while it waits for the GPU) before anything activates the
primary context; afterwards the flags cannot change, and it says so by returning False.

``NullContext`` stands in for CUDA where there is none: it is only useful with the NVENC
emulator reading host memory (the test suite), never with a real driver.

cuda-python (``cuda.bindings.driver``) is imported on first use only.
"""

from __future__ import annotations

from typing import Any, Protocol

from nvencffi.errors import CudaUnavailable


class EncodeContext(Protocol):
    """What an encoder needs from a CUDA context (see PrimaryContext, NullContext)."""

    handle: int  # the CUcontext as an integer (0 for NullContext)
    gpu_name: str | None

    def pushed(self) -> Any: ...  # a context manager: current on this thread inside

    def synchronize_stream(self, stream: int) -> None: ...

    def close(self) -> None: ...


def _driver() -> Any:
    try:
        from cuda.bindings import driver
    except ImportError as exc:
        raise CudaUnavailable(f"cuda-python is not installed ({exc}); pip install cuda-python") from None
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


def _device(driver: Any, ordinal: int) -> Any:
    err, count = driver.cuDeviceGetCount()
    _check(driver, err, "cuDeviceGetCount")
    if not 0 <= ordinal < count:
        raise CudaUnavailable(f"CUDA device {ordinal} requested; this machine has {count} CUDA device(s)")
    err, device = driver.cuDeviceGet(ordinal)
    _check(driver, err, "cuDeviceGet")
    return device


def set_context_flags(device: int = 0, *, blocking_sync: bool = True) -> bool:
    """Choose the primary context's CPU wait mode, if it is not active yet.

    Returns True when the primary context's flags now hold the requested scheduling
    mode, False when the context was already active with another mode (the flags of an
    active context cannot change; call this before CuPy/PyTorch/JAX touch the device).
    """
    driver = _driver()
    dev = _device(driver, device)
    flags_enum = driver.CUctx_flags
    wanted = int(flags_enum.CU_CTX_SCHED_BLOCKING_SYNC if blocking_sync else flags_enum.CU_CTX_SCHED_AUTO)
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
        self._released = False

    def pushed(self) -> _Pushed:
        """A context manager making this context current on the calling thread."""
        return self._push

    def synchronize_stream(self, stream: int) -> None:
        """Wait for ``stream`` (a CUstream as an integer) to finish its queued work."""
        driver = self._driver
        with self._push:
            (err,) = driver.cuStreamSynchronize(driver.CUstream(stream))
        _check(driver, err, "cuStreamSynchronize")

    def close(self) -> None:
        """Release the retained primary context (idempotent)."""
        if self._released:
            return
        self._released = True
        (err,) = self._driver.cuDevicePrimaryCtxRelease(self._dev)
        _check(self._driver, err, "cuDevicePrimaryCtxRelease")

    def __repr__(self) -> str:
        return f"<nvencffi.PrimaryContext device={self.device} {self.gpu_name!r} handle=0x{self.handle:x}>"


class _NoPush:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class NullContext:
    """No CUDA at all: the session is opened with a NULL device.

    Test-only: valid solely with the NVENC emulator, which then reads frames from host
    memory. A real driver rejects a NULL CUDA context.
    """

    handle = 0
    gpu_name: str | None = None
    _push = _NoPush()

    def pushed(self) -> _NoPush:
        return self._push

    def synchronize_stream(self, stream: int) -> None:
        return None

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return "<nvencffi.NullContext (no CUDA; emulator only)>"
