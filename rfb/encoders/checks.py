"""Frame checks every encode route makes, whatever its codec or memory.

They live apart from any one route so that routes share them without importing each
other: an encoder is opened for one size, and 4:2:0 video needs even dimensions.
"""

from __future__ import annotations

from rfb.encoders.base import EncoderConfig
from rfb.frames import FrameError, RawFrame, frame_from_array


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
