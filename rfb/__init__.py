"""rfb: watch and steer a GPU-rendered framebuffer from a web browser.

The public API only. Importing rfb never imports CUDA, CuPy, FFmpeg or the server:
those load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rfb.encoders.base import EncodedPayload, EncoderBackend, EncoderConfig, EncoderUnavailable
from rfb.encoders.registry import (
    available_video_encoders,
    encoder_status,
    register_video_encoder,
    unregister_video_encoder,
)
from rfb.frames import FrameError, RawFrame

__version__ = "0.1.0"

__all__ = [
    "Display",
    "EncodedPayload",
    "EncoderBackend",
    "EncoderConfig",
    "EncoderUnavailable",
    "FrameError",
    "InputEvent",
    "RawFrame",
    "Server",
    "available_video_encoders",
    "enable_cuda_context_sharing",
    "encoder_status",
    "register_video_encoder",
    "serve",
    "start",
    "unregister_video_encoder",
]

_LAZY = {
    "serve": "rfb.launch",
    "Display": "rfb.display",
    "start": "rfb.launch",
    "InputEvent": "rfb.events",
    "Server": "rfb.streams",
    "enable_cuda_context_sharing": "rfb.gpu",
}

if TYPE_CHECKING:
    from rfb.display import Display
    from rfb.events import InputEvent
    from rfb.gpu import enable_cuda_context_sharing
    from rfb.launch import serve, start
    from rfb.streams import Server


def __dir__() -> list[str]:
    """The module's names and the lazy ones, so that ``dir(rfb)`` and completion show the whole API."""
    return sorted({*globals(), *_LAZY})


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'rfb' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
