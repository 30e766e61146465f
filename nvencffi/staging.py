"""The encoder's own input buffer, for frames NVENC must not read where they are.

NVENC registers the caller's memory in place when it can. Three kinds of frame it
cannot, or should not:

- ``"pitch"``: a row pitch that is not a multiple of :data:`PITCH_ALIGNMENT` (256 bytes).
  The header only asks for a multiple of 4, but NVIDIA's sample (``cuMemAllocPitch``),
  FFmpeg (``CUDA_FRAME_ALIGNMENT`` 256) and Sunshine all hand NVENC 256-byte pitches, and
  pitches not even 16-byte aligned have been reported to fault inside the driver
  (``cudaErrorMisalignedAddress``), which poisons the CUDA context;
- ``"mempool"``: memory of a stream-ordered pool (``cuMemAllocAsync``: CuPy's
  MemoryAsyncPool, PyTorch's cudaMallocAsync backend, RMM's async resource), which
  ``nvEncRegisterResource`` refuses with ``NV_ENC_ERR_RESOURCE_REGISTER_FAILED``
  (GStreamer's nvcodec copies such memory for the same reason);
- ``"context"``: an allocation of another CUDA context on the same device, which NVENC,
  bound to the primary context, cannot register either.

Such a frame is copied device to device (one 2-D copy on the encoder's stream) into a
:class:`StagingBuffer`: allocated by the context (``cuMemAlloc``, not a pool) with a
256-byte pitch, registered once, reused for every frame of its size, and released by
the encoder's ``close()``.
"""

from __future__ import annotations

from typing import Any

from nvencffi.cuda import EncodeContext
from nvencffi.frames import NV12

PITCH_ALIGNMENT = 256
REASONS = ("pitch", "mempool", "context")


def aligned_pitch(row_bytes: int, alignment: int = PITCH_ALIGNMENT) -> int:
    """The smallest multiple of ``alignment`` that holds ``row_bytes``."""
    return -(-row_bytes // alignment) * alignment


def frame_geometry(width: int, height: int, buffer_format: int) -> tuple[int, int]:
    """(bytes of one row of pixels, rows) of a frame: NV12 has H + H/2 rows of W bytes."""
    if buffer_format == NV12:
        return width, height * 3 // 2
    return width * 4, height


class StagingBuffer:
    """One pitched buffer of one size and format, owned by an encoder.

    ``handle`` is its NVENC registration (set by the encoder, which unregisters it before
    the session goes). Presents itself through ``__cuda_array_interface__`` so that
    ``probe()`` can encode it like any caller frame.
    """

    def __init__(self, context: EncodeContext, width: int, height: int, buffer_format: int) -> None:
        self.width = width
        self.height = height
        self.buffer_format = buffer_format
        self.row_bytes, self.rows = frame_geometry(width, height, buffer_format)
        self.pitch = aligned_pitch(self.row_bytes)
        self._context = context
        self.pointer = context.allocate(self.pitch * self.rows)
        self.handle: Any = None

    @property
    def key(self) -> tuple[int, int, int, int, int]:
        return (self.pointer, self.pitch, self.width, self.height, self.buffer_format)

    def fits(self, width: int, height: int, buffer_format: int) -> bool:
        return (self.width, self.height, self.buffer_format) == (width, height, buffer_format)

    def fill_from(self, pointer: int, pitch: int, stream: int | None) -> None:
        """Copy a frame of this size and format (at ``pointer``, rows ``pitch`` apart) in."""
        self._context.copy_2d(self.pointer, self.pitch, pointer, pitch, self.row_bytes, self.rows, stream)

    def fill(self, value: int) -> None:
        """Set every byte (``probe()`` encodes a flat grey frame)."""
        self._context.memset(self.pointer, value, self.pitch * self.rows)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        if self.buffer_format == NV12:
            shape: tuple[int, ...] = (self.rows, self.width)
            strides: tuple[int, ...] = (self.pitch, 1)
        else:
            shape, strides = (self.height, self.width, 4), (self.pitch, 4, 1)
        return {
            "shape": shape,
            "typestr": "|u1",
            "data": (self.pointer, False),
            "strides": strides,
            "version": 3,
            "stream": None,
        }

    def free(self) -> None:
        """Give the memory back (after its registration is gone). Idempotent."""
        if self.pointer:
            pointer, self.pointer = self.pointer, 0
            self._context.free(pointer)

    def __repr__(self) -> str:
        return f"<StagingBuffer {self.width}x{self.height} pitch={self.pitch} ptr=0x{self.pointer:x}>"
