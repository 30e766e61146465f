"""The image route: every frame as one JPEG (or, for idle stills, one lossless PNG).

For browsers without WebCodecs, and for viewers that prefer exact pixels over
bandwidth. JPEG goes through simplejpeg (libjpeg-turbo, taking the NumPy array as
it is), which measured faster than Pillow's JPEG writer for the same bytes and
quality (``python -m rfb.benchmark``, docs/performance.md); PNG goes through
Pillow at a low zlib level, since a still is sent once and waiting on zlib's
higher levels costs the viewer more than the bytes they save.

JPEG encoding in libjpeg-turbo is single-threaded, but simplejpeg releases the GIL.
So a large frame is cut into horizontal strips (a whole number of 16-row MCU rows
each) that are encoded at once on the encoder's own threads, and the strips are
joined into one baseline JPEG with restart markers (ITU-T T.81 B.2.4.4, F.1.2.3):
each strip's entropy-coded data becomes one restart interval, so the DC predictors
reset exactly where a strip's encoder started them at zero. Every JPEG decoder
handles restart markers, and the pixels decode exactly as from one encode of the
whole frame.

Lossless stills: a display that sees the scene idle (no new frame for a while) can
send the last frame once more with ``encode(frame, lossless=True)`` to replace the
JPEG artefacts with the exact pixels; every other call gives JPEG. Each payload is
self-contained, so ``keyframe`` is always true and ``force_keyframe`` changes
nothing.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rfb.colorspace import HostConverter, default_threads
from rfb.encoders.base import EncodedPayload, EncoderConfig, Transport
from rfb.encoders.checks import check_host_frame
from rfb.encoders.registry import EncoderEntry
from rfb.frames import FrameError, RawFrame

NAME = "image"

JPEG_MIME = "image/jpeg"
PNG_MIME = "image/png"

# zlib level for PNG stills: 1 is ~2.5x faster than Pillow's default 6 at 1080p.
PNG_COMPRESS_LEVEL = 1

# simplejpeg's names for the RawFrame layouts it takes directly (alpha is skipped).
_JPEG_COLORSPACES = {"rgb24": "RGB", "rgba8": "RGBX"}

# 4:2:0 JPEG codes 16x16-pixel MCUs: strips are whole MCU rows.
_MCU = 16
# Below this many pixels a frame is encoded in one piece (threads cost more than they save).
STRIP_MIN_PIXELS = 320 * 240
# DRI stores the restart interval (MCUs) in 16 bits.
_MAX_RESTART_INTERVAL = 0xFFFF

# JPEG markers
_SOI, _EOI, _SOS, _DRI, _RST0 = 0xD8, 0xD9, 0xDA, 0xDD, 0xD0
_SOF_BASELINE = 0xC0


class ImageEncoder:
    """An :class:`~rfb.encoders.base.EncoderBackend` that turns each frame into one image."""

    transport: Transport = "image"

    def __init__(self, config: EncoderConfig, *, name: str = NAME, strips: int | None = None) -> None:
        """``strips``: JPEG strips encoded in parallel (default: the usable cores)."""
        if not 1 <= config.quality <= 100:
            raise ValueError(f"JPEG quality must be 1..100, got {config.quality}")
        if config.width <= 0 or config.height <= 0:
            raise FrameError(f"expected a positive frame size, got {config.width}x{config.height}")
        self.name = name
        self.config = config
        self.strips = max(1, default_threads() if strips is None else strips)
        self._rgb: HostConverter | None = None  # nv12 -> rgb24, made on first nv12 frame
        self._pool: ThreadPoolExecutor | None = None  # strip encoders, made on first large frame
        self._closed = False

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False, lossless: bool = False) -> list[EncodedPayload]:
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
        """Join the strip threads and release the nv12 converter. Safe to call more than once."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
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
        return check_host_frame(frame, self.config, self.name)

    def _rgb_pixels(self, frame: RawFrame) -> np.ndarray:
        # nv12 -> rgb24 through swscale (BT.709 limited, as every route encodes it)
        if frame.pixel_format != "nv12":
            pixels: np.ndarray = frame.data
            return pixels
        if self._rgb is None:
            self._rgb = HostConverter("rgb24")
        converted: np.ndarray = self._rgb.convert(frame).to_ndarray()
        return converted

    def _jpeg(self, frame: RawFrame) -> bytes:
        if frame.pixel_format == "nv12":
            pixels, colorspace = self._rgb_pixels(frame), "RGB"
        else:
            pixels, colorspace = frame.data, _JPEG_COLORSPACES[frame.pixel_format]
        rows = strip_rows(frame.width, frame.height, self.strips)
        if rows is None:
            return _encode_jpeg(pixels, self.config.quality, colorspace)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.strips, thread_name_prefix="rfb-jpeg")
        parts = [pixels[top : top + rows] for top in range(0, frame.height, rows)]
        strips = list(self._pool.map(lambda part: _encode_jpeg(part, self.config.quality, colorspace), parts))
        joined = join_jpeg_strips(strips, frame.width, frame.height, rows)
        if joined is None:  # the strips disagree on tables: never expected, but stay correct
            return _encode_jpeg(pixels, self.config.quality, colorspace)
        return joined

    def _png(self, frame: RawFrame) -> bytes:
        from PIL import Image

        pixels = self._rgb_pixels(frame)
        # RGBX raw mode reads rgba8 and drops alpha: video ignores alpha, so does the still
        raw_mode = "RGBX" if frame.pixel_format == "rgba8" else "RGB"
        image = Image.frombytes("RGB", (frame.width, frame.height), pixels, "raw", raw_mode)
        out = io.BytesIO()
        image.save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        return out.getvalue()


