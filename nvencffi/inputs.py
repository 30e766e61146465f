"""Where NVENC reads a frame from: its own registration, or the encoder's staging buffer.

Per frame, :meth:`Inputs.resolve` asks the context for one attribute of the frame's
pointer (its allocation id, ``CU_POINTER_ATTRIBUTE_BUFFER_ID``) and then:

- a layout and allocation registered before: that registration (the usual case, zero
  copy);
- a layout and allocation judged before as needing staging: a copy into the staging
  buffer;
- anything new: one full pointer query (``pointer_info``) decides. Another device's
  frame and host memory are refused; stream-ordered pool memory and another context's
  memory are staged, and so is a pitch that is not a multiple of 256 (see
  ``nvencffi.staging`` for why); the rest is registered in place.

The NVENC calls themselves (register, unregister) belong to the encoder and are passed
in; this module owns the decisions, the registration cache, the staging buffer and the
counts the encoder reports in ``registration_stats``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from nvencffi.cuda import EncodeContext
from nvencffi.frames import EXPECTED, FrameDeviceError, FrameLayoutError, FrameView
from nvencffi.registrations import RegistrationCache
from nvencffi.staging import PITCH_ALIGNMENT, REASONS, StagingBuffer

Register = Callable[[int, int, int, int, int], Any]  # (pointer, pitch, width, height, format) -> handle
STAGED_MEMORY = 64  # how many staged (pointer, layout)s keep their verdict between frames


class Inputs:
    """The registrations and the staging buffer of one encoder (used with its context current)."""

    def __init__(
        self, context: EncodeContext, capacity: int, register: Register, unregister: Callable[[Any], None]
    ) -> None:
        self._context = context
        self._register = register
        self._unregister = unregister
        self.cache = RegistrationCache(capacity, unregister)
        self._staging: StagingBuffer | None = None
        self._verdicts: dict[Any, tuple[int | None, str]] = {}  # key -> (allocation id, reason)
        self._staged = dict.fromkeys(REASONS, 0)

    @property
    def stats(self) -> dict[str, int]:
        cache = self.cache
        stats = {
            "cached": len(cache),
            "hits": cache.hits,
            "misses": cache.misses,
            "stale": cache.stale,
            "staged": sum(self._staged.values()),
        }
        stats.update({f"staged_{reason}": n for reason, n in self._staged.items()})
        return stats

    def resolve(self, view: FrameView, stream: int | None) -> tuple[Any, int, Any]:
        """(registered handle, pitch, key) NVENC reads ``view`` through; a staged frame
        is copied in on ``stream`` first (None: the NULL stream, then synchronized)."""
        key = view.key
        buffer_id = self._context.buffer_id(view.pointer)
        verdict = self._verdicts.get(key)
        if verdict is not None:
            if verdict[0] == buffer_id:
                return self._stage(view, verdict[1], stream)
            del self._verdicts[key]  # another allocation at that address: judge it afresh
        handle = self.cache.lookup(key, buffer_id)
        if handle is not None:
            return handle, view.pitch, key
        reason = self._judge(view)
        if reason is None:
            self.cache.make_room()
            handle = self._register(view.pointer, view.pitch, view.width, view.height, view.buffer_format)
            self.cache.add(key, handle, buffer_id)
            return handle, view.pitch, key
        if len(self._verdicts) >= STAGED_MEMORY:
            self._verdicts.pop(next(iter(self._verdicts)))
        self._verdicts[key] = (buffer_id, reason)
        return self._stage(view, reason, stream)

    def _judge(self, view: FrameView) -> str | None:
        """Why ``view`` must be staged (a ``staging.REASONS`` entry), or None to register
        it in place; refuses memory NVENC cannot read at all."""
        context = self._context
        info = context.pointer_info(view.pointer)
        if info is not None:
            if info.kind not in ("device", "managed"):
                raise FrameLayoutError(
                    f"{EXPECTED}; the frame's memory at 0x{view.pointer:x} is {info.kind} memory, "
                    f"not CUDA device memory ({view!r})"
                )
            if info.device is not None and info.device != context.device:
                raise FrameDeviceError(
                    f"this encoder runs on CUDA device {context.device} ({context.gpu_name or 'unnamed'}); "
                    f"the frame lives on device {info.device}: allocate it on device {context.device}, "
                    f"or open the encoder with device={info.device} ({view!r})"
                )
            if info.mempool:
                return "mempool"
            if info.context and info.context != context.handle:
                return "context"
        if view.pitch % PITCH_ALIGNMENT:
            return "pitch"
        return None

    def _stage(self, view: FrameView, reason: str, stream: int | None) -> tuple[Any, int, Any]:
        staging = self._staging
        if staging is None or not staging.fits(view.width, view.height, view.buffer_format):
            staging = self._new_staging(view.width, view.height, view.buffer_format)
        staging.fill_from(view.pointer, view.pitch, stream)
        if stream is None:  # NVENC was given no stream to order its reads after the copy
            self._context.synchronize_stream(0)
        self._staged[reason] += 1
        return staging.handle, staging.pitch, staging.key

    def _new_staging(self, width: int, height: int, buffer_format: int) -> StagingBuffer:
        self._drop_staging()
        staging = StagingBuffer(self._context, width, height, buffer_format)
        try:
            staging.handle = self._register(staging.pointer, staging.pitch, width, height, buffer_format)
        except BaseException:
            staging.free()
            raise
        self._staging = staging
        return staging

    def _drop_staging(self) -> None:
        staging, self._staging = self._staging, None
        if staging is None:
            return
        try:
            if staging.handle is not None:
                self._unregister(staging.handle)
                staging.handle = None
        finally:
            staging.free()

    def drain(self) -> Iterator[Any]:
        """Remove and yield every registered handle, the staging buffer's last (the
        caller unregisters them; the staging memory stays until :meth:`free_staging`)."""
        yield from self.cache.drain()
        staging = self._staging
        if staging is not None and staging.handle is not None:
            handle, staging.handle = staging.handle, None
            yield handle

    def free_staging(self) -> None:
        """Give the staging memory back (after its registration and the session are gone)."""
        staging, self._staging = self._staging, None
        if staging is not None:
            staging.free()
