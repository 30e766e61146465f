"""The CPU H.264 route: libx264 through PyAV, from host frames, for the browser's WebCodecs.

Also home of :class:`PyAVH264Encoder`, the PyAV encode loop shared with the
``nvenc_cpu`` route (FFmpeg's h264_nvenc): both take host frames, convert them once
with :func:`rfb.colorspace.host_converter` (OpenCV, else swscale), and differ only in
the FFmpeg encoder name and its options.

The stream's pixel format and VUI colour description follow the converted frames:
host RGB becomes yuv420p in BT.601 (OpenCV's matrix), nv12 goes in as it is in rfb's
BT.709. Both are in the SPS, so they are per stream: the first frame's kind sets them,
and a frame of the other kind re-opens the encoder (a new SPS and an IDR).

Low latency is the point of every choice here: no B-frames and no lookahead so that
each frame comes out of ``encode`` as one access unit; a VBV buffer of about one
frame so that no frame is much bigger than the average (a big frame is a late frame
on the wire); a long GOP with IDRs only when asked (a new viewer, a decoder error);
SPS/PPS repeated in-band on every IDR so that any IDR starts a decoder; and a VUI
with ``max_num_reorder_frames=0`` so that the browser's decoder outputs each frame
as soon as it is decoded instead of holding it back for reordering.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import TYPE_CHECKING

from rfb.colorspace import (
    BT709_LIMITED,
    FrameConverter,
    VideoColour,
    colour_of,
    default_threads,
    host_converter,
)
from rfb.encoders import h264
from rfb.encoders.base import EncodedPayload, EncoderConfig, EncoderUnavailable, Transport
from rfb.encoders.checks import check_even_size, check_host_frame
from rfb.encoders.registry import EncoderEntry
from rfb.frames import RawFrame

if TYPE_CHECKING:
    from av.video.codeccontext import VideoCodecContext
    from av.video.frame import VideoFrame

NAME = "h264_cpu"

# x264 preset: measured with `python -m rfb.benchmark` (docs/performance.md).
DEFAULT_PRESET = "ultrafast"

# Frames between IDRs when the config asks for none: x264's "infinite" (1 << 30),
# nine years at 30 fps. IDRs then come only when asked for. (Not 0: to FFmpeg's
# NVENC wrapper a GOP of 0 means every frame is an IDR.)
LONG_GOP = 1 << 30


@dataclass(frozen=True, slots=True)
class PyAVSettings:
    """How to open one FFmpeg H.264 encoder.

    ``options`` go to ``avcodec_open2`` (private and generic AVOptions alike);
    ``pix_fmt`` is what the encoder is opened for before any frame: the swscale
    fallback converts host RGB to it, and frames of another format (OpenCV's yuv420p)
    re-open the encoder for theirs. ``open_with_first_frame`` leaves ``avcodec_open2`` to
    the first ``encode()``: an encoder of hardware frames (``pix_fmt`` "cuda") needs
    the frames' ``hw_frames_ctx`` before it opens, and PyAV >= 18 adopts the first
    frame's when it opens a context that is not open yet.
    """

    codec: str
    options: dict[str, str] = field(default_factory=dict)
    pix_fmt: str = "nv12"
    thread_count: int = 0  # 0: the encoder's own choice
    open_with_first_frame: bool = False


def configure_context(
    config: EncoderConfig, settings: PyAVSettings, colour: VideoColour = BT709_LIMITED
) -> VideoCodecContext:
    """A PyAV encoder context set up for low-latency streaming of ``config``; not opened yet.

    One place for what every PyAV H.264 route sets: size, rate, no B-frames, the GOP,
    and the VUI the browser decodes with (``colour``: the matrix the frames were made
    with, limited range; rfb's BT.709 unless said otherwise). The caller opens it (or
    lets the first frame do so, see :attr:`PyAVSettings.open_with_first_frame`).
    """
    import av

    rate = Fraction(config.fps).limit_denominator(1001)
    try:
        context = av.CodecContext.create(settings.codec, "w")
    except (av.FFmpegError, ValueError) as exc:  # unknown encoder name: ValueError / FFmpegError
        raise EncoderUnavailable(f"FFmpeg has no encoder {settings.codec!r} in this PyAV build: {exc}") from exc
    if not isinstance(context, av.VideoCodecContext):
        raise EncoderUnavailable(f"FFmpeg's {settings.codec!r} is not a video encoder (got {type(context).__name__})")
    context.width = config.width
    context.height = config.height
    context.pix_fmt = settings.pix_fmt
    context.framerate = rate
    context.time_base = 1 / rate
    context.thread_count = settings.thread_count
    context.max_b_frames = 0
    context.gop_size = config.gop if config.gop else LONG_GOP
    context.color_primaries = colour.primaries
    context.color_trc = colour.transfer
    context.colorspace = colour.matrix
    context.color_range = 2 if colour.full_range else 1  # AVCOL_RANGE_JPEG / AVCOL_RANGE_MPEG
    context.options = dict(settings.options)
    return context


def vbv_options(config: EncoderConfig) -> dict[str, str]:
    """A CBR-like rate control with a VBV buffer of one frame's worth of bits."""
    if config.bitrate <= 0 or config.fps <= 0:
        raise ValueError(f"bitrate and fps must be positive, got bitrate={config.bitrate} fps={config.fps}")
    per_frame = max(1, round(config.bitrate / config.fps))
    return {"b": str(config.bitrate), "maxrate": str(config.bitrate), "bufsize": str(per_frame)}


class PyAVH264Encoder:
    """An :class:`~rfb.encoders.base.EncoderBackend` over one PyAV H.264 encoder.

    One instance encodes one stream of one size, from one thread at a time. Output
    is one Annex B access unit per frame; ``keyframe`` and ``codec`` of each payload
    are read from the bitstream (:mod:`rfb.encoders.h264`), not from FFmpeg's flags.
    """

    transport: Transport = "webcodecs"

    def __init__(
        self,
        name: str,
        config: EncoderConfig,
        settings: PyAVSettings,
        *,
        converter: FrameConverter | None = None,
    ) -> None:
        """Open the encoder now, so that a bad setting fails in the factory.

        It opens for ``settings.pix_fmt`` in rfb's BT.709; a first frame converted to
        another format or matrix re-opens it for that (once, before anything was sent).
        ``converter`` (owned from here on) replaces the default host conversion
        (:func:`rfb.colorspace.host_converter`); the benchmark uses it to time the
        textbook path.
        """
        check_even_size(config, name)
        self.name = name
        self.config = config
        self.settings = settings
        self._converter: FrameConverter | None = converter or host_converter(settings.pix_fmt)
        self._context: VideoCodecContext | None = None
        self._stream_kind: tuple[str, VideoColour] = (settings.pix_fmt, BT709_LIMITED)
        self._fed = False  # whether the open context has taken a frame (and may hold output)
        self._index = 0
        self._need_idr = True
        self._stream = h264.PayloadStream(config.width, config.height)
        self._closed = False
        try:
            self._open()
        except BaseException:
            self.close()  # the converter is ours from the first line: release it here too
            raise

    # -- the EncoderBackend protocol ---------------------------------------------

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False) -> list[EncodedPayload]:
        """Encode one host frame; returns its access unit (an IDR when forced)."""
        from av.video.frame import PictureType

        converter = self._require_open()
        frame = self._check_frame(frame)
        picture = converter.convert(frame)
        drained, context = self._context_for(picture)
        picture.pts = self._index
        self._index += 1
        if force_keyframe or self._need_idr:
            picture.pict_type = PictureType.I
            self._need_idr = False
        self._fed = True
        return drained + self._stream.payloads(context.encode(picture))

    def flush(self) -> list[EncodedPayload]:
        """Drain delayed output and end the sequence: the next encode starts with an IDR.

        With these settings nothing is delayed, so this is normally empty. FFmpeg
        encoders cannot take frames after a drain, so the context is released here
        and a fresh one is opened by the next ``encode``. A context that no frame has
        opened yet (``open_with_first_frame``) has nothing to drain and is kept: opening
        it without a frame would fail, and the next frame is an IDR anyway.
        """
        self._require_open()
        if self._context is None or not self._context.is_open:
            return []
        try:
            return self._stream.payloads(self._context.encode(None))
        finally:
            self._context = None
            self._need_idr = True

    def close(self) -> None:
        """Release the encoder and the converter. Safe to call more than once."""
        self._closed = True
        self._context = None  # PyAV frees the AVCodecContext (and joins x264's threads) here
        if self._converter is not None:
            self._converter.close()
            self._converter = None

    def __enter__(self) -> PyAVH264Encoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def codec(self) -> str | None:
        """The codec string of the stream so far (None before the first frame)."""
        return self._stream.codec

    @property
    def stream_kind(self) -> tuple[str, VideoColour]:
        """The pixel format and colour the encoder is (or will be) open for."""
        return self._stream_kind

    # -- internals ---------------------------------------------------------------

    def _require_open(self) -> FrameConverter:
        if self._closed or self._converter is None:
            raise RuntimeError(f"{self.name} encoder is closed; create a new one")
        return self._converter

    def _check_frame(self, frame: RawFrame) -> RawFrame:
        return check_host_frame(frame, self.config, self.name)

    def _context_for(self, picture: VideoFrame) -> tuple[list[EncodedPayload], VideoCodecContext]:
        """The context for ``picture``'s format and colour, re-opened if they changed.

        A change ends the sequence: what the old context still holds is drained
        (returned, to go out before the new IDR) and the new one starts with an IDR
        whose SPS says the new colour. Nothing is drained from a context that never
        took a frame (the one the factory opened for validation).
        """
        kind = (picture.format.name, colour_of(picture))
        if self._context is not None and kind == self._stream_kind:
            return [], self._context
        drained: list[EncodedPayload] = []
        if self._context is not None and self._fed:
            drained = self._stream.payloads(self._context.encode(None))
        self._context = None
        self._stream_kind = kind
        self._need_idr = True
        return drained, self._open()

    def _open(self) -> VideoCodecContext:
        pix_fmt, colour = self._stream_kind
        settings = self.settings if pix_fmt == self.settings.pix_fmt else replace(self.settings, pix_fmt=pix_fmt)
        context = configure_context(self.config, settings, colour)
        if not self.settings.open_with_first_frame:
            context.open()
        self._context = context
        self._fed = False
        return context


