"""Quality and timing measures shared by the benchmark and the encoder tests.

Quality is measured the way a viewer sees it: the payload is decoded back to RGB by
a real decoder (FFmpeg's H.264 decoder through PyAV, libjpeg-turbo or Pillow for
images) and compared with the frame that was published.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from av.video.codeccontext import VideoCodecContext

# PSNR of identical pictures (a finite stand-in for infinity, so that means stay finite).
PSNR_IDENTICAL = 100.0


def psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 pictures of the same shape."""
    if reference.shape != decoded.shape:
        raise ValueError(f"expected pictures of the same shape, got {reference.shape} and {decoded.shape}")
    diff = reference.astype(np.float32) - decoded.astype(np.float32)
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return PSNR_IDENTICAL
    return min(PSNR_IDENTICAL, 10.0 * math.log10(255.0**2 / mse))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` th percentile (0..100) of ``values`` (linear interpolation)."""
    if not values:
        raise ValueError("expected at least one value, got none")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


class H264Decoder:
    """Decodes Annex B access units back to RGB with FFmpeg's software H.264 decoder.

    The decoder follows the stream's VUI colour description when converting to RGB,
    so a route that tags its colours wrongly loses PSNR here, as it would in a browser.
    """

    def __init__(self) -> None:
        import av

        self._context: VideoCodecContext | None = av.CodecContext.create("h264", "r")

    def decode(self, access_unit: bytes) -> list[np.ndarray]:
        """(H, W, 3) RGB pictures that this access unit completes (normally one)."""
        import av

        if self._context is None:
            raise RuntimeError("H264Decoder is closed")
        frames = self._context.decode(av.Packet(access_unit))
        return [f.to_ndarray(format="rgb24") for f in frames]

    def decode_all(self, access_units: Iterable[bytes]) -> list[np.ndarray]:
        """Decode a stream of access units, then drain the decoder."""
        out = [rgb for au in access_units for rgb in self.decode(au)]
        return out + self.flush()

    def flush(self) -> list[np.ndarray]:
        """Pictures the decoder still holds (none for a stream without reordering)."""
        if self._context is None:
            raise RuntimeError("H264Decoder is closed")
        frames = self._context.decode(None)
        return [f.to_ndarray(format="rgb24") for f in frames]

    def close(self) -> None:
        self._context = None

    def __enter__(self) -> H264Decoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def decode_image(data: bytes) -> np.ndarray:
    """A JPEG or PNG payload as (H, W, 3) RGB (alpha dropped)."""
    if data[:2] == b"\xff\xd8":
        import simplejpeg

        rgb: np.ndarray = simplejpeg.decode_jpeg(data, colorspace="RGB")
        return rgb
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))
