"""The latest published frame, leased to encode groups while they encode it.

``publish()`` never waits for an encoder: it replaces "the latest frame" and wakes the
groups, which take a lease on whatever is latest when they get to it. What the store
holds depends on ``own_frames``:

- ``own_frames=False``: the caller's own array (host or CUDA), by reference. The caller
  must not write into it again until a newer frame replaced it and the encoders are
  done with it; in practice: publish a fresh array per frame.
- ``own_frames=True``: a copy in a buffer the display owns, from a small pool recycled
  only when a buffer is neither the latest frame nor leased. The caller may overwrite
  its array as soon as ``publish()`` returns. Host frames are copied with NumPy; CUDA
  frames on their own device with CuPy (device to device, never through the host).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import replace
from typing import Any, NamedTuple, Protocol

import numpy as np

from rfb.frames import RawFrame

__all__ = ["FrameStore", "Lease"]


class Lease(NamedTuple):
    """What :meth:`FrameStore.take` hands out: give ``frame`` back with :meth:`FrameStore.release`."""

    frame: RawFrame
    version: int  # 1 for the first frame put, +1 per put
    published_at: float  # time.monotonic() when it was put: where its latency starts


class FrameSource(Protocol):
    """Where encode groups read the latest published frame (:class:`FrameStore` is one)."""

    def take(self) -> Lease | None:
        """The latest frame, its version and publish time, leased until :meth:`release`; None before any publish."""

    def release(self, frame: RawFrame) -> None: ...

    @property
    def version(self) -> int: ...


class FrameStore:
    """The latest frame and, with ``own_frames=True``, the pool of buffers it is copied into."""

    def __init__(self, *, own_frames: bool, pool_size: int = 4) -> None:
        self._own = own_frames
        self._pool_size = pool_size
        self._lock = threading.Lock()
        self._latest: RawFrame | None = None
        self._published_at = 0.0
        self._version = 0
        self._pool: list[tuple[Hashable, Any]] = []  # (layout key, buffer)
        self._leases: dict[int, int] = {}  # id(buffer) -> number of holders
        self._streams: dict[int, Any] = {}  # CUDA device -> the CuPy stream copies run on

    @property
    def version(self) -> int:
        return self._version

    @property
    def own_frames(self) -> bool:
        return self._own

    def put(self, frame: RawFrame) -> int:
        """Make ``frame`` the latest (copied first with ``own_frames``); returns its version."""
        if self._own:
            frame = self._owned_copy(frame)
        with self._lock:
            self._latest = frame
            self._published_at = time.monotonic()
            self._version += 1
            if self._own:
                self._unlease(frame.data)  # the copy's own lease; "latest" protects it now
            return self._version

    def take(self) -> Lease | None:
        """The latest frame, leased until :meth:`release`; None before the first put."""
        with self._lock:
            if self._latest is None:
                return None
            if self._own:
                key = id(self._latest.data)
                self._leases[key] = self._leases.get(key, 0) + 1
            return Lease(self._latest, self._version, self._published_at)

    def release(self, frame: RawFrame) -> None:
        if self._own:
            with self._lock:
                self._unlease(frame.data)

    def clear(self) -> None:
        """Forget the latest frame and every pooled buffer (host and device) and stream."""
        with self._lock:
            self._latest = None
            self._pool.clear()
            self._leases.clear()
            self._streams.clear()

    def pooled(self) -> int:
        """Buffers the pool holds (for tests: proves reuse and release)."""
        with self._lock:
            return len(self._pool)

    # ------------------------------------------------------------ copies

    def _owned_copy(self, frame: RawFrame) -> RawFrame:
        if frame.memory != "cpu":
            return self._owned_device_copy(frame)
        shape = frame.data.shape
        buffer = self._lease_free_buffer(("cpu", shape), lambda: np.empty(shape, np.uint8))
        try:
            np.copyto(buffer, frame.data)  # outside the lock: encoders keep taking the previous frame
        except BaseException:
            self._drop_lease(buffer)
            raise
        return replace(frame, data=buffer)

    def _owned_device_copy(self, frame: RawFrame) -> RawFrame:
        """A device-to-device copy into a display-owned CUDA buffer on the frame's device.

        The copy runs on a stream of ours that is *blocking* (it waits for work queued on
        the legacy default stream, where CuPy and PyTorch render unless told otherwise),
        after CuPy honoured any stream the producer named (CUDA array interface v3,
        DLPack). It is synchronised before this returns: correctness first, and the
        copy of a 1080p frame is short next to a frame interval. The buffer is packed
        (no row padding), whatever the source's pitch.
        """
        from rfb.gpu.arrays import as_cupy, check_cuda_frame, host_shape
        from rfb.gpu.context import import_cupy

        check_cuda_frame(frame)
        cp = import_cupy()
        shape = host_shape(frame)
        with cp.cuda.Device(frame.device_id):
            buffer = self._lease_free_buffer(("cuda", frame.device_id, shape), lambda: cp.empty(shape, cp.uint8))
            try:
                stream = self._stream(cp, frame.device_id)
                with stream:
                    cp.copyto(buffer, as_cupy(frame.data))
                stream.synchronize()
            except BaseException:
                self._drop_lease(buffer)
                raise
        return replace(frame, data=buffer, pitch=None)

    def _stream(self, cp: Any, device_id: int) -> Any:
        with self._lock:
            stream = self._streams.get(device_id)
            if stream is None:
                stream = self._streams[device_id] = cp.cuda.Stream(non_blocking=False)
            return stream

    def _lease_free_buffer(self, key: Hashable, allocate: Callable[[], Any]) -> Any:
        """A pooled buffer of layout ``key`` that nobody uses, leased to the caller until put()."""
        with self._lock:
            buffer = self._free_buffer(key, allocate)
            self._leases[id(buffer)] = self._leases.get(id(buffer), 0) + 1
            return buffer

    def _free_buffer(self, key: Hashable, allocate: Callable[[], Any]) -> Any:
        busy = set(self._leases)
        if self._latest is not None:
            busy.add(id(self._latest.data))
        for k, buffer in self._pool:
            if k == key and id(buffer) not in busy:
                return buffer
        self._pool = [(k, b) for k, b in self._pool if k == key or id(b) in busy]  # a new layout retires the rest
        buffer = allocate()
        if len(self._pool) < self._pool_size:
            self._pool.append((key, buffer))
        return buffer

    def _drop_lease(self, buffer: Any) -> None:
        with self._lock:
            self._unlease(buffer)

    def _unlease(self, array: Any) -> None:
        key = id(array)
        count = self._leases.get(key, 0) - 1
        if count > 0:
            self._leases[key] = count
        else:
            self._leases.pop(key, None)