def _encode_jpeg(pixels: np.ndarray, quality: int, colorspace: str) -> bytes:
    import simplejpeg

    data: bytes = simplejpeg.encode_jpeg(
        pixels, quality=quality, colorspace=colorspace, colorsubsampling="420", fastdct=False
    )
    return data


def strip_rows(width: int, height: int, strips: int) -> int | None:
    """Rows per JPEG strip (a multiple of 16), or None to encode the frame whole."""
    if strips < 2 or width * height < STRIP_MIN_PIXELS:
        return None
    mcu_rows = -(-height // _MCU)
    rows = -(-mcu_rows // strips) * _MCU
    mcus_per_row = -(-width // _MCU)
    if rows >= height or (rows // _MCU) * mcus_per_row > _MAX_RESTART_INTERVAL:
        return None
    return rows


def _segments(jpeg: bytes) -> tuple[list[tuple[int, bytes]], int]:
    # The marker segments before the scan (marker, whole segment bytes) and the offset
    # where the entropy-coded data starts (just after the SOS header).
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("expected a JPEG starting with SOI")
    pos, out = 2, []
    while pos + 4 <= len(jpeg):
        if jpeg[pos] != 0xFF:
            raise ValueError(f"expected a marker at byte {pos}, got 0x{jpeg[pos]:02x}")
        marker = jpeg[pos + 1]
        (length,) = struct.unpack_from(">H", jpeg, pos + 2)
        out.append((marker, jpeg[pos : pos + 2 + length]))
        pos += 2 + length
        if marker == _SOS:
            return out, pos
    raise ValueError("expected an SOS segment, got none")


def join_jpeg_strips(strips: Sequence[bytes], width: int, height: int, rows: int) -> bytes | None:
    """One baseline JPEG from strips of ``rows`` rows (the last may be shorter).

    Strip 0's headers are kept with the frame height written into its SOF and a DRI
    segment added; each strip's scan data becomes one restart interval, separated
    by RST0..RST7 in turn. Returns None when the strips' headers differ in anything
    but the height (then they cannot share one set of tables).
    """
    headers, scans = [], []
    for strip in strips:
        segments, start = _segments(strip)
        if strip[-2:] != b"\xff\xd9":
            raise ValueError("expected a JPEG ending with EOI")
        # compare tables and scan headers, not the heights the SOFs carry
        headers.append([seg if m != _SOF_BASELINE else seg[:5] + seg[7:] for m, seg in segments])
        scans.append(strip[start:-2])
    if any(h != headers[0] for h in headers[1:]):
        return None
    segments, _ = _segments(strips[0])
    interval = (rows // _MCU) * (-(-width // _MCU))
    out = bytearray(b"\xff\xd8")
    for marker, seg in segments:
        if marker == _SOF_BASELINE:
            seg = seg[:5] + struct.pack(">H", height) + seg[7:]
        if marker == _SOS:
            out += struct.pack(">BBHH", 0xFF, _DRI, 4, interval)
        out += seg
    for i, scan in enumerate(scans):
        if i:
            out += bytes((0xFF, _RST0 + (i - 1) % 8))
        out += scan
    out += b"\xff\xd9"
    return bytes(out)


def create(config: EncoderConfig) -> ImageEncoder:
    """The image route's factory."""
    return ImageEncoder(config)


def probe() -> str | None:
    """None when simplejpeg and Pillow import, else which one is missing."""
    try:
        import simplejpeg  # noqa: F401  (the import is the probe)
    except ImportError as exc:
        return f"simplejpeg is not installed ({exc}); pip install simplejpeg"
    try:
        import PIL  # noqa: F401  (the import is the probe)
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
        reads_cuda=False,
        description="JPEG per frame (simplejpeg/libjpeg-turbo), PNG for lossless stills (Pillow)",
    )
]
