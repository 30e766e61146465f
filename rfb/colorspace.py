"""The one colour convention of rfb's H.264 routes, and host RGB <-> YUV conversion.

Every H.264 route converts RGB to YUV with **BT.709, limited (studio) range** and
says so in the SPS VUI (colour primaries, transfer and matrix 1, full-range flag 0),
so the browser's decoder turns the pixels back into the colours that were published.
A GPU route that converts on the device must use the same matrix (``rgb_to_nv12``
here is the reference its tests can compare with).

Two implementations live here, for two different jobs:

- :class:`HostConverter` wraps a host array as an ``av.VideoFrame`` without a copy
  and converts it with FFmpeg's swscale (SIMD, multi-threaded), keeping one swscale
  context alive across frames. This is the hot path of the CPU video routes.
- ``rgb_to_nv12`` / ``nv12_to_rgb`` are plain NumPy: the reference for tests, and
  the (rare) nv12 -> RGB step of the image route.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

import numpy as np

from rfb.frames import FrameError, RawFrame

if TYPE_CHECKING:
    from av.video.frame import VideoFrame

# H.264 VUI code points (ITU-T H.273): 1 = BT.709 for primaries, transfer and matrix.
COLOUR_PRIMARIES_BT709 = 1
TRANSFER_BT709 = 1
MATRIX_BT709 = 1
FULL_RANGE = False

# BT.709 luma coefficients.
_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB

# PyAV pixel format of each RawFrame layout (host memory, tightly packed).
AV_FORMATS = {"rgb24": "rgb24", "rgba8": "rgba", "nv12": "nv12"}
_YUV_FORMATS = frozenset({"nv12", "yuv420p"})


def rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB uint8 -> (..., 3) float Y, Cb, Cr in limited range (BT.709)."""
    c = np.asarray(rgb, dtype=np.float32) / 255.0
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    y = _KR * r + _KG * g + _KB * b
    cb = (b - y) / (2 * (1 - _KB))
    cr = (r - y) / (2 * (1 - _KR))
    return np.stack([16 + 219 * y, 128 + 224 * cb, 128 + 224 * cr], axis=-1)


def rgb_to_nv12(rgb: np.ndarray) -> np.ndarray:
    """Host (H, W, 3|4) RGB(A) uint8 -> one (H + H/2, W) nv12 array (BT.709 limited).

    Chroma is the mean of each 2x2 block. Reference quality, not speed.
    """
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise FrameError(f"expected (H, W, 3) or (H, W, 4) RGB, got shape {tuple(rgb.shape)}")
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise FrameError(f"nv12 needs even width and height, got {w}x{h}")
    yuv = rgb_to_yuv(rgb[..., :3])
    out = np.empty((h + h // 2, w), dtype=np.uint8)
    out[:h] = np.clip(np.rint(yuv[..., 0]), 0, 255)
    chroma = yuv[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
    out[h:] = np.clip(np.rint(chroma), 0, 255).reshape(h // 2, w)
    return out


def nv12_to_rgb(nv12: np.ndarray, width: int, height: int) -> np.ndarray:
    """One (H + H/2, W) nv12 array (BT.709 limited) -> (H, W, 3) RGB uint8."""
    if nv12.shape != (height + height // 2, width):
        raise FrameError(f"expected nv12 of shape {(height + height // 2, width)}, got {tuple(nv12.shape)}")
    y = (nv12[:height].astype(np.float32) - 16) / 219
    uv = nv12[height:].reshape(height // 2, width // 2, 2).astype(np.float32)
    uv = (uv - 128) / 224
    uv = uv.repeat(2, axis=0).repeat(2, axis=1)
    cb, cr = uv[..., 0], uv[..., 1]
    r = y + 2 * (1 - _KR) * cr
    b = y + 2 * (1 - _KB) * cb
    g = (y - _KR * r - _KB * b) / _KG
    rgb = np.stack([r, g, b], axis=-1) * 255
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def default_threads() -> int:
    """swscale threads for the CPU routes: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class FrameConverter(Protocol):
    """Anything that turns host RawFrames into ``av.VideoFrame`` s for an encoder."""

    target_format: str

    def convert(self, frame: RawFrame) -> VideoFrame: ...

    def close(self) -> None: ...


class HostConverter:
    """Turns host RawFrames into ``av.VideoFrame`` s of one pixel format.

    Why this shape: wrapping with ``VideoFrame.from_numpy_buffer`` avoids the copy
    that ``from_ndarray`` makes, and reusing one ``VideoReformatter`` keeps swscale's
    context (built per format pair and size) instead of rebuilding it every frame;
    with ``threads`` > 1 swscale splits the picture into bands. Frames already in
    the target format are wrapped and passed through untouched (nv12 into libx264).

    The wrapped frame borrows the caller's array: it is only valid while the array
    is not modified, which holds because encoders consume it before ``encode``
    returns.
    """

    def __init__(
        self, target_format: str = "nv12", *, threads: int | None = None, interpolation: str | None = "AREA"
    ) -> None:
        from av.video.reformatter import VideoReformatter

        self.target_format = target_format
        self.threads = default_threads() if threads is None else threads
        self.interpolation = interpolation
        self._reformatter: VideoReformatter | None = VideoReformatter()

    def convert(self, frame: RawFrame) -> VideoFrame:
        """The frame as an ``av.VideoFrame`` in ``target_format``, BT.709 limited range."""
        from av.video.frame import VideoFrame

        if self._reformatter is None:
            raise RuntimeError("HostConverter is closed")
        if frame.memory != "cpu":
            raise FrameError(f"expected a host (cpu) frame, got memory={frame.memory!r}")
        src = AV_FORMATS[frame.pixel_format]
        wrapped = VideoFrame.from_numpy_buffer(frame.data, format=src)
        if src == self.target_format:
            return wrapped
        # Name the YUV side's matrix and range explicitly: swscale's default is BT.601.
        colour: dict[str, str] = {}
        if src in _YUV_FORMATS:
            colour.update(src_colorspace="ITU709", src_color_range="MPEG")
        if self.target_format in _YUV_FORMATS:
            colour.update(dst_colorspace="ITU709", dst_color_range="MPEG")
        else:
            colour.update(dst_color_range="JPEG")
        return self._reformatter.reformat(
            wrapped,
            format=self.target_format,
            threads=self.threads,
            interpolation=self.interpolation,
            **colour,
        )

    def close(self) -> None:
        """Free the swscale context now rather than at garbage collection."""
        self._reformatter = None
