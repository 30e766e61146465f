"""rfb's colour convention and its maths: matrices, and RGB <-> NV12 in NumPy.

rfb's convention is **BT.709, limited (studio) range**: the GPU kernel, nv12 frames
(what ``rfb.gpu.rgb_to_nv12`` makes) and the swscale path use it, and the SPS VUI says
so (:mod:`rfb.videocolour`), so the browser's decoder turns the pixels back into the
colours that were published. One exception: host RGB frames of the PyAV routes are
converted by OpenCV (:class:`rfb.converters.OpenCVConverter`, several times faster than
swscale), whose 4:2:0 conversion only knows **BT.601**; those streams say so in their VUI.

This module is the one home of the colour maths, CPU-side so that the CPU routes need
nothing from :mod:`rfb.gpu`:

- :func:`color_matrix` gives the coefficients (BT.601 or BT.709, limited or full
  range). The GPU kernel (:mod:`rfb.gpu.convert`) takes its coefficients from it, so
  the two cannot drift apart.
- ``rgb_to_nv12_host`` / ``nv12_to_rgb_host`` are the NumPy conversions with those
  coefficients: the reference the kernel is tested against (within one code value),
  and the (rare) host conversions of the image routes and the tests.
  ``rgb_to_nv12`` / ``nv12_to_rgb`` are the same with the routes' convention.

Conventions of the NumPy conversions, shared with the kernel:

- ``Y = fy . (R, G, B) + oy`` and ``U, V = fu|fv . (R, G, B) + 128`` on 8-bit values,
  computed in float32 and rounded half up (``floor(x + 0.5)``), then clamped to 0..255.
- Chroma is subsampled by averaging the four RGB pixels of each 2x2 block (chroma
  sited at the block centre), which is the same as averaging the four chroma values.
- The inverse (:func:`nv12_to_rgb_host`) repeats each chroma sample over its 2x2 block.

Limited ("TV") range puts Y in 16..235 and U, V in 16..240; full ("PC", JPEG) range uses
0..255 for all three. The other matrices and ranges are for callers that signal their own.

The host converters (:mod:`rfb.converters`) and the VUI labels (:mod:`rfb.videocolour`)
have modules of their own; their names are importable from here as well.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rfb.frames import FrameError

FULL_RANGE = False  # with DEFAULT_MATRIX: rfb's convention, limited range

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
        forward=_rows(forward),
        offset=(y_offset, 128.0, 128.0),
        inverse=_rows(inverse),
    )


# -- NumPy conversions ----------------------------------------------------------------


def _rows(matrix: np.ndarray) -> tuple[tuple[float, float, float], ...]:
    return tuple((float(a), float(b), float(c)) for a, b, c in matrix)


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


# Names of rfb.converters and rfb.videocolour, importable from here as well.
_MOVED = {
    **dict.fromkeys(
        ("AV_FORMATS", "FrameConverter", "HostConverter", "OpenCVConverter", "default_threads", "host_converter"),
        "rfb.converters",
    ),
    **dict.fromkeys(
        (
            "COLOUR_PRIMARIES_BT709",
            "TRANSFER_BT709",
            "MATRIX_BT709",
            "MATRIX_BT601",
            "VideoColour",
            "BT709_LIMITED",
            "BT601_LIMITED",
            "colour_of",
            "label",
        ),
        "rfb.videocolour",
    ),
}


def __getattr__(name: str) -> Any:
    """The converters and VUI labels, from their own modules (imported on first use)."""
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
