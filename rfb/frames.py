"""Frames as publish() receives them, and the validation that turns input into a RawFrame.

Everything an encoder sees is a :class:`RawFrame`: the pixels (a NumPy array for
host memory, the caller's CUDA array object for device memory), their geometry and
pixel format. Validation happens once, at ``publish()``, so that a bad frame raises
in the caller's own stack with a message naming what was expected and what arrived,
instead of failing later inside an encoder thread.

Layouts (all uint8):

- ``rgb24``: ``(H, W, 3)``, R, G, B in memory order.
- ``rgba8``: ``(H, W, 4)``, R, G, B, A in memory order (alpha is ignored by video).
- ``nv12``: one allocation ``(H + H/2, W)``: the luma plane, then the interleaved
  U, V plane of half height. Rows may be padded (``pitch`` bytes apart) on CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

PixelFormat = Literal["rgb24", "rgba8", "nv12"]
Memory = Literal["cpu", "cuda"]

PIXEL_FORMATS: tuple[str, ...] = ("rgb24", "rgba8", "nv12")
MEMORIES: tuple[str, ...] = ("cpu", "cuda")
_CHANNELS = {"rgb24": 3, "rgba8": 4}


class FrameError(ValueError):
    """A frame handed to publish() (or an encoder) does not have the expected layout."""


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One frame of pixels with an explicit layout.

    ``data`` is a C-contiguous NumPy array for ``memory="cpu"`` and, for
    ``memory="cuda"``, any object exposing ``__cuda_array_interface__`` or a CUDA
    ``__dlpack__`` (CuPy, PyTorch, JAX). ``pitch`` is the distance in bytes between
    two rows (of the luma plane for nv12); ``None`` means tightly packed.
    """

    data: Any
    width: int
    height: int
    pixel_format: PixelFormat = "rgb24"
    memory: Memory = "cpu"
    pitch: int | None = None
    device_id: int = 0
    timestamp_us: int | None = field(default=None, compare=False)
    pixel_ratio: float | None = field(default=None, compare=False)  # frame pixels per CSS pixel (publish())

    def __post_init__(self) -> None:
        if self.pixel_format not in PIXEL_FORMATS:
            raise FrameError(f"pixel_format must be one of {PIXEL_FORMATS}, got {self.pixel_format!r}")
        if self.memory not in MEMORIES:
            raise FrameError(f"memory must be one of {MEMORIES}, got {self.memory!r}")
        sizes = []
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise FrameError(f"{name} must be a positive integer, got {value!r} ({type(value).__name__})")
            sizes.append(int(value))
        # NumPy integers (shape arithmetic) are accepted and stored as plain ints.
        object.__setattr__(self, "width", sizes[0])
        object.__setattr__(self, "height", sizes[1])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return (self.width, self.height)

    @property
    def row_bytes(self) -> int:
        """Bytes of pixel data in one row (without padding)."""
        return self.width * _CHANNELS.get(self.pixel_format, 1)

    @property
    def stride(self) -> int:
        """Bytes from one row to the next (the pitch, or the packed row size)."""
        return self.pitch if self.pitch is not None else self.row_bytes

    def nv12_planes(self) -> tuple[np.ndarray, np.ndarray]:
        """(Y, UV) views of a host nv12 frame: Y is (H, W), UV is (H/2, W/2, 2)."""
        if self.pixel_format != "nv12" or self.memory != "cpu":
            raise FrameError(f"nv12_planes() needs a cpu nv12 frame, got {self.memory} {self.pixel_format}")
        arr = self.data
        y = arr[: self.height]
        uv = arr[self.height : self.height + self.height // 2].reshape(self.height // 2, self.width // 2, 2)
        return y, uv


def frame_from_array(
    array: Any,
    pixel_format: PixelFormat | None = None,
    *,
    memory: Memory | None = None,
    timestamp_us: int | None = None,
) -> RawFrame:
    """Validate ``array`` (or pass a RawFrame through) and describe it as a RawFrame.

    NumPy ``(H, W, 3)`` is rgb24, ``(H, W, 4)`` is rgba8, and a 2-D ``(H*3/2, W)``
    array is nv12 only when ``pixel_format="nv12"`` is given. Device arrays are
    accepted here only as a RawFrame with ``memory="cuda"`` (validated by rfb.gpu).
    """
    if isinstance(array, RawFrame):
        frame = array
        if frame.memory == "cpu":
            _check_host(frame.data, frame.pixel_format, frame.width, frame.height)
        if timestamp_us is not None and timestamp_us != frame.timestamp_us:
            frame = replace(frame, timestamp_us=timestamp_us)
        return frame
    if memory == "cuda" or is_device_array(array):
        raise FrameError(
            "expected a host NumPy uint8 array or a RawFrame; got a CUDA array "
            f"({type(array).__module__}.{type(array).__name__}). Wrap device arrays with "
            "rfb.gpu.cuda_frame(array) or RawFrame(array, w, h, fmt, memory='cuda')."
        )
    if not isinstance(array, np.ndarray):
        raise FrameError(
            f"expected a NumPy uint8 array of shape (H, W, 3) or (H, W, 4), or a RawFrame; got {type(array).__name__}"
        )
    if array.dtype != np.uint8:
        raise FrameError(
            f"expected dtype uint8, got {array.dtype} (convert with (x * 255).clip(0, 255).astype(np.uint8))"
        )
    if pixel_format is not None and pixel_format not in PIXEL_FORMATS:
        raise FrameError(f"pixel_format must be one of {PIXEL_FORMATS}, got {pixel_format!r}")
    if pixel_format is None:
        if array.ndim != 3 or array.shape[2] not in (3, 4):
            raise FrameError(f"expected shape (H, W, 3) for rgb24 or (H, W, 4) for rgba8, got {tuple(array.shape)}")
        pixel_format = "rgb24" if array.shape[2] == 3 else "rgba8"
    if pixel_format == "nv12":
        if array.ndim != 2 or array.shape[0] % 3 != 0:
            raise FrameError(f"expected nv12 as one (H + H/2, W) uint8 array, got shape {tuple(array.shape)}")
        height, width = array.shape[0] * 2 // 3, array.shape[1]
    else:
        height, width = array.shape[0], array.shape[1]
    _check_host(array, pixel_format, width, height)
    return RawFrame(array, width, height, pixel_format, "cpu", timestamp_us=timestamp_us)


def _check_host(array: Any, pixel_format: str, width: int, height: int) -> None:
    if not isinstance(array, np.ndarray):
        raise FrameError(f"a cpu RawFrame needs a NumPy array as data, got {type(array).__name__}")
    if array.dtype != np.uint8:
        raise FrameError(f"expected dtype uint8, got {array.dtype}")
    if pixel_format == "nv12":
        expected: tuple[int, ...] = (height + height // 2, width)
        if width % 2 or height % 2:
            raise FrameError(f"nv12 needs even width and height, got {width}x{height}")
    else:
        expected = (height, width, _CHANNELS[pixel_format])
    if tuple(array.shape) != expected:
        raise FrameError(f"expected {pixel_format} of shape {expected}, got {tuple(array.shape)}")
    if not array.flags.c_contiguous:
        raise FrameError(
            f"expected a C-contiguous array, got strides {array.strides} for shape {tuple(array.shape)}; "
            "pass np.ascontiguousarray(frame)"
        )


def is_device_array(obj: Any) -> bool:
    """True for objects that describe CUDA memory (CAI, or a DLPack CUDA device); never imports a framework."""
    if hasattr(obj, "__cuda_array_interface__"):
        return True
    dev = getattr(obj, "__dlpack_device__", None)
    if dev is not None and not isinstance(obj, np.ndarray):
        try:
            return int(dev()[0]) in (2, 3, 13)  # kDLCUDA, kDLCUDAHost, kDLCUDAManaged
        except (TypeError, ValueError, RuntimeError):
            return False
    return False
