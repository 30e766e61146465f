"""HostFrameAdapter: lets an encoder that only reads host memory take CUDA frames.

A CPU encoder (libx264, JPEG) needs the pixels in host memory, and the cheapest way to
get them there is: convert to NV12 on the GPU (half the bytes of RGB), copy once into
page-locked ("pinned") host memory (the fast DMA path), and hand the encoder a host
nv12 frame that views that memory. Both buffers are allocated once and reused for
every frame of the same size, and each frame crosses PCIe exactly once
(``d2h_transfers`` counts the copies so that tests can prove it).

The host frame handed to the wrapped encoder views the adapter's pinned buffer: it is
valid until the next ``encode`` call, so the wrapped encoder must copy what it keeps
(encoders do: they consume a frame inside ``encode``).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from rfb.colorspace import DEFAULT_MATRIX
from rfb.encoders.base import EncodedPayload, EncoderBackend
from rfb.frames import RawFrame
from rfb.gpu.arrays import as_cupy, check_cuda_frame, host_shape
from rfb.gpu.context import import_cupy
from rfb.gpu.convert import copy_frame_to_host, rgb_to_nv12

HostFormat = Literal["nv12", "rgb24"]


class HostFrameAdapter:
    """Wrap a host-only :class:`EncoderBackend` so that it accepts CUDA frames too.

    ``prefer="nv12"`` (the default) converts rgb24/rgba8 CUDA frames to NV12 on the GPU
    before the copy; ``prefer="rgb24"`` copies RGB down as RGB (rgba8 is packed to
    rgb24 on the device first), for encoders that want RGB. CUDA nv12 frames are
    copied as they are either way. Host frames pass straight through, untouched.

    The adapter owns the wrapped encoder: ``close()`` closes it and releases the
    device and pinned buffers. Like every backend it is used from one thread at a time.
    """

    def __init__(
        self,
        encoder: EncoderBackend,
        *,
        prefer: HostFormat = "nv12",
        matrix: str = DEFAULT_MATRIX,
        full_range: bool = False,
    ) -> None:
        if prefer not in ("nv12", "rgb24"):
            raise ValueError(f"prefer must be 'nv12' or 'rgb24', got {prefer!r}")
        self.name: str = encoder.name
        self.transport = encoder.transport
        self.prefer: HostFormat = prefer
        self.matrix = matrix
        self.full_range = full_range
        self.d2h_transfers = 0  # device -> host copies made, one per CUDA frame
        self._encoder: EncoderBackend | None = encoder
        self._device: Any = None  # staging CuPy array (NV12 or packed RGB), reused
        self._pinned: Any = None  # cupy PinnedMemoryPointer backing self._host
        self._host: np.ndarray | None = None

    @property
    def encoder(self) -> EncoderBackend:
        """The wrapped encoder (raises once closed)."""
        if self._encoder is None:
            raise RuntimeError(f"HostFrameAdapter({self.name!r}) is closed")
        return self._encoder

    @property
    def closed(self) -> bool:
        return self._encoder is None

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False) -> list[EncodedPayload]:
        encoder = self.encoder
        if frame.memory == "cpu":
            return encoder.encode(frame, force_keyframe=force_keyframe)
        return encoder.encode(self._download(frame), force_keyframe=force_keyframe)

    def flush(self) -> list[EncodedPayload]:
        return self.encoder.flush()

    def close(self) -> None:
        """Close the wrapped encoder and release both buffers. Idempotent."""
        encoder, self._encoder = self._encoder, None
        self._release_buffers()
        if encoder is not None:
            encoder.close()

    def __enter__(self) -> HostFrameAdapter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _download(self, frame: RawFrame) -> RawFrame:
        """The host frame for a CUDA one: staged on the device if needed, then one copy down."""
        check_cuda_frame(frame)
        cp = import_cupy()
        with cp.cuda.Device(frame.device_id):
            staged = self._stage(cp, frame)
            host = self._buffers_for(cp, staged)
            copy_frame_to_host(staged, host)
        self.d2h_transfers += 1
        fmt = staged.pixel_format
        return RawFrame(host, frame.width, frame.height, fmt, "cpu", timestamp_us=frame.timestamp_us)

    def _stage(self, cp: Any, frame: RawFrame) -> RawFrame:
        """The device frame to copy down: converted or packed into the staging buffer, or ``frame`` itself."""
        if frame.pixel_format == "nv12" or (self.prefer == "rgb24" and frame.pixel_format == "rgb24"):
            return frame
        if self.prefer == "nv12":
            staging = self._staging(cp, frame.device_id, (frame.height + frame.height // 2, frame.width))
            rgb_to_nv12(frame, out=staging, matrix=self.matrix, full_range=self.full_range)
            fmt = "nv12"
        else:  # rgba8 -> rgb24, packed on the device so that only RGB crosses the bus
            staging = self._staging(cp, frame.device_id, (frame.height, frame.width, 3))
            staging[...] = as_cupy(frame.data)[..., :3]
            fmt = "rgb24"
        return RawFrame(staging, frame.width, frame.height, fmt, "cuda", device_id=frame.device_id)

    def _staging(self, cp: Any, device_id: int, shape: tuple[int, ...]) -> Any:
        buf = self._device
        if buf is None or tuple(buf.shape) != shape or buf.device.id != device_id:
            self._device = None  # free the old one before allocating the new one
            buf = self._device = cp.empty(shape, dtype=cp.uint8)
        return buf

    def _buffers_for(self, cp: Any, staged: RawFrame) -> np.ndarray:
        """The pinned host array for ``staged``'s packed shape, reallocated only when it changes."""
        shape = host_shape(staged)
        if self._host is None or self._host.shape != shape:
            self._host = self._pinned = None
            nbytes = int(np.prod(shape))
            self._pinned = cp.cuda.alloc_pinned_memory(nbytes)
            self._host = np.frombuffer(self._pinned, dtype=np.uint8, count=nbytes).reshape(shape)
        return self._host

    def _release_buffers(self) -> None:
        self._host = None
        self._pinned = None
        self._device = None

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"d2h_transfers={self.d2h_transfers}"
        return f"<HostFrameAdapter {self.name!r} prefer={self.prefer} {state}>"

