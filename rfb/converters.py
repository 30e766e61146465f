"""Host RGB frames into ``av.VideoFrame`` s for the CPU video routes' encoders.

:class:`OpenCVConverter` (BT.601 limited, chroma averaged like
:func:`rfb.colorspace.rgb_to_nv12_host`) is the hot path of the CPU video routes;
:class:`HostConverter` does the same with FFmpeg's swscale in BT.709 (the fallback
where OpenCV is missing, and the image route's nv12 -> RGB). :func:`host_converter`
picks between them. Every converter labels its frames (:func:`rfb.videocolour.label`)
so that the encoder's VUI names the matrix the pixels were made with.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from rfb.colorspace import color_matrix
from rfb.frames import FrameError, RawFrame
from rfb.videocolour import BT601_LIMITED, BT709_LIMITED, label

if TYPE_CHECKING:
    from av.video.frame import VideoFrame

logger = logging.getLogger(__name__)

# -- swscale, for the CPU routes -------------------------------------------------------

# PyAV pixel format of each RawFrame layout (host memory, tightly packed).
AV_FORMATS = {"rgb24": "rgb24", "rgba8": "rgba", "nv12": "nv12"}
_YUV_FORMATS = frozenset({"nv12", "yuv420p"})


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
        """The frame as an ``av.VideoFrame`` in ``target_format``, BT.709 limited range (and labelled so)."""
        from av.video.frame import VideoFrame
        from av.video.reformatter import Colorspace

        if self._reformatter is None:
            raise RuntimeError("HostConverter is closed")
        if frame.memory != "cpu":
            raise FrameError(f"expected a host (cpu) frame, got memory={frame.memory!r}")
        src = AV_FORMATS[frame.pixel_format]
        wrapped = VideoFrame.from_numpy_buffer(frame.data, format=src)
        if src == self.target_format:
            return label(wrapped, BT709_LIMITED) if src in _YUV_FORMATS else wrapped
        # Name the YUV side's matrix and range explicitly: swscale's default is BT.601.
        # None leaves that side to swscale, as an RGB side needs.
        src_yuv = src in _YUV_FORMATS
        dst_yuv = self.target_format in _YUV_FORMATS
        out = self._reformatter.reformat(
            wrapped,
            format=self.target_format,
            threads=self.threads,
            interpolation=self.interpolation,
            src_colorspace=Colorspace.ITU709 if src_yuv else None,
            src_color_range="MPEG" if src_yuv else None,
            dst_colorspace=Colorspace.ITU709 if dst_yuv else None,
            dst_color_range="MPEG" if dst_yuv else "JPEG",
        )
        return label(out, BT709_LIMITED) if self.target_format in _YUV_FORMATS else out

    def close(self) -> None:
        """Free the swscale context now rather than at garbage collection."""
        self._reformatter = None


# -- OpenCV, the fast path of the CPU routes ---------------------------------------------


class OpenCVConverter:
    """Host rgb24/rgba8 -> yuv420p in BT.601 limited range with OpenCV; nv12 passes through.

    Why OpenCV: ``cv2.cvtColor(..., COLOR_RGB2YUV_I420)`` is SIMD and multi-threaded and
    measured several times faster than swscale for the same job (docs/performance.md).
    It has two properties to work around:

    - it only knows BT.601 (limited range) for 4:2:0, so its frames are labelled
      :data:`BT601_LIMITED` and the encoder's VUI says matrix 6 for them;
    - it takes each 2x2 block's chroma from the block's top-left pixel (no averaging),
      which aliases colour detail: a one-pixel coloured line on an odd row or column
      loses its colour. So only its luma is kept, and the chroma planes are remade from
      the block averages (``cv2.resize`` INTER_AREA at exactly half size, then one
      ``cv2.transform`` with :func:`color_matrix`'s BT.601 rows), which is rfb's
      convention (chroma at the block centre, as the reference and the GPU kernel do).

    All output lives in buffers allocated once per frame size and reused, so a frame
    costs no allocation; the returned ``av.VideoFrame`` wraps the I420 buffer without a
    copy and is valid until the next ``convert`` (encoders consume it before ``encode``
    returns). nv12 frames are wrapped as they are (rfb's BT.709 convention).
    """

    target_format = "yuv420p"

    def __init__(self) -> None:
        import cv2  # ImportError: the caller falls back to swscale (host_converter)

        self._cv2: Any = cv2
        rows = color_matrix("bt601", False)
        forward, offset = np.asarray(rows.forward), np.asarray(rows.offset)[:, None]
        # RGB(A) -> Y, U, V of a pixel, as cv2.transform's (3, channels + 1) affine matrix
        self._affine = {
            3: np.hstack([forward, offset]).astype(np.float32),
            4: np.hstack([forward, np.zeros((3, 1)), offset]).astype(np.float32),  # alpha ignored
        }
        self._size: tuple[int, int, int] | None = None
        self._i420: np.ndarray | None = None
        self._scratch: tuple[np.ndarray, ...] = ()
        self._closed = False

    def convert(self, frame: RawFrame) -> VideoFrame:
        """The frame as a yuv420p (BT.601) or nv12 (BT.709) ``av.VideoFrame``, labelled with its colour."""
        from av.video.frame import VideoFrame

        if self._closed:
            raise RuntimeError("OpenCVConverter is closed")
        if frame.memory != "cpu":
            raise FrameError(f"expected a host (cpu) frame, got memory={frame.memory!r}")
        if frame.pixel_format == "nv12":
            return label(VideoFrame.from_numpy_buffer(frame.data, format="nv12"), BT709_LIMITED)
        if frame.pixel_format not in ("rgb24", "rgba8"):
            raise FrameError(f"expected an rgb24, rgba8 or nv12 frame, got {frame.pixel_format!r}")
        i420 = self.to_i420(frame.data)
        return label(VideoFrame.from_numpy_buffer(i420, format="yuv420p"), BT601_LIMITED)

    def to_i420(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` ((H, W, 3|4) uint8) as I420 in the reused ``(H + H/2, W)`` buffer (returned)."""
        cv2 = self._cv2
        height, width, channels = rgb.shape
        i420, half, half_yuv, unused_y = self._buffers(width, height, channels)
        code = cv2.COLOR_RGB2YUV_I420 if channels == 3 else cv2.COLOR_RGBA2YUV_I420
        cv2.cvtColor(rgb, code, dst=i420)  # the luma is kept; the chroma is remade below
        cv2.resize(rgb, (width // 2, height // 2), dst=half, interpolation=cv2.INTER_AREA)
        cv2.transform(half, self._affine[channels], dst=half_yuv)
        quarter = height * width // 4
        flat = i420.reshape(-1)
        u_plane = flat[height * width : height * width + quarter].reshape(height // 2, width // 2)
        v_plane = flat[height * width + quarter :].reshape(height // 2, width // 2)
        cv2.split(half_yuv, [unused_y, u_plane, v_plane])
        return i420

    def _buffers(self, width: int, height: int, channels: int) -> tuple[np.ndarray, ...]:
        if height % 2 or width % 2 or height == 0 or width == 0:
            raise FrameError(f"4:2:0 needs even, non-zero width and height, got {width}x{height}")
        if self._i420 is None or self._i420.shape != (height * 3 // 2, width):
            self._i420 = np.empty((height * 3 // 2, width), np.uint8)
        if self._size != (width, height, channels):
            self._scratch = (
                np.empty((height // 2, width // 2, channels), np.uint8),  # block-averaged RGB(A)
                np.empty((height // 2, width // 2, 3), np.uint8),  # its Y, U, V
                np.empty((height // 2, width // 2), np.uint8),  # that Y, not needed
            )
            self._size = (width, height, channels)
        return (self._i420, *self._scratch)

    def close(self) -> None:
        """Drop the buffers (plain memory: nothing native to release)."""
        self._closed = True
        self._i420 = None
        self._scratch = ()


def host_converter(target_format: str = "nv12") -> FrameConverter:
    """The fastest correct host converter here: OpenCV's, else swscale to ``target_format``.

    Both label their frames (:func:`colour_of`), so the encoder's VUI follows whichever
    is used. Without OpenCV (an extra: the base install leaves it out for its size), the
    reason and the install that brings it are logged once per encoder.
    """
    try:
        return OpenCVConverter()
    except ImportError as exc:
        logger.info(
            "OpenCV is not importable (%s); converting RGB with swscale (BT.709), which is slower; "
            "pip install 'rfb[fast]' adds OpenCV",
            exc,
        )
        return HostConverter(target_format)
