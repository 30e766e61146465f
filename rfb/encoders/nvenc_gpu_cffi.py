"""The nvenc_gpu_cffi route: frames on the GPU straight into NVENC, through nvencffi.

The fastest route where the GPU has a video encoder: no FFmpeg, no host copy, and for
the two layouts NVENC reads natively no conversion either.

- CUDA nv12: NVENC registers the caller's own allocation (zero copy).
- CUDA rgba8: the same, as ``NV_ENC_BUFFER_FORMAT_ABGR``; the engine converts to YUV.
- CUDA rgb24: NVENC has no 24-bit input, so ``rfb.gpu.rgb_to_nv12`` writes NV12 into a
  staging buffer this backend owns and reuses; NVENC registers that buffer once.
- host frames (fallback): copied up once into a reused device buffer (then, for rgb24,
  converted on the GPU as above).

The staging is :class:`rfb.gpu.staging.DeviceStaging`, shared with the other GPU routes.

Whether NVENC works cannot be known without trying: an H100 loads the library, then
refuses the session because it has no encode engine, and a GPU that opens a session may
still refuse a frame (its minimum size, its pitch rule). So the probe asks
``nvencffi.probe(device_id)`` first (its plain words for "no driver", "no engine",
"driver too old"), then encodes one known 1280x720 NV12 frame from the device's memory
through this route's own backend and decodes it back (:mod:`rfb.encoders.trial`);
the route is available only when the picture comes back.

Priorities: every GPU route ranks above every CPU route. The display's fallback list
is ordered by priority, and a CUDA frame can only fall back to a route that takes CUDA
frames; every GPU route also takes host frames, so a host-frame display loses nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Self

from rfb.encoders import h264
from rfb.encoders.base import EncodedPayload, EncoderConfig, EncoderUnavailable, Transport
from rfb.encoders.checks import check_even_size, check_frame_size
from rfb.encoders.registry import EncoderEntry
from rfb.frames import FrameError, RawFrame
from rfb.gpu.context import cupy_available
from rfb.gpu.staging import DeviceStaging

if TYPE_CHECKING:
    from nvencffi import NvencEncoder
    from nvencffi.cuda import EncodeContext

logger = logging.getLogger(__name__)

NAME = "nvenc_gpu_cffi"
PRIORITY = 50


class NvencGpuEncoder:
    """An :class:`~rfb.encoders.base.EncoderBackend` over one ``nvencffi.NvencEncoder``.

    One low-latency H.264 session (preset p1, ultra-low-latency tuning, CBR with a
    one-frame VBV, no B-frames, SPS/PPS on every IDR, IDRs only first and on demand
    unless ``config.gop`` asks for a period). Each ``encode`` returns exactly one Annex B
    access unit; ``keyframe`` and ``codec`` are read from the bitstream.

    ``context`` is nvencffi's (the test suite passes a ``NullContext`` to drive the
    emulator with host memory); by default the encoder retains the primary context of
    ``config.device_id``, the one CuPy, PyTorch and JAX allocate in.
    """

    transport: Transport = "webcodecs"

    def __init__(self, config: EncoderConfig, *, name: str = NAME, context: EncodeContext | None = None) -> None:
        check_even_size(config, name)
        self.name = name
        self.config = config
        self._stream = h264.PayloadStream(config.width, config.height)
        self._encoder: NvencEncoder | None = _open_nvenc(config, context)
        self._staging: DeviceStaging | None = DeviceStaging(
            ("nv12", "rgba8"),
            device_id=config.device_id,
            pitch_alignment=1,  # nvencffi stages odd pitches itself
        )

    # -- the EncoderBackend protocol ---------------------------------------------

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False) -> list[EncodedPayload]:
        """Encode one frame (CUDA or host); returns its access unit (an IDR when forced)."""
        encoder, staging = self._require_open()
        self._check_size(frame)
        device = staging.device_frame(frame)
        return [self._stream.payload(encoder.encode(device.data, force_idr=force_keyframe))]

    def flush(self) -> list[EncodedPayload]:
        """End the sequence; nothing is ever pending here. The next frame is an IDR."""
        encoder, _ = self._require_open()
        return self._stream.payloads(encoder.flush())

    def close(self) -> None:
        """Release the NVENC session (registrations first), then the staging buffers. Idempotent."""
        encoder, self._encoder = self._encoder, None
        staging, self._staging = self._staging, None
        try:
            if encoder is not None:
                encoder.close()
        finally:
            if staging is not None:
                staging.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what tests and the benchmark look at ---------------------------------------

    @property
    def codec(self) -> str | None:
        """The codec string of the stream so far (None before the first frame)."""
        return self._stream.codec

    @property
    def nvenc(self) -> NvencEncoder:
        """The nvencffi encoder (its registrations prove zero copy)."""
        return self._require_open()[0]

    @property
    def staging(self) -> DeviceStaging:
        """The staging buffers (their counters say what each frame cost)."""
        return self._require_open()[1]

    @property
    def closed(self) -> bool:
        return self._encoder is None

    # -- internals ---------------------------------------------------------------

    def _require_open(self) -> tuple[NvencEncoder, DeviceStaging]:
        if self._encoder is None or self._staging is None:
            raise RuntimeError(f"{self.name} encoder is closed; create a new one")
        return self._encoder, self._staging

    def _check_size(self, frame: RawFrame) -> None:
        if not isinstance(frame, RawFrame):
            raise FrameError(
                f"expected a RawFrame, got {type(frame).__name__} "
                "(use rfb.gpu.cuda_frame for CUDA arrays, rfb.frames.frame_from_array for NumPy)"
            )
        check_frame_size(frame, self.config, self.name)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.nvenc.frames_encoded} frames"
        return f"<NvencGpuEncoder {self.name} {self.config.width}x{self.config.height} {state}>"


def _open_nvenc(config: EncoderConfig, context: EncodeContext | None) -> NvencEncoder:
    """The nvencffi session for ``config``; NVENC that cannot run here is EncoderUnavailable."""
    try:
        import nvencffi
    except ImportError as exc:  # the compiled cffi module is missing (an unbuilt checkout)
        raise EncoderUnavailable(f"nvencffi cannot be imported: {exc}") from exc
    try:
        return nvencffi.NvencEncoder(
            config.width,
            config.height,
            preset="p1",  # fastest
            tuning="ull",  # ultra-low latency
            rate_control="cbr",
            bitrate=config.bitrate,
            fps=config.fps,
            gop=config.gop,
            profile="high",
            device=config.device_id,
            context=context,
        )
    except nvencffi.NvencUnavailable as exc:
        raise EncoderUnavailable(f"{NAME}: {exc}") from exc


def create(config: EncoderConfig) -> NvencGpuEncoder:
    """The nvenc_gpu_cffi factory."""
    return NvencGpuEncoder(config)


def probe(device_id: int = 0, *, context: EncodeContext | None = None) -> str | None:
    """None when NVENC on CUDA device ``device_id`` encodes a known frame that decodes back, else why not.

    ``context`` goes to nvencffi (the tests pass a ``NullContext``); the trial frame is
    CuPy memory on ``device_id``, so CuPy must work too.
    """
    try:
        import nvencffi
    except ImportError as exc:
        return f"nvencffi cannot be imported (its compiled module is missing: build the package): {exc}"
    result = nvencffi.probe(device_id, context=context)
    if not result.available:
        return f"NVENC cannot encode here: {result.reason}"
    reason = cupy_available()
    if reason is not None:
        return f"NVENC works, but rgb24 and host frames are staged on the GPU with CuPy, which is unusable: {reason}"
    return trial_encode(device_id, context=context)


def trial_encode(
    device_id: int = 0, *, context: EncodeContext | None = None, frame: RawFrame | None = None
) -> str | None:
    """Encode one known 1280x720 frame through this route on ``device_id``; None when it decodes back.

    ``frame`` is what to send, showing :func:`rfb.encoders.trial.reference_picture` at
    the trial size; by default that picture as NV12 in CuPy memory on the device, which
    NVENC registers in place. A failure's reason carries the driver's status name and text.
    """
    import nvencffi
    from rfb.encoders import trial

    width, height = trial.TRIAL_SIZE
    reference = trial.reference_picture(width, height)
    if frame is None:
        try:
            frame = trial.cuda_trial_frame(device_id)
        except trial.TrialFrameUnavailable as exc:
            return str(exc)
    sent = trial.describe_frame(frame)
    try:
        with NvencGpuEncoder(EncoderConfig(width, height, device_id=device_id), context=context) as encoder:
            payloads = encoder.encode(frame, force_keyframe=True)
    except EncoderUnavailable as exc:
        return f"NVENC cannot encode here: {exc}"
    except (nvencffi.NvencError, nvencffi.FrameLayoutError, FrameError) as exc:
        return f"NVENC opened a session but did not encode a {sent} frame: {exc}"
    reason = trial.check_h264(payloads, [reference])
    if reason is not None:
        return f"NVENC encoded a {sent} frame, but {reason}"
    return None


ENTRIES: list[EncoderEntry] = [
    EncoderEntry(
        name=NAME,
        factory=create,
        transport="webcodecs",
        probe=probe,
        priority=PRIORITY,
        reads_cuda=True,
        description="NVENC through nvencffi (no FFmpeg): CUDA nv12/rgba8 zero copy, rgb24 converted on the GPU",
    )
]
