"""Frame checks every encode route makes, whatever its codec or memory.

They live apart from any one route so that routes share them without importing each
other: an encoder is opened for one size, and 4:2:0 video needs even dimensions.

The size limits below are the *widest* any route of a kind accepts: ``publish()``
refuses only a size that no route could encode, so that the frame fails in the
caller's stack instead of vanishing inside an encode thread. A route with narrower
limits (NVENC's minimum, say) refuses for itself and its group falls back to the next.
"""

from __future__ import annotations

from rfb.encoders.base import EncoderConfig
from rfb.frames import FrameError, RawFrame, frame_from_array

# libx264 through PyAV, measured on this project's CI machine for rgb24, rgba8 and nv12
# alike: 2x4 encodes; 4x2, 64x2 and 2x2 fail inside encode(); 16384 on either side
# opens, 16386 does not. libx264 is every display's last H.264 route.
H264_MIN_WIDTH = 2
H264_MIN_HEIGHT = 4
H264_MAX_SIDE = 16384
# libjpeg-turbo's JPEG_MAX_DIMENSION: simplejpeg refuses 65501 pixels on either side.
IMAGE_MAX_SIDE = 65500


def video_size_problem(width: int, height: int) -> str | None:
    """Why no H.264 route can encode ``width`` x ``height`` frames, or None when one can."""
    odd = " and ".join(f"{n} {v}" for n, v in (("width", width), ("height", height)) if v % 2)
    if odd:
        return f"H.264 (4:2:0) needs even frame dimensions, got {width}x{height}: {odd} is odd"
    low = [
        f"{n} {v} is below {m}"
        for n, v, m in (("width", width, H264_MIN_WIDTH), ("height", height, H264_MIN_HEIGHT))
        if v < m
    ]
    high = [f"{n} {v} is above {H264_MAX_SIDE}" for n, v in (("width", width), ("height", height)) if v > H264_MAX_SIDE]
    if low or high:
        return (
            f"H.264 routes encode frames from {H264_MIN_WIDTH}x{H264_MIN_HEIGHT} to "
            f"{H264_MAX_SIDE}x{H264_MAX_SIDE} pixels, got {width}x{height}: {' and '.join(low + high)}"
        )
    return None


def image_size_problem(width: int, height: int) -> str | None:
    """Why no image route can encode ``width`` x ``height`` frames, or None when one can."""
    high = [
        f"{n} {v} is above {IMAGE_MAX_SIDE}" for n, v in (("width", width), ("height", height)) if v > IMAGE_MAX_SIDE
    ]
    if high:
        return (
            f"image routes (JPEG) encode frames up to {IMAGE_MAX_SIDE}x{IMAGE_MAX_SIDE} pixels, "
            f"got {width}x{height}: {' and '.join(high)}"
        )
    return None


def check_even_size(config: EncoderConfig, route: str) -> None:
    """4:2:0 H.264 needs even dimensions; say so before any encoder is opened."""
    if config.width <= 0 or config.height <= 0 or config.width % 2 or config.height % 2:
        raise FrameError(
            f"{route} encodes 4:2:0 video and needs an even, positive width and height; "
            f"got {config.width}x{config.height} (crop or pad the frame by one pixel)"
        )


def check_frame_size(frame: RawFrame, config: EncoderConfig, route: str) -> None:
    """An encoder is opened for one size; a frame of another is the caller's error."""
    if frame.size != (config.width, config.height):
        raise FrameError(
            f"{route} was opened for {config.width}x{config.height} frames, "
            f"got {frame.width}x{frame.height} (open a new encoder for a new size)"
        )


def check_host_frame(frame: RawFrame, config: EncoderConfig, route: str) -> RawFrame:
    """``frame`` validated as a host frame of the size ``route`` was opened for (what CPU routes take)."""
    if not isinstance(frame, RawFrame):
        raise FrameError(f"expected a RawFrame, got {type(frame).__name__} (use rfb.frames.frame_from_array)")
    if frame.memory != "cpu":
        raise FrameError(f"{route} encodes host frames; got memory={frame.memory!r} (use a GPU route for CUDA frames)")
    frame = frame_from_array(frame)  # validates shape, dtype and contiguity
    check_frame_size(frame, config, route)
    return frame
