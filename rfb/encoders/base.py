"""The EncoderBackend seam: what every encode route (CPU, GPU, image) implements.

Every route sits behind this one small protocol so that the server, the fan-out and
the benchmark treat them alike, and so that tests can run the routes side by side on
the same frames. A backend is built for one size by its factory and is used from one
thread at a time (the fan-out group's encode thread).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from rfb.frames import RawFrame

Transport = Literal["webcodecs", "image"]


class EncoderUnavailable(RuntimeError):
    """This route cannot run here; the message says why (missing package, no engine...)."""


@dataclass(frozen=True, slots=True)
class EncoderConfig:
    """What a factory needs to build a backend for one stream."""

    width: int
    height: int
    fps: float = 30.0
    bitrate: int = 8_000_000
    gop: int | None = None  # frames between IDRs; None: the route's default (long, keyframes on demand)
    quality: int = 80  # image routes: JPEG quality 1..100
    device_id: int = 0


@dataclass(frozen=True, slots=True)
class EncodedPayload:
    """One unit on the wire: an H.264 Annex B access unit, or one image.

    ``codec`` is the WebCodecs codec string (``avc1.PPCCLL``) for video, derived from
    the SPS actually produced; ``mime`` is the image type for images.
    """

    data: bytes
    keyframe: bool
    width: int
    height: int
    transport: Transport
    codec: str | None = None
    mime: str | None = None


@runtime_checkable
class EncoderBackend(Protocol):
    """One encoder instance for one stream size.

    ``encode`` returns zero or more payloads (a low-latency H.264 route returns exactly
    one access unit per frame; an image route one image). ``force_keyframe`` makes the
    next payload an IDR (video) — image payloads are always keyframes.
    """

    name: str
    transport: Transport

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False) -> list[EncodedPayload]: ...

    def flush(self) -> list[EncodedPayload]: ...

    def close(self) -> None: ...