def libx264_settings(
    config: EncoderConfig, *, preset: str = DEFAULT_PRESET, threads: int | None = None
) -> PyAVSettings:
    """libx264 options for low-latency streaming of ``config``."""
    x264_params = ":".join(
        (
            "scenecut=0",  # IDRs only when asked: predictable frame sizes
            "bframes=0",
            "rc-lookahead=0",
            "sync-lookahead=0",
            "sliced-threads=1",  # threads split each frame: no frame-level delay
            "repeat-headers=1",  # SPS/PPS in-band on every IDR
            "annexb=1",
        )
    )
    options = {
        "preset": preset,
        "tune": "zerolatency",
        "forced-idr": "1",  # a forced I picture is an IDR, not a recovery point
        "x264-params": x264_params,
        **vbv_options(config),
    }
    return PyAVSettings("libx264", options, "nv12", default_threads() if threads is None else threads)


def create(config: EncoderConfig) -> PyAVH264Encoder:
    """The h264_cpu factory."""
    return PyAVH264Encoder(NAME, config, libx264_settings(config))


def probe() -> str | None:
    """None when PyAV and its libx264 encoder are importable, else why not."""
    try:
        import av
    except ImportError as exc:
        return f"PyAV is not installed ({exc}); pip install 'av>=18'"
    if "libx264" not in av.codecs_available:
        return "this PyAV build has no libx264 encoder; install the PyPI wheel of av, which bundles it"
    return None


ENTRIES: list[EncoderEntry] = [
    EncoderEntry(
        name=NAME,
        factory=create,
        transport="webcodecs",
        probe=probe,
        priority=10,
        reads_cuda=False,
        description="libx264 on the CPU through PyAV (host rgb24/rgba8/nv12 frames)",
    )
]
