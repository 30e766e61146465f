"""The CUDA context nvJPEG runs in, and the page-locked buffer the JPEG bytes land in.

nvJPEG links its own copy of the CUDA runtime, which works in whatever context is
current on the calling thread. CuPy, PyTorch and JAX allocate in the device's *primary*
context, so that is the one we make current around every nvJPEG call: a frame rendered
by any of them is then readable by nvJPEG with no copy, and a CUDA stream handle they
give us belongs to the same context.

The context object is nvencffi's (:class:`nvencffi.cuda.PrimaryContext`): one retained
reference to the primary context, pushed and popped per call, released on close, and
:class:`nvencffi.cuda.NullContext` for the test suite's emulator (no CUDA at all: the
emulator reads host memory). Both bindings thereby agree on one way of sharing the
context and of choosing its flags (``set_context_flags``). Its CUDA failures are
re-raised here as our own exception types.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, get_args

from nvencffi.cuda import EncodeContext, NullContext, PrimaryContext
from nvencffi.errors import CudaUnavailable
from nvjpegffi._ffi import ffi
from nvjpegffi.errors import CudaError, NvjpegUnavailable

__all__ = [
    "WAITS",
    "CompletionEvent",
    "Wait",
    "CudaContext",
    "HostBuffer",
    "NullContext",
    "cuda_errors",
    "primary_context",
]

CudaContext = EncodeContext  # the protocol: handle, gpu_name, pushed(), synchronize_stream(), close()

# How the encoder waits for the JPEG to reach the host buffer (see CompletionEvent):
# "stream" synchronizes the stream (the default); "event" records an event after the
# copy and waits for it, with the context's wait mode; "event-blocking" does the same
# with a CU_EVENT_BLOCKING_SYNC event (the thread sleeps instead of spinning).
Wait = Literal["stream", "event", "event-blocking"]
WAITS: tuple[Wait, ...] = get_args(Wait)


def primary_context(device: int = 0) -> CudaContext:
    """A retained reference to ``device``'s primary context; NvjpegUnavailable without CUDA."""
    try:
        return PrimaryContext(device)
    except CudaUnavailable as exc:
        raise NvjpegUnavailable(f"nvJPEG needs a CUDA driver and device: {exc}") from None


@contextmanager
def cuda_errors() -> Iterator[None]:
    """Re-raise a CUDA failure of the shared context code as :class:`CudaError`."""
    try:
        yield
    except CudaUnavailable as exc:
        raise CudaError(str(exc)) from exc


def _driver() -> Any:
    from cuda.bindings import driver

    return driver


def _check(driver: Any, err: Any, function: str) -> None:
    if err != driver.CUresult.CUDA_SUCCESS:
        _, name = driver.cuGetErrorName(err)
        raise CudaError(f"{function} failed: {name.decode() if isinstance(name, bytes) else err}")


class HostBuffer:
    """A host buffer of ``size`` bytes that nvJPEG copies a JPEG into.

    Page-locked (``cuMemAllocHost`` in ``context``) when there is a real context: the
    device-to-host copy is then one DMA, with no staging through a driver bounce buffer.
    With a :class:`NullContext` (no CUDA: the emulator), plain host memory from cffi.
    Allocated once per encoder (and again only when a bigger one is needed); ``close()``
    frees it.
    """

    def __init__(self, context: CudaContext, size: int) -> None:
        if size <= 0:
            raise ValueError(f"expected a positive buffer size, got {size}")
        self.size = size
        self._context = context
        self._owner: Any = None  # the cffi array of a pageable buffer
        self._pinned = 0  # the host pointer of a pinned one
        if context.handle:
            driver = _driver()
            with cuda_errors(), context.pushed():
                err, pointer = driver.cuMemAllocHost(size)
            _check(driver, err, f"cuMemAllocHost({size})")
            self._pinned = int(pointer)
            self.pointer: Any = ffi.cast("unsigned char *", self._pinned)
        else:
            self._owner = ffi.new("unsigned char[]", size)
            self.pointer = self._owner

    @property
    def pinned(self) -> bool:
        return bool(self._pinned)

    @property
    def closed(self) -> bool:
        return self.pointer is None

    def read(self, length: int) -> bytes:
        """The first ``length`` bytes, copied out (the one per-frame host allocation)."""
        if self.pointer is None:
            raise RuntimeError("HostBuffer is closed")
        if not 0 <= length <= self.size:
            raise ValueError(f"expected 0..{self.size} bytes, got {length}")
        data: bytes = ffi.buffer(self.pointer, length)[:]
        return data

    def close(self) -> None:
        """Free the buffer (idempotent)."""
        pinned, self._pinned = self._pinned, 0
        self.pointer = None
        self._owner = None
        if pinned:
            driver = _driver()
            with cuda_errors(), self._context.pushed():
                (err,) = driver.cuMemFreeHost(pinned)
            _check(driver, err, "cuMemFreeHost")

    def __repr__(self) -> str:
        kind = "closed" if self.closed else ("pinned" if self.pinned else "pageable")
        return f"<nvjpegffi.HostBuffer {self.size} bytes {kind}>"


class CompletionEvent:
    """One reusable CUDA event the encoder records after the bitstream copy and waits for.

    The alternative to ``cuStreamSynchronize`` for the end of a frame: the wait covers
    only the work queued up to the record (the stream may carry on with other work),
    and ``blocking=True`` makes the waiting thread sleep (``CU_EVENT_BLOCKING_SYNC``)
    whatever the context's own wait mode. Timing is disabled (``CU_EVENT_DISABLE_TIMING``),
    the cheapest kind of event. Made once per encoder in ``context``; ``close()``
    destroys it. With a :class:`NullContext` (no CUDA: the emulator) there is nothing to
    wait for and :meth:`record_and_wait` returns at once, as the context's
    ``synchronize_stream`` does.
    """

    def __init__(self, context: CudaContext, *, blocking: bool = False) -> None:
        self.blocking = blocking
        self._context = context
        self._event: Any = None
        self._driver: Any = None
        if context.handle:
            driver = _driver()
            flags = int(driver.CUevent_flags.CU_EVENT_DISABLE_TIMING)
            if blocking:
                flags |= int(driver.CUevent_flags.CU_EVENT_BLOCKING_SYNC)
            with cuda_errors(), context.pushed():
                err, event = driver.cuEventCreate(flags)
            _check(driver, err, "cuEventCreate")
            self._driver, self._event = driver, event

    def record_and_wait(self, stream: int) -> None:
        """Record the event on ``stream`` (a CUstream as an integer) and wait until it has happened."""
        driver, event = self._driver, self._event
        if event is None:
            if self._driver is not None:
                raise RuntimeError("CompletionEvent is closed")
            return
        with cuda_errors(), self._context.pushed():
            (err,) = driver.cuEventRecord(event, driver.CUstream(stream))
            _check(driver, err, "cuEventRecord")
            (err,) = driver.cuEventSynchronize(event)
        _check(driver, err, "cuEventSynchronize")

    def close(self) -> None:
        """Destroy the event (idempotent)."""
        event, self._event = self._event, None
        if event is not None:
            with cuda_errors(), self._context.pushed():
                (err,) = self._driver.cuEventDestroy(event)
            _check(self._driver, err, "cuEventDestroy")
