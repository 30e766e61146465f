"""The colour conventions of rfb's H.264 routes: matrices, and RGB <-> YUV conversion.

rfb's convention is **BT.709, limited (studio) range**: the GPU kernel, nv12 frames
(what ``rfb.gpu.rgb_to_nv12`` makes) and the swscale path use it, and the SPS VUI says
so (colour primaries, transfer and matrix 1, full-range flag 0), so the browser's
decoder turns the pixels back into the colours that were published. One exception:
host RGB frames of the PyAV routes are converted by OpenCV (:class:`OpenCVConverter`,
several times faster than swscale), whose 4:2:0 conversion only knows **BT.601**; those
streams say matrix 6 instead (:data:`BT601_LIMITED`). Whatever the path, the stream's
VUI describes the matrix its pixels were made with (:class:`VideoColour`).

This module is the one home of the colour maths, CPU-side so that the CPU routes need
nothing from :mod:`rfb.gpu`:

- :func:`color_matrix` gives the coefficients (BT.601 or BT.709, limited or full
  range). The GPU kernel (:mod:`rfb.gpu.convert`) takes its coefficients from it, so
  the two cannot drift apart.
- ``rgb_to_nv12_host`` / ``nv12_to_rgb_host`` are the NumPy conversions with those
  coefficients: the reference the kernel is tested against (within one code value),
  and the (rare) host conversions of the image routes and the tests.
  ``rgb_to_nv12`` / ``nv12_to_rgb`` are the same with the routes' convention.
- :class:`OpenCVConverter` turns host RGB into yuv420p with OpenCV (BT.601 limited,
  chroma averaged like the reference) into one reused buffer: the hot path of the
  CPU video routes. :class:`HostConverter` does the same with FFmpeg's swscale in
  BT.709 (the fallback where OpenCV is missing, and the image route's nv12 -> RGB).
  :func:`host_converter` picks between them.

Conventions of the NumPy conversions, shared with the kernel:

- ``Y = fy . (R, G, B) + oy`` and ``U, V = fu|fv . (R, G, B) + 128`` on 8-bit values,
  computed in float32 and rounded half up (``floor(x + 0.5)``), then clamped to 0..255.
- Chroma is subsampled by averaging the four RGB pixels of each 2x2 block (chroma
  sited at the block centre), which is the same as averaging the four chroma values.
- The inverse (:func:`nv12_to_rgb_host`) repeats each chroma sample over its 2x2 block.

Limited ("TV") range puts Y in 16..235 and U, V in 16..240; full ("PC", JPEG) range uses
0..255 for all three. The other matrices and ranges are for callers that signal their own.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from rfb.frames import FrameError, RawFrame

if TYPE_CHECKING:
    from av.video.frame import VideoFrame

logger = logging.getLogger(__name__)

# H.264 VUI code points (ITU-T H.273): 1 = BT.709 for primaries, transfer and matrix.
COLOUR_PRIMARIES_BT709 = 1
TRANSFER_BT709 = 1
MATRIX_BT709 = 1
MATRIX_BT601 = 6  # SMPTE 170M: the BT.601 (525-line) matrix; 5 (BT.470BG) has the same coefficients
FULL_RANGE = False


@dataclass(frozen=True, slots=True)
class VideoColour:
    """What a stream's SPS VUI says about its pixels, and the matrix they were made with.

    Only the matrix differs between rfb's conversions: the RGB is the application's
    (sRGB-like, BT.709 primaries and transfer) whichever matrix turned it into YUV,
    so primaries and transfer stay 1 and only ``matrix`` changes. Signalling BT.601
    primaries too would ask a colour-managed browser for a gamut conversion the
    pixels never needed.
    """

    name: str  # the color_matrix() name of the matrix
    matrix: int  # matrix_coefficients (H.273)
    primaries: int = COLOUR_PRIMARIES_BT709
    transfer: int = TRANSFER_BT709
    full_range: bool = FULL_RANGE


BT709_LIMITED = VideoColour("bt709", MATRIX_BT709)
BT601_LIMITED = VideoColour("bt601", MATRIX_BT601)

# AVFrame.colorspace (AVColorSpace) values of the two conventions; 2 is "unspecified".
_AVCOL_SPC_UNSPECIFIED = 2
_COLOUR_OF_AVCOL_SPC = {MATRIX_BT709: BT709_LIMITED, _AVCOL_SPC_UNSPECIFIED: BT709_LIMITED, 5: BT601_LIMITED}
_COLOUR_OF_AVCOL_SPC[MATRIX_BT601] = BT601_LIMITED
_AVCOL_RANGE_MPEG = 1
_AVCOL_RANGE_JPEG = 2


def colour_of(picture: VideoFrame) -> VideoColour:
    """The convention of a converted ``av.VideoFrame``, from its colorspace and range fields.

    Converters label what they make; an unlabelled frame (a wrapped nv12 array, a CUDA
    frame) follows rfb's convention, BT.709 limited.
    """
    if picture.color_range == _AVCOL_RANGE_JPEG:
        raise FrameError("expected limited-range (MPEG) YUV from the converter, got a full-range (JPEG) frame")
    try:
        return _COLOUR_OF_AVCOL_SPC[int(picture.colorspace)]
    except KeyError:
        raise FrameError(
            f"expected a BT.709 or BT.601 frame from the converter, got AVColorSpace {int(picture.colorspace)}"
        ) from None


def label(picture: VideoFrame, colour: VideoColour) -> VideoFrame:
    """``picture`` with its colorspace and range fields saying ``colour`` (returned for chaining)."""
    picture.colorspace = colour.matrix
    picture.color_range = _AVCOL_RANGE_JPEG if colour.full_range else _AVCOL_RANGE_MPEG
    return picture

# -- matrices ------------------------------------------------------------------------

MatrixName = Literal["bt601", "bt709"]

# (Kr, Kb) of each standard: Y' = Kr R' + (1 - Kr - Kb) G' + Kb B'.
_LUMA_WEIGHTS: dict[str, tuple[float, float]] = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
}
MATRICES: tuple[str, ...] = tuple(_LUMA_WEIGHTS)
DEFAULT_MATRIX = "bt709"  # with FULL_RANGE (False): what rfb's H.264 routes signal in the VUI


@dataclass(frozen=True, slots=True)
class ColorMatrix:
    """RGB <-> YUV coefficients on 8-bit code values.

    ``forward`` maps (R, G, B) to (Y, U, V) before ``offset`` is added; ``inverse``
    maps (Y, U, V) minus ``offset`` back to (R, G, B). Rows are Y, U, V (resp. R, G, B).
    """

    name: str
    full_range: bool
    forward: tuple[tuple[float, float, float], ...]
    offset: tuple[float, float, float]
    inverse: tuple[tuple[float, float, float], ...]

    def kernel_coefficients(self) -> tuple[float, ...]:
        """The 11 floats the GPU kernel takes: Y row, Y offset, U row, V row, chroma offset."""
        (yr, yg, yb), (ur, ug, ub), (vr, vg, vb) = self.forward
        return (yr, yg, yb, self.offset[0], ur, ug, ub, vr, vg, vb, self.offset[1])


@functools.cache
def color_matrix(matrix: str = DEFAULT_MATRIX, full_range: bool = False) -> ColorMatrix:
    """The coefficients of ``matrix`` ("bt601" or "bt709") in limited or full range."""
    try:
        kr, kb = _LUMA_WEIGHTS[matrix]
    except KeyError:
        raise ValueError(f"matrix must be one of {MATRICES}, got {matrix!r}") from None
    kg = 1.0 - kr - kb
    # Scale from 0..255 RGB to the Y and chroma excursions of the chosen range.
    y_scale, c_scale, y_offset = (1.0, 1.0, 0.0) if full_range else (219.0 / 255.0, 224.0 / 255.0, 16.0)
    y_row = np.array([kr, kg, kb])
    u_row = (np.array([0.0, 0.0, 1.0]) - y_row) / (2.0 * (1.0 - kb))
    v_row = (np.array([1.0, 0.0, 0.0]) - y_row) / (2.0 * (1.0 - kr))
    forward = np.stack([y_row * y_scale, u_row * c_scale, v_row * c_scale])
    inverse = np.linalg.inv(forward)
    return ColorMatrix(
        name=matrix,
        full_range=bool(full_range),
        forward=tuple(tuple(float(v) for v in row) for row in forward),
        offset=(y_offset, 128.0, 128.0),
        inverse=tuple(tuple(float(v) for v in row) for row in inverse),
    )


# -- NumPy conversions ----------------------------------------------------------------


def nv12_planes(nv12: Any) -> tuple[Any, Any]:
    """(Y, UV) views of one NV12 allocation: Y is ``(H, W)``, UV is ``(H/2, W/2, 2)``.

    Works on NumPy and CuPy arrays alike (anything with ``shape``, slicing and
    ``reshape``); rows may be padded, the views keep the pitch.
    """
    shape = tuple(getattr(nv12, "shape", ()))
    if len(shape) != 2 or shape[0] % 3 or shape[0] == 0 or shape[1] % 2:
        raise FrameError(f"expected nv12 as one (H + H/2, W) array with even H and W, got shape {shape}")
    height, width = shape[0] * 2 // 3, shape[1]  # rows = 3k, so the height 2k is even
    return nv12[:height], nv12[height:].reshape(height // 2, width // 2, 2)


def rgb_to_nv12_host(
    rgb: np.ndarray,
    *,
    matrix: str = DEFAULT_MATRIX,
    full_range: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Convert a host ``(H, W, 3|4)`` uint8 image (alpha ignored) to one ``(H + H/2, W)`` NV12 array.

    This is the reference the GPU kernel is held to (within one code value), and the
    CPU conversion for routes that want NV12 from NumPy frames.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise FrameError(f"expected a uint8 (H, W, 3) or (H, W, 4) array, got {rgb.dtype} {tuple(rgb.shape)}")
    height, width = rgb.shape[:2]
    if height % 2 or width % 2 or height == 0 or width == 0:
        raise FrameError(f"NV12 needs even, non-zero width and height, got {width}x{height}")
    if out is None:
        out = np.empty((height * 3 // 2, width), dtype=np.uint8)
    elif out.dtype != np.uint8 or tuple(out.shape) != (height * 3 // 2, width):
        raise FrameError(f"out must be uint8 of shape {(height * 3 // 2, width)}, got {out.dtype} {tuple(out.shape)}")
    cm = color_matrix(matrix, full_range)
    fwd = np.asarray(cm.forward, dtype=np.float32)
    pixels = rgb[..., :3].astype(np.float32)
    y_plane, uv_plane = nv12_planes(out)
    y_plane[...] = _to_u8(pixels @ fwd[0] + np.float32(cm.offset[0]))
    block_mean = pixels.reshape(height // 2, 2, width // 2, 2, 3).mean(axis=(1, 3), dtype=np.float32)
    uv_plane[...] = _to_u8(block_mean @ fwd[1:].T + np.float32(cm.offset[1]))
    return out


def nv12_to_rgb_host(nv12: np.ndarray, *, matrix: str = DEFAULT_MATRIX, full_range: bool = False) -> np.ndarray:
    """Convert one host ``(H + H/2, W)`` NV12 array to a new ``(H, W, 3)`` uint8 RGB array.

    Each chroma sample is repeated over its 2x2 block (no interpolation), the exact
    inverse of the block averaging in :func:`rgb_to_nv12_host`.
    """
    nv12 = np.asarray(nv12)
    if nv12.dtype != np.uint8:
        raise FrameError(f"expected a uint8 nv12 array, got {nv12.dtype}")
    y_plane, uv_plane = nv12_planes(nv12)
    cm = color_matrix(matrix, full_range)
    inv = np.asarray(cm.inverse, dtype=np.float32)
    yuv = np.empty(y_plane.shape + (3,), dtype=np.float32)
    yuv[..., 0] = y_plane
    yuv[..., 1:] = uv_plane.repeat(2, axis=0).repeat(2, axis=1)
    yuv -= np.asarray(cm.offset, dtype=np.float32)
    return _to_u8(yuv @ inv.T)


def _to_u8(values: np.ndarray) -> np.ndarray:
    """Round half up and clamp to 0..255, exactly as the kernel does."""
    return np.clip(np.floor(values + np.float32(0.5)), 0, 255).astype(np.uint8)


# -- the routes' convention (BT.709, limited range) ---------------------------------


def rgb_to_nv12(rgb: np.ndarray) -> np.ndarray:
    """Host (H, W, 3|4) RGB(A) uint8 -> one (H + H/2, W) nv12 array, BT.709 limited range.

    :func:`rgb_to_nv12_host` with the convention of the H.264 routes.
    """
    return rgb_to_nv12_host(rgb, matrix=DEFAULT_MATRIX, full_range=FULL_RANGE)


def nv12_to_rgb(nv12: np.ndarray, width: int, height: int) -> np.ndarray:
    """One (H + H/2, W) nv12 array (BT.709 limited) of a ``width`` x ``height`` frame -> (H, W, 3) RGB uint8."""
    if tuple(nv12.shape) != (height + height // 2, width):
        raise FrameError(f"expected nv12 of shape {(height + height // 2, width)}, got {tuple(nv12.shape)}")
    return nv12_to_rgb_host(nv12, matrix=DEFAULT_MATRIX, full_range=FULL_RANGE)


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

        if self._reformatter is None:
            raise RuntimeError("HostConverter is closed")
        if frame.memory != "cpu":
            raise FrameError(f"expected a host (cpu) frame, got memory={frame.memory!r}")
        src = AV_FORMATS[frame.pixel_format]
        wrapped = VideoFrame.from_numpy_buffer(frame.data, format=src)
        if src == self.target_format:
            return label(wrapped, BT709_LIMITED) if src in _YUV_FORMATS else wrapped
        # Name the YUV side's matrix and range explicitly: swscale's default is BT.601.
        colour: dict[str, str] = {}
        if src in _YUV_FORMATS:
            colour.update(src_colorspace="ITU709", src_color_range="MPEG")
        if self.target_format in _YUV_FORMATS:
            colour.update(dst_colorspace="ITU709", dst_color_range="MPEG")
        else:
            colour.update(dst_color_range="JPEG")
        out = self._reformatter.reformat(
            wrapped,
            format=self.target_format,
            threads=self.threads,
            interpolation=self.interpolation,
            **colour,
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
        logger.info("OpenCV is not importable (%s); converting RGB with swscale (BT.709), which is slower; "
                    "pip install 'rfb[fast]' adds OpenCV", exc)
        return HostConverter(target_format)
