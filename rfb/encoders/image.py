"""The image route: every frame as one JPEG (or, for idle stills, one lossless PNG).

For browsers without WebCodecs, and for viewers that prefer exact pixels over
bandwidth. JPEG goes through simplejpeg (libjpeg-turbo, taking the NumPy array as
it is), which measured faster than Pillow's JPEG writer for the same bytes and
quality (``python -m rfb.benchmark``, docs/performance.md); PNG goes through
Pillow at a low zlib level, since a still is sent once and waiting on zlib's
higher levels costs the viewer more than the bytes they save.

Lossless stills: a display that sees the scene idle (no new frame for a while) can
send the last frame once more with ``encode(frame, lossless=True)`` to replace the
JPEG artefacts with the exact pixels; every other call gives JPEG. Each payload is
self-contained, so ``keyframe`` is always true and ``force_keyframe`` changes
nothing.
"""

from __future__ import annotations

import io

import numpy as np

from rfb.colorspace import HostConverter
from rfb.encoders.base import EncodedPayload, EncoderConfig, Transport
from rfb.encoders.registry import EncoderEntry
from rfb.frames import FrameError, RawFrame, frame_from_array

NAME = "image"

JPEG_MIME = "image/jpeg"
PNG_MIME = "image/png"

# zlib level for PNG stills: 1 is ~2.5x faster than Pillow's default 6 at 1080p.
PNG_COMPRESS_LEVEL = 1

# simplejpeg's names for the RawFrame layouts it takes directly (alpha is skipped).
_JPEG_COLORSPACES = {"rgb24": "RGB", "rgba8": "RGBX"}


class ImageEncoder:
    """An :class:`~rfb.encoders.base.EncoderBackend` that turns each frame into one image."""

    transport: Transport = "image"

    def __init__(self, config: EncoderConfig, *, name: str = NAME) -> None:
        if not 1 <= config.quality <= 100:
            raise ValueError(f"JPEG quality must be 1..100, got {config.quality}")
        if config.width <= 0 or config.height <= 0:
            raise FrameError(f"expected a positive frame size, got {config.width}x{config.height}")
        self.name = name
        self.config = config
        self._rgb: HostConverter | None = None  # nv12 -> rgb24, made on first nv12 frame
        self._closed = False

    def encode(
        self, frame: RawFrame, *, force_keyframe: bool = False, lossless: bool = False
    ) -> list[EncodedPayload]:
        """One JPEG of the frame (``config.quality``), or one PNG with ``lossless=True``."""
        frame = self._check_frame(frame)
        if lossless:
            data, mime = self._png(frame), PNG_MIME
        else:
            data, mime = self._jpeg(frame), JPEG_MIME
        return [
            EncodedPayload(
                data=data,
                keyframe=True,
                width=frame.width,
                height=frame.height,
                transport="image",
                mime=mime,
            )
        ]

    def flush(self) -> list[EncodedPayload]:
        """Nothing is ever held back."""
        self._require_open()
        return []

    def close(self) -> None:
        """Release the nv12 converter. Safe to call more than once."""
        self._closed = True
        if self._rgb is not None:
            self._rgb.close()
            self._rgb = None

    def __enter__(self) -> ImageEncoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------

    def _require_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.name} encoder is closed; create a new one")

    def _check_frame(self, frame: RawFrame) -> RawFrame:
        self._require_open()
        if not isinstance(frame, RawFrame):
            raise FrameError(f"expected a RawFrame, got {type(frame).__name__} (use rfb.frames.frame_from_array)")
        if frame.memory != "cpu":
            raise FrameError(f"{self.name} encodes host frames; got memory={frame.memory!r}")
        frame = frame_from_array(frame)
        if frame.size != (self.config.width, self.config.height):
            raise FrameError(
                f"{self.name} was opened for {self.config.width}x{self.config.height} frames, "
                f"got {frame.width}x{frame.height} (open a new encoder for a new size)"
            )
        return frame

    def _rgb_pixels(self, frame: RawFrame) -> np.ndarray:
        # nv12 -> rgb24 through swscale (BT.709 limited, as every route encodes it)
        if frame.pixel_format != "nv12":
            return frame.data
        if self._rgb is None:
            self._rgb = HostConverter("rgb24")
        return self._rgb.convert(frame).to_ndarray()

    def _jpeg(self, frame: RawFrame) -> bytes:
        import simplejpeg

        if frame.pixel_format == "nv12":
            pixels, colorspace = self._rgb_pixels(frame), "RGB"
        else:
            pixels, colorspace = frame.data, _JPEG_COLORSPACES[frame.pixel_format]
        return simplejpeg.encode_jpeg(
            pixels, quality=self.config.quality, colorspace=colorspace, colorsubsampling="420", fastdct=True
        )

    def _png(self, frame: RawFrame) -> bytes:
        from PIL import Image

        pixels = self._rgb_pixels(frame)
        # RGBX raw mode reads rgba8 and drops alpha: video ignores alpha, so does the still
        raw_mode = "RGBX" if frame.pixel_format == "rgba8" else "RGB"
        image = Image.frombytes("RGB", (frame.width, frame.height), pixels, "raw", raw_mode)
        out = io.BytesIO()
        image.save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        return out.getvalue()


def create(config: EncoderConfig) -> ImageEncoder:
    """The image route's factory."""
    return ImageEncoder(config)


def probe() -> str | None:
    """None when simplejpeg and Pillow import, else which one is missing."""
    try:
        import simplejpeg  # noqa: F401
    except ImportError as exc:
        return f"simplejpeg is not installed ({exc}); pip install simplejpeg"
    try:
        import PIL  # noqa: F401
    except ImportError as exc:
        return f"Pillow is not installed ({exc}); pip install pillow"
    return None


ENTRIES: list[EncoderEntry] = [
    EncoderEntry(
        name=NAME,
        factory=create,
        transport="image",
        probe=probe,
        priority=0,
        gpu=False,
        description="JPEG per frame (simplejpeg/libjpeg-turbo), PNG for lossless stills (Pillow)",
    )
]
