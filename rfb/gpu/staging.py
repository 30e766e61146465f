"""DeviceStaging: any frame as a CUDA frame in a layout its consumer reads as it is.

Every GPU route has a consumer that reads device memory in a few layouts only: NVENC
through nvencffi (nv12, rgba8), FFmpeg's CUDA frames (nv12), nvJPEG (rgb24...), and
:class:`~rfb.gpu.HostFrameAdapter`'s copy down to a host encoder (nv12, or rgb24).
What differs is the list; the work to get there is the same, so it lives here once,
with the buffers it needs: allocated on first need, reused for every frame of the
same size, and released by ``close()``.
"""

from __future__ import annotations

import math
from typing import Any

from nvencffi.staging import PITCH_ALIGNMENT as PITCH_ALIGNMENT
from nvencffi.staging import aligned_pitch as aligned_pitch
from rfb.colorspace import DEFAULT_MATRIX
from rfb.frames import FrameError, PixelFormat, RawFrame, frame_from_array
from rfb.gpu.arrays import as_cupy, check_cuda_frame, host_shape
from rfb.gpu.context import import_cupy
from rfb.gpu.convert import copy_frame_to_device, rgb_to_nv12

# PITCH_ALIGNMENT (re-exported from nvencffi.staging) is the 256-byte row pitch every
# reference client hands NVENC (cuMemAllocPitch, FFmpeg's CUDA frames): the buffers made
# here use it, so NVENC registers them where they are. Which pitches a consumer reads
# as they are (``pitch_alignment``) is the consumer's own rule; the header's is 4.
HEADER_PITCH_ALIGNMENT = 4

_CHANNELS = {"rgb24": 3, "rgba8": 4, "nv12": 1}
_TARGETS = ("nv12", "rgb24")


