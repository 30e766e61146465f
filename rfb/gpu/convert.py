"""RGB -> NV12 on the GPU (a CuPy RawKernel), and frames across PCIe, each way in one 2-D copy.

NV12 is what video encoders eat, and it is half the bytes of RGB: converting on the
device before anything crosses PCIe halves the copy, and NVENC takes it as it is.
The kernel runs one thread per 2x2 block: four luma samples and one chroma pair from
the average of the four pixels, with the coefficients of
:func:`rfb.colorspace.color_matrix`, like ``rfb.colorspace.rgb_to_nv12_host``, the NumPy
twin it is tested against (within one code value).

The output is ONE allocation, ``(H + H/2, W)`` uint8: the luma plane followed by the
interleaved UV plane. NVENC and FFmpeg describe an NV12 surface by one pointer and
one pitch, with the chroma plane found at ``pitch * H`` bytes after luma; two separate
allocations cannot be described that way.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import numpy as np

from rfb.colorspace import DEFAULT_MATRIX, color_matrix, nv12_to_rgb_host
from rfb.frames import FrameError, RawFrame, frame_from_array
from rfb.gpu.arrays import as_cupy, check_cuda_frame, cuda_frame, describe_device_array, host_shape, row_pitch
from rfb.gpu.context import import_cupy

_KERNEL_NAME = "rfb_rgb_to_nv12"
# Shared by every rfb CUDA kernel that writes 8-bit samples, so they all round alike.
DEVICE_ROUND_U8 = r"""
__device__ __forceinline__ unsigned char rfb_to_u8(float v) {
    // Round half up and clamp, exactly as rfb.colorspace._to_u8.
    v = floorf(v + 0.5f);
    return (unsigned char)fminf(fmaxf(v, 0.0f), 255.0f);
}
"""

_KERNEL_SOURCE = (
    DEVICE_ROUND_U8
    + r"""
// Everything but the two pointers, in one struct passed by value (kernel parameter
// space, read through the constant cache) and made once per geometry and matrix: a
// launch then marshals three arguments instead of eighteen.
struct RfbNv12Params {
    long long src_pitch;
    long long dst_pitch;
    int channels;
    int half_width;
    int half_height;
    int unused;
    float yr, yg, yb, y0, ur, ug, ub, vr, vg, vb, c0;
};

