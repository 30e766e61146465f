"""HostFrameAdapter: lets an encoder that only reads host memory take CUDA frames.

A CPU encoder (libx264, JPEG) needs the pixels in host memory, and the cheapest way to
get them there is: convert to NV12 on the GPU (half the bytes of RGB), copy once into
page-locked ("pinned") host memory (the fast DMA path), and hand the encoder a host
nv12 frame that views that memory. The device side is a
:class:`~rfb.gpu.staging.DeviceStaging` (the GPU routes' own); the pinned buffer is
the adapter's. Both are allocated once and reused for every frame of the same size,
and each frame crosses PCIe exactly once (``d2h_transfers`` counts the copies so that
tests can prove it).

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
from rfb.gpu.arrays import host_shape
from rfb.gpu.context import import_cupy
from rfb.gpu.convert import copy_frame_to_host
from rfb.gpu.staging import DeviceStaging

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
        # Device side: CUDA nv12 (and rgb24, when preferred) is copied down as it is, at any
        # pitch; the rest is converted (or packed) into a reused device buffer first.
        self._staging = DeviceStaging(
            ("nv12",) if prefer == "nv12" else ("nv12", "rgb24"),
            device_id=None,
            matrix=matrix,
            full_range=full_range,
            target=prefer,
            pitch_alignment=1,
        )
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
        staged = self._staging.device_frame(frame, synchronize=False)  # the copy below waits for it
        cp = import_cupy()
        with cp.cuda.Device(staged.device_id):
            host = self._buffers_for(cp, staged)
            copy_frame_to_host(staged, host)
        self.d2h_transfers += 1
        fmt = staged.pixel_format
        return RawFrame(host, frame.width, frame.height, fmt, "cpu", timestamp_us=frame.timestamp_us)

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
        self._staging.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"d2h_transfers={self.d2h_transfers}"
        return f"<HostFrameAdapter {self.name!r} prefer={self.prefer} {state}>"