class DeviceStaging:
    """Turns any frame into a CUDA frame that a consumer reads as it is.

    ``direct`` names the CUDA layouts the consumer takes without conversion (NVENC
    through nvencffi: nv12 and rgba8; FFmpeg's CUDA frames: nv12 only). A CUDA frame in
    one of them, with a row pitch that is a multiple of ``pitch_alignment``, is returned
    untouched: nothing is copied and no GPU library is even imported. Anything else goes
    through buffers owned here, allocated on first need and reused for every frame of
    the same size:

    - a host frame is copied up once (one 2-D host -> device copy, ``uploads`` counts
      them) into a device buffer of its own layout;
    - a layout that is not direct becomes ``target`` in one pass on the device
      (``conversions``): NV12 with the RGB -> NV12 kernel (``matrix``, ``full_range``),
      or rgb24 by dropping rgba8's alpha;
    - a direct layout whose pitch is not aligned is copied on the device into an
      aligned buffer (``copies``).

    ``copy=True`` asks ``device_frame`` to copy even a direct, aligned CUDA frame: memory
    the consumer cannot read where it is although its layout is right (a stream-ordered
    pool's, which NVENC refuses to register). ``plain_memory`` allocates the buffers with
    ``cudaMalloc`` rather than from CuPy's current allocator, which an application may
    have made such a pool.

    ``device_id`` is the device frames must live on; None follows each frame's device
    (host frames then go to device 0). With ``synchronize`` (the default),
    ``device_frame`` waits for the work it queued before returning, so the consumer
    never needs to know which stream it ran on; without, the work is left queued on
    CuPy's current stream. The returned frame may view a staging buffer: it is valid
    until the next call. ``close()`` gives the buffers back (to CuPy's memory pool, or
    ``cudaFree`` for plain memory, once nothing views them). Used
    from one thread at a time, like its consumer.
    """

    def __init__(
        self,
        direct: tuple[PixelFormat, ...],
        *,
        device_id: int | None = 0,
        matrix: str = DEFAULT_MATRIX,
        full_range: bool = False,
        target: PixelFormat = "nv12",
        pitch_alignment: int = HEADER_PITCH_ALIGNMENT,
        plain_memory: bool = False,
    ) -> None:
        if "nv12" not in direct:
            raise ValueError(f"direct must include 'nv12' (what conversions produce), got {direct!r}")
        if target not in _TARGETS or target not in direct:
            raise ValueError(f"target must be 'nv12' or 'rgb24' and one of direct {direct!r}, got {target!r}")
        if pitch_alignment < 1:
            raise ValueError(f"pitch_alignment must be a positive number of bytes, got {pitch_alignment}")
        self.direct = direct
        self.device_id = device_id
        self.matrix = matrix
        self.full_range = full_range
        self.target: PixelFormat = target
        self.pitch_alignment = pitch_alignment
        self.plain_memory = plain_memory
        self.uploads = 0
        self.conversions = 0
        self.copies = 0
        self._buffers: dict[str, Any] = {}  # pixel format -> CuPy array, a pitched view
        self._closed = False

    def device_frame(
        self, frame: RawFrame, *, synchronize: bool = True, copy: bool = False, checked: bool = False
    ) -> RawFrame:
        """``frame`` as a CUDA frame in a direct layout, its pixels ready to be read.

        ``copy``: never its own memory. ``checked``: the caller has just passed a CUDA
        ``frame`` through :func:`~rfb.gpu.arrays.check_cuda_frame` (its interface is not
        read twice per frame).
        """
        if self._closed:
            raise RuntimeError("DeviceStaging is closed")
        if frame.memory == "cuda":
            if not checked:
                check_cuda_frame(frame)
            if self.device_id is not None and frame.device_id != self.device_id:
                raise FrameError(
                    f"the encoder runs on CUDA device {self.device_id}, the frame lives on device {frame.device_id}"
                )
            if not copy and frame.pixel_format in self.direct and frame.stride % self.pitch_alignment == 0:
                return frame  # zero copy: the caller's own memory
            device_id = frame.device_id
        else:
            frame = frame_from_array(frame)  # shape, dtype, contiguity: checked before any GPU work
            device_id = self.device_id if self.device_id is not None else 0
        cp = import_cupy()
        with cp.cuda.Device(device_id):
            staged = frame
            if frame.memory == "cpu":
                staged = self._into_buffer(cp, frame, frame.pixel_format, device_id)
                self.uploads += 1
            if staged.pixel_format not in self.direct:
                staged = self._convert(cp, staged)
            elif staged is frame or staged.stride % self.pitch_alignment:
                staged = self._into_buffer(cp, staged, staged.pixel_format, device_id)
                self.copies += 1
            if synchronize:
                cp.cuda.get_current_stream().synchronize()
        return staged

    def close(self) -> None:
        """Release the staging buffers (see the class). Idempotent."""
        self._closed = True
        self._buffers.clear()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def buffers(self) -> dict[str, Any]:
        """The staging buffers allocated so far, by pixel format (for tests and debugging)."""
        return dict(self._buffers)

    # -- the work ---------------------------------------------------------------------

    def _into_buffer(self, cp: Any, frame: RawFrame, pixel_format: PixelFormat, device_id: int) -> RawFrame:
        """One 2-D copy (host -> device, or on the device) into the buffer of ``frame``'s layout."""
        target = self._target(cp, pixel_format, frame.width, frame.height, frame.timestamp_us, device_id)
        return copy_frame_to_device(frame, target)

    def _convert(self, cp: Any, frame: RawFrame) -> RawFrame:
        """rgb24/rgba8 on the device -> ``target`` in the staging buffer, one pass."""
        target = self._target(cp, self.target, frame.width, frame.height, frame.timestamp_us, frame.device_id)
        if self.target == "nv12":
            rgb_to_nv12(frame, out=target.data, matrix=self.matrix, full_range=self.full_range)
        else:  # rgba8 -> rgb24: only the colour bytes, packed on the device
            target.data[...] = as_cupy(frame.data)[..., :3]
        self.conversions += 1
        return target

    # -- buffers --------------------------------------------------------------------

    def _target(
        self, cp: Any, pixel_format: PixelFormat, width: int, height: int, timestamp_us: int | None, device_id: int
    ) -> RawFrame:
        """A cuda frame over the reused buffer for ``pixel_format`` at this size, on ``device_id``."""
        layout = RawFrame(None, width, height, pixel_format, "cuda")  # geometry only
        shape = host_shape(layout)
        pitch = aligned_pitch(layout.row_bytes, math.lcm(PITCH_ALIGNMENT, self.pitch_alignment))
        view = self._buffers.get(pixel_format)
        if view is None or tuple(view.shape) != shape or view.device.id != device_id:
            self._buffers.pop(pixel_format, None)  # free the old one before allocating anew
            if self.plain_memory:
                memptr = cp.cuda.MemoryPointer(cp.cuda.Memory(shape[0] * pitch), 0)
                storage = cp.ndarray((shape[0], pitch), dtype=cp.uint8, memptr=memptr)
            else:
                storage = cp.empty((shape[0], pitch), dtype=cp.uint8)
            strides = (pitch,) if len(shape) == 2 else (pitch, _CHANNELS[pixel_format])
            view = cp.ndarray(shape, dtype=cp.uint8, memptr=storage.data, strides=(*strides, 1))
            self._buffers[pixel_format] = view
        return RawFrame(
            view, width, height, pixel_format, "cuda", pitch=pitch, device_id=device_id, timestamp_us=timestamp_us
        )

    def __repr__(self) -> str:
        counts = f"uploads={self.uploads} conversions={self.conversions} copies={self.copies}"
        state = "closed" if self._closed else counts
        device = "each frame's" if self.device_id is None else self.device_id
        return f"<DeviceStaging direct={self.direct} device={device} {state}>"