extern "C" __global__ void rfb_rgb_to_nv12(
    const unsigned char* __restrict__ src, unsigned char* __restrict__ dst,
    const RfbNv12Params p)
{
    const int bx = blockIdx.x * blockDim.x + threadIdx.x;
    const int by = blockIdx.y * blockDim.y + threadIdx.y;
    if (bx >= p.half_width || by >= p.half_height) return;
    const long long x = 2LL * bx;
    const long long y = 2LL * by;
    const int channels = p.channels;
    float sr = 0.0f, sg = 0.0f, sb = 0.0f;
    #pragma unroll
    for (int dy = 0; dy < 2; ++dy) {
        const unsigned char* row = src + (y + dy) * p.src_pitch + x * channels;
        unsigned char* luma = dst + (y + dy) * p.dst_pitch + x;
        #pragma unroll
        for (int dx = 0; dx < 2; ++dx) {
            const float r = row[dx * channels];
            const float g = row[dx * channels + 1];
            const float b = row[dx * channels + 2];
            sr += r; sg += g; sb += b;
            luma[dx] = rfb_to_u8(p.yr * r + p.yg * g + p.yb * b + p.y0);
        }
    }
    sr *= 0.25f; sg *= 0.25f; sb *= 0.25f;
    unsigned char* chroma = dst + (2LL * p.half_height + by) * p.dst_pitch + x;
    chroma[0] = rfb_to_u8(p.ur * sr + p.ug * sg + p.ub * sb + p.c0);
    chroma[1] = rfb_to_u8(p.vr * sr + p.vg * sg + p.vb * sb + p.c0);
}
"""
)
# The host image of RfbNv12Params (C alignment: the struct is padded to 8 bytes).
_PARAMS_DTYPE = np.dtype(
    [
        ("src_pitch", "<i8"),
        ("dst_pitch", "<i8"),
        ("channels", "<i4"),
        ("half_width", "<i4"),
        ("half_height", "<i4"),
        ("unused", "<i4"),
        ("coefficients", "<f4", (11,)),
    ],
    align=True,
)
_BLOCK = (32, 8, 1)
# cudaMemcpyKind
_MEMCPY_HOST_TO_DEVICE = 1
_MEMCPY_DEVICE_TO_HOST = 2
_MEMCPY_DEVICE_TO_DEVICE = 3


@functools.cache
def _kernel() -> Any:
    """The RawKernel, built once per process (CuPy compiles it per device on first launch)."""
    cp = import_cupy()
    return cp.RawKernel(_KERNEL_SOURCE, _KERNEL_NAME)


def rgb_to_nv12(
    rgb: Any,
    *,
    out: Any = None,
    matrix: str = DEFAULT_MATRIX,
    full_range: bool = False,
    stream: Any = None,
) -> Any:
    """Convert a device ``(H, W, 3|4)`` uint8 image to one ``(H + H/2, W)`` NV12 allocation.

    ``rgb`` is a CUDA array (CuPy, PyTorch, JAX; rows may be padded) or a cuda
    ``RawFrame`` of rgb24/rgba8 (alpha is ignored). ``out``, when given, is reused: a
    writable uint8 CUDA array of shape ``(H + H/2, W)`` on the same device, rows packed
    (a padded pitch is fine). The kernel is queued on ``stream`` (a CuPy stream), else
    on CuPy's current stream, and not waited for. Returns ``out`` (a new CuPy array
    when none was given).

    This runs once per frame on the render loop's thread, so the common case (CuPy
    arrays in and out) reads their layout from CuPy's attributes and reuses the launch
    arguments of the last frame of the same geometry; anything else is validated in full.
    """
    fast = _fast_cupy_args(rgb, out)
    if fast is not None:
        cp, src, dst, geometry = fast
    else:
        cp, src, dst, geometry = _checked_args(rgb, out, matrix, full_range)
    device = geometry[5]
    current = cp.cuda.runtime.getDevice()
    if current != device:
        cp.cuda.runtime.setDevice(device)
    try:
        grid, params = _plan(geometry, matrix, full_range)
        if stream is None:
            _kernel()(grid, _BLOCK, (src, dst, params))
        else:
            with stream:
                _kernel()(grid, _BLOCK, (src, dst, params))
    finally:
        if current != device:
            cp.cuda.runtime.setDevice(current)
    return out if out is not None else dst


# (width, height, channels, source pitch, out pitch, device): what a launch depends on.
_Geometry = tuple[int, int, int, int, int, int]
_U8 = np.dtype(np.uint8)


@functools.lru_cache(maxsize=64)
def _plan(geometry: _Geometry, matrix: str, full_range: bool) -> tuple[tuple[int, int, int], Any]:
    """The grid and the kernel's parameter struct (a NumPy structured scalar) of one geometry and matrix."""
    width, height, channels, src_pitch, dst_pitch, _device = geometry
    half_w, half_h = width // 2, height // 2
    host = np.zeros(1, dtype=_PARAMS_DTYPE)
    host["src_pitch"], host["dst_pitch"], host["channels"] = src_pitch, dst_pitch, channels
    host["half_width"], host["half_height"] = half_w, half_h
    host["coefficients"] = color_matrix(matrix, full_range).kernel_coefficients()
    params = host[0]  # numpy.void: CuPy passes a structured scalar to the kernel by value
    grid = ((half_w + _BLOCK[0] - 1) // _BLOCK[0], (half_h + _BLOCK[1] - 1) // _BLOCK[1], 1)
    return grid, params


def _fast_cupy_args(rgb: Any, out: Any) -> tuple[Any, Any, Any, _Geometry] | None:
    """CuPy image in, CuPy (or no) output: the layout from CuPy's attributes; None for the full check.

    Returns None for anything unusual (another framework, a RawFrame, an odd or unpacked
    layout, another device), which then goes through :func:`_checked_args` and gets its
    precise error there. Nothing here imports CuPy: a CuPy array implies it is loaded.
    """
    cp = sys.modules.get("cupy")
    if cp is None or type(rgb) is not cp.ndarray or rgb.ndim != 3 or rgb.dtype != _U8:
        return None
    height, width, channels = rgb.shape
    pitch, step, one = rgb.strides
    if channels not in (3, 4) or step != channels or one != 1 or pitch < width * channels or height < 2:
        return None
    if width % 2 or height % 2:
        return None
    device = rgb.data.device_id
    if out is None:
        return cp, rgb, _new_nv12(cp, width, height, device), (width, height, channels, pitch, width, device)
    if type(out) is not cp.ndarray or out.dtype != _U8 or out.shape != (height + height // 2, width):
        return None
    out_pitch, out_step = out.strides
    if out_step != 1 or out_pitch < width or out.data.device_id != device:
        return None
    return cp, rgb, out, (width, height, channels, pitch, out_pitch, device)


def _new_nv12(cp: Any, width: int, height: int, device: int) -> Any:
    with cp.cuda.Device(device):
        return cp.empty((height + height // 2, width), dtype=cp.uint8)


def _checked_args(rgb: Any, out: Any, matrix: str, full_range: bool) -> tuple[Any, Any, Any, _Geometry]:
    """Validate any CUDA image and output in full (all frameworks, RawFrames); their CuPy views."""
    if isinstance(rgb, RawFrame):
        frame = rgb
        if frame.memory == "cuda":
            check_cuda_frame(frame)
    else:
        frame = cuda_frame(rgb)
    if frame.memory != "cuda" or frame.pixel_format not in ("rgb24", "rgba8"):
        raise FrameError(
            f"rgb_to_nv12() expected a CUDA rgb24 or rgba8 image, got a {frame.memory} {frame.pixel_format} frame"
            + ("; use rfb.colorspace.rgb_to_nv12_host for host arrays" if frame.memory == "cpu" else "")
        )
    width, height = frame.width, frame.height
    if width % 2 or height % 2:
        raise FrameError(f"NV12 needs even width and height, got {width}x{height}")
    color_matrix(matrix, full_range)  # a bad matrix name is refused before any device work
    cp = import_cupy()
    with cp.cuda.Device(frame.device_id):
        src = as_cupy(frame.data)
        dst, dst_pitch = _checked_out(cp, out, width, height, frame.device_id)
    channels = 4 if frame.pixel_format == "rgba8" else 3
    return cp, src, dst, (width, height, channels, frame.stride, dst_pitch, frame.device_id)


def copy_frame_to_host(frame: RawFrame, out: np.ndarray | None = None, *, stream: Any = None) -> np.ndarray:
    """Copy a cuda frame's pixels into a packed host array, in one 2-D copy, and wait for it.

    ``out`` (e.g. a view of pinned memory, for a faster copy) must be a C-contiguous
    uint8 array of the frame's packed shape: ``(H, W, 3)``, ``(H, W, 4)`` or
    ``(H + H/2, W)``; a new pageable array is made when it is None. The copy is queued
    on ``stream`` (else CuPy's current stream) after the work already on it.
    """
    check_cuda_frame(frame)
    shape = host_shape(frame)
    if out is None:
        out = np.empty(shape, dtype=np.uint8)
    elif out.dtype != np.uint8 or tuple(out.shape) != shape or not out.flags.c_contiguous:
        raise FrameError(
            f"out must be a C-contiguous uint8 array of shape {shape}, got {out.dtype} {tuple(out.shape)} "
            f"(contiguous: {out.flags.c_contiguous})"
        )
    cp = import_cupy()
    with cp.cuda.Device(frame.device_id):
        src = as_cupy(frame.data)
        s = stream if stream is not None else cp.cuda.get_current_stream()
        _copy_2d(cp, (out.ctypes.data, frame.row_bytes), (src.data.ptr, frame.stride), frame, _MEMCPY_DEVICE_TO_HOST, s)
        s.synchronize()
    return out


def copy_frame_to_device(frame: RawFrame, out: RawFrame, *, stream: Any = None) -> RawFrame:
    """Copy a frame's pixels (host or cuda) into the cuda frame ``out``, in one 2-D copy.

    ``out`` must have the frame's layout and size; either pitch may be padded. A host
    frame is copied up (host -> device), a cuda one on the device (e.g. into a buffer
    whose pitch an encoder accepts). The copy is queued on ``stream`` (else CuPy's
    current stream) and not waited for. Returns ``out``.
    """
    check_cuda_frame(out)
    if (frame.pixel_format, frame.width, frame.height) != (out.pixel_format, out.width, out.height):
        raise FrameError(
            f"copy_frame_to_device() needs frames of one layout and size, got a {frame.width}x{frame.height} "
            f"{frame.pixel_format} frame and a {out.width}x{out.height} {out.pixel_format} one"
        )
    cp = import_cupy()
    with cp.cuda.Device(out.device_id):
        s = stream if stream is not None else cp.cuda.get_current_stream()
        dst = (as_cupy(out.data).data.ptr, out.stride)
        if frame.memory == "cpu":
            frame = frame_from_array(frame)  # C-contiguous: its pitch is its row
            _copy_2d(cp, dst, (frame.data.ctypes.data, frame.stride), frame, _MEMCPY_HOST_TO_DEVICE, s)
        else:
            check_cuda_frame(frame)
            src = as_cupy(frame.data)  # CuPy waits for the producer's stream, if it names one
            _copy_2d(cp, dst, (src.data.ptr, frame.stride), frame, _MEMCPY_DEVICE_TO_DEVICE, s)
    return out


def to_host_rgb(frame: RawFrame, *, matrix: str = DEFAULT_MATRIX, full_range: bool = False) -> np.ndarray:
    """The frame as a host ``(H, W, 3)`` uint8 RGB array (for tests and the image route).

    cuda frames are copied down (nv12 is half the bytes of RGB, so it is copied as it is
    and converted on the host with the inverse of ``matrix``); host frames are
    converted without a copy where none is needed (an rgb24 host frame's own array is
    returned).
    """
    host = frame.data if frame.memory == "cpu" else copy_frame_to_host(frame)
    if frame.pixel_format == "nv12":
        return nv12_to_rgb_host(host, matrix=matrix, full_range=full_range)
    if frame.pixel_format == "rgba8":
        return np.ascontiguousarray(host[..., :3])
    return host


def _copy_2d(cp: Any, dst: tuple[int, int], src: tuple[int, int], frame: RawFrame, kind: int, stream: Any) -> None:
    """One ``cudaMemcpy2DAsync`` of ``frame``'s rows from ``src`` to ``dst`` ((pointer, pitch) each)."""
    rows = host_shape(frame)[0]
    cp.cuda.runtime.memcpy2DAsync(dst[0], dst[1], src[0], src[1], frame.row_bytes, rows, kind, stream.ptr)


def _checked_out(cp: Any, out: Any, width: int, height: int, device_id: int) -> tuple[Any, int]:
    """The output as a CuPy array and its pitch, after checking it can take this frame."""
    shape = (height + height // 2, width)
    if out is None:
        return cp.empty(shape, dtype=cp.uint8), width
    info = describe_device_array(out)
    if info.dtype != np.uint8 or info.shape != shape:
        raise FrameError(f"out must be a uint8 CUDA array of shape {shape}, got {info.dtype} {info.shape}")
    if info.readonly:
        raise FrameError("out is a read-only CUDA array")
    if info.device_id is not None and info.device_id != device_id:
        raise FrameError(f"out lives on CUDA device {info.device_id}, the image on device {device_id}")
    return as_cupy(out), row_pitch(info, "nv12")
