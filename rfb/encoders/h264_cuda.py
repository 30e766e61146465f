"""The h264_cuda route: H.264 encoded by rfb's own CUDA kernels, for GPUs without NVENC.

Data-centre GPUs (A100, H100, H200, B200) have no video encoder. ``h264_gpu_nv12``
serves them by downloading NV12 for libx264; this route keeps the encode on the
device: :class:`rfb.h264cuda.encoder.CudaEncoder` runs the kernels of
``rfb/h264cuda/kernels/`` (compiled by NVRTC through CuPy, no build step) on the
display's CUDA device, and only the access unit's bytes come back to the host.

- CUDA nv12, at any row pitch: read where it lies (zero copy).
- CUDA rgb24/rgba8: ``rfb.gpu.rgb_to_nv12`` into a staging buffer owned here.
- host frames (fallback): copied up once into a reused device buffer, converted if RGB.

The staging is :class:`rfb.gpu.staging.DeviceStaging`, as for the other GPU routes. The
stream is Constrained Baseline (docs/h264_cuda.md): an IDR first and on request (or every
``config.gop`` frames when one is asked for), P pictures otherwise, SPS and PPS before
every IDR; ``keyframe`` and ``codec`` of each payload are read from the bitstream
(:class:`rfb.encoders.h264.PayloadStream`), as on every route.

**Availability** (:func:`probe`): every stage of the encoder has its kernel driver
(until then: "h264_cuda unavailable: <stage> has no kernels yet"), a CUDA device and
CuPy work, NVRTC compiles the kernels on the device, and a known 1280x720 frame
encoded through this route decodes back (FFmpeg) to the picture sent and, exactly, to
the encoder's own reconstruction (what the next P picture predicts from).

**Ordering** (issue 13): the route ranks below ``h264_gpu_nv12`` (:data:`PRIORITY`),
so ``serve(gpu=True)`` keeps choosing libx264 on NVENC-less GPUs until a benchmark
(``python -m rfb.benchmark --gpu``) shows this route better on speed and CPU at equal
quality. The hook to put it first is off by default: :func:`prefer` (or the
environment variable :data:`ENV_PREFER` set to ``1`` before rfb registers its
routes) gives it :data:`PREFERRED_PRIORITY`, above ``h264_gpu_nv12`` and below the
NVENC routes. It can always be asked for by name (``video_encoder="h264_cuda"``).
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from rfb.encoders import h264
from rfb.encoders.base import EncodedPayload, EncoderConfig, EncoderUnavailable, Transport
from rfb.encoders.checks import check_even_size, check_frame_size
from rfb.encoders.registry import REGISTRY, EncoderEntry, Registry
from rfb.frames import FrameError, RawFrame
from rfb.gpu.arrays import as_cupy, check_cuda_frame, cupy_stream, frame_stream
from rfb.gpu.context import GpuUnavailable, cupy_available, gpu_available, primary_context_state
from rfb.gpu.staging import DeviceStaging

if TYPE_CHECKING:
    from rfb.h264cuda.encoder import CudaEncoder, Stages

NAME = "h264_cuda"
PRIORITY = 25  # below h264_gpu_nv12 (30), above jpeg_gpu (20) and every CPU route
PREFERRED_PRIORITY = 35  # above h264_gpu_nv12 (30), below the NVENC routes (40, 50)
ENV_PREFER = "RFB_H264_CUDA_FIRST"
_REASON_LIMIT = 600  # characters of a compiler's or decoder's message kept in a reason


def _reason(text: str) -> str:
    """One line, of a bounded length (reasons are printed by doctor and logged)."""
    line = " ".join(text.split())
    return line if len(line) <= _REASON_LIMIT else line[: _REASON_LIMIT - 3] + "..."


class H264CudaEncoder:
    """An :class:`~rfb.encoders.base.EncoderBackend` over one :class:`~rfb.h264cuda.encoder.CudaEncoder`.

    One stream of one size on ``config.device_id``; each ``encode`` returns exactly one
    Annex B access unit. The kernels are launched on the frame's stream; the only
    wait is the entropy stage's read of the access unit's bytes. ``stages`` replaces the
    kernel drivers (tests only: the route itself always takes
    :func:`rfb.h264cuda.encoder.kernel_stages`).
    """

    transport: Transport = "webcodecs"

    def __init__(self, config: EncoderConfig, *, name: str = NAME, stages: Stages | None = None) -> None:
        check_even_size(config, name)
        from rfb.gpu.context import import_cupy
        from rfb.h264cuda.encoder import CudaEncoder, StagesMissing, kernel_stages
        from rfb.h264cuda.kernels.cuda import CudaLauncher

        try:
            stages = stages if stages is not None else kernel_stages()
        except StagesMissing as exc:
            raise EncoderUnavailable(str(exc)) from exc
        self.name = name
        self.config = config
        self._cp = cp = import_cupy()
        self._stream = h264.PayloadStream(config.width, config.height)
        self._frames = 0
        self._since_idr = 0  # pictures since the last IDR, that one included (config.gop's count)
        self._need_idr = True
        fps = max(round(config.fps), 1)
        try:
            with cp.cuda.Device(config.device_id):
                self._encoder: CudaEncoder | None = CudaEncoder(
                    CudaLauncher(), config.width, config.height, fps, config.bitrate, stages=stages
                )
        except ValueError as exc:  # a size or rate beyond level 5.2, a bad rate
            raise EncoderUnavailable(f"{name} cannot encode {config.width}x{config.height} here: {exc}") from exc
        self._staging: DeviceStaging | None = DeviceStaging(("nv12",), device_id=config.device_id, pitch_alignment=1)

    # -- the EncoderBackend protocol ---------------------------------------------

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False) -> list[EncodedPayload]:
        """Encode one frame (CUDA or host); returns its access unit (an IDR when forced)."""
        encoder, staging = self._require_open()
        if not isinstance(frame, RawFrame):
            raise FrameError(
                f"expected a RawFrame, got {type(frame).__name__} "
                "(use rfb.gpu.cuda_frame for CUDA arrays, rfb.frames.frame_from_array for NumPy)"
            )
        check_frame_size(frame, self.config, self.name)
        cp = self._cp
        gop = self.config.gop
        idr = force_keyframe or self._need_idr or bool(gop and self._since_idr >= gop)
        # A CUDA frame is encoded on the stream its producer named (CUDA array interface v3),
        # so the kernels follow the renderer's last kernel without a host wait; a host frame
        # is uploaded and encoded on the null stream.
        cuda = frame.memory == "cuda"
        stream = frame_stream(check_cuda_frame(frame)) if cuda else 0
        with cp.cuda.Device(self.config.device_id), cupy_stream(cp, stream):
            # queued on this stream, before the kernels
            nv12 = staging.device_frame(frame, synchronize=False, checked=cuda)
            planes = as_cupy(nv12.data)
            height = self.config.height
            unit = encoder.encode(planes[:height], planes[height:], force_idr=idr)
        self._frames += 1
        self._since_idr = 1 if idr else self._since_idr + 1
        self._need_idr = False
        return [self._stream.payload(unit)]

    def flush(self) -> list[EncodedPayload]:
        """End the sequence; nothing is ever pending here. The next frame is an IDR."""
        self._require_open()
        self._need_idr = True
        return []

    def close(self) -> None:
        """Release the encoder (its device buffers and reference) and the staging buffers. Idempotent."""
        self._encoder = None
        staging, self._staging = self._staging, None
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
    def encoder(self) -> CudaEncoder:
        """The kernels' encoder (its ``last`` and ``reconstruction`` describe the last picture)."""
        return self._require_open()[0]

    @property
    def staging(self) -> DeviceStaging:
        """The staging buffers (their counters say what each frame cost)."""
        return self._require_open()[1]

    @property
    def closed(self) -> bool:
        return self._encoder is None

    def _require_open(self) -> tuple[CudaEncoder, DeviceStaging]:
        if self._encoder is None or self._staging is None:
            raise RuntimeError(f"{self.name} encoder is closed; create a new one")
        return self._encoder, self._staging

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self._frames} frames"
        return f"<H264CudaEncoder {self.name} {self.config.width}x{self.config.height} {state}>"


def create(config: EncoderConfig) -> H264CudaEncoder:
    """The h264_cuda factory (EncoderUnavailable while a stage has no kernels)."""
    return H264CudaEncoder(config)


# -- availability ---------------------------------------------------------------


def stages_reason() -> str | None:
    """Why the kernels cannot encode yet (a stage without a driver), or None. Needs no GPU."""
    from rfb.h264cuda.encoder import missing_stages

    missing = missing_stages()
    return f"{NAME} unavailable: " + "; ".join(missing) if missing else None


def compile_reason(device_id: int = 0) -> str | None:
    """None when NVRTC compiles the kernels and the module loads on CUDA device ``device_id``, else why not."""
    from rfb.h264cuda.kernels.cuda import load

    try:
        load(device_id)
    except Exception as exc:  # NVRTC's CompileException, a driver error: all mean "the kernels do not run here"
        return _reason(
            f"NVRTC did not build the h264_cuda kernels on CUDA device {device_id}: {type(exc).__name__}: {exc}"
        )
    return None


def probe(device_id: int = 0) -> str | None:
    """None when this route encodes on CUDA device ``device_id``, else why not (see the module's doc)."""
    reason = stages_reason()
    if reason is not None:
        return reason
    reason = gpu_available()
    if reason is not None:
        return f"this route encodes on a CUDA GPU, and there is none usable: {reason}"
    try:
        primary_context_state(device_id)
    except GpuUnavailable as exc:
        return f"this route encodes on CUDA device {device_id}, which is not usable: {exc}"
    reason = cupy_available()
    if reason is not None:
        return f"this route launches its kernels with CuPy, which is unusable: {reason}"
    reason = compile_reason(device_id)
    if reason is not None:
        return reason
    return trial_encode(device_id)


def trial_encode(
    device_id: int = 0, *, stages: Stages | None = None, size: tuple[int, int] | None = None
) -> str | None:
    """Encode two known frames (an IDR, then a P picture with motion) through this route on
    ``device_id``; None when both decode to the pictures sent, and the P picture exactly to
    the encoder's own reconstruction (what the next picture would predict from).

    ``size`` is :data:`rfb.encoders.trial.TRIAL_SIZE` (1280x720) unless a test asks for a
    smaller one; ``stages`` replaces the kernel drivers (tests only)."""
    import av

    from rfb.encoders import trial
    from rfb.gpu.context import import_cupy

    width, height = size or trial.TRIAL_SIZE
    references = [trial.reference_picture(width, height, index) for index in (0, 1)]
    try:
        frames = [trial.cuda_trial_frame(device_id, picture) for picture in references]
    except trial.TrialFrameUnavailable as exc:
        return _reason(str(exc))
    sent = trial.describe_frame(frames[0])
    try:
        with H264CudaEncoder(EncoderConfig(width, height, device_id=device_id), stages=stages) as encoder:
            payloads = [p for frame in frames for p in encoder.encode(frame)]
            cp = import_cupy()
            rec = np.concatenate([cp.asnumpy(plane) for plane in encoder.encoder.reconstruction])
    except (EncoderUnavailable, FrameError) as exc:
        return _reason(f"{NAME} did not encode a {sent} frame: {exc}")
    except Exception as exc:  # a kernel's launch or memory error: the route does not work here
        return _reason(f"{NAME} failed on a {sent} frame: {type(exc).__name__}: {exc}")
    reason = trial.check_h264(payloads, references)
    if reason is not None:
        return _reason(f"{NAME} encoded a {sent} frame, but {reason}")
    try:
        decoded = decoded_nv12(payloads)[-1]
    except av.FFmpegError as exc:
        return _reason(f"{NAME}'s stream did not decode a second time: {exc}")
    if not np.array_equal(decoded, rec):
        wrong = np.argwhere(decoded != rec)
        return (
            f"{NAME}'s P picture decodes to other samples than the encoder's reconstruction "
            f"({len(wrong)} differ, the first at row {wrong[0][0]} column {wrong[0][1]} of NV12): the kernels drift"
        )
    return None


def decoded_nv12(payloads: list[EncodedPayload]) -> list[np.ndarray]:
    """Each picture FFmpeg decodes from ``payloads``, as NV12 ((H + H/2, W): Y, then interleaved UV)."""
    import av

    codec = av.CodecContext.create("h264", "r")
    frames: list[Any] = []
    for p in payloads:
        frames += codec.decode(av.Packet(p.data))
    frames += codec.decode(None)
    out = []
    for f in frames:
        y, u, v = (_plane(p) for p in f.planes)
        out.append(np.concatenate([y, np.stack([u, v], axis=-1).reshape(u.shape[0], 2 * u.shape[1])]))
    return out


def _plane(plane: Any) -> np.ndarray:
    rows = np.frombuffer(bytes(plane), np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


# -- registration and ordering ------------------------------------------------------


def _priority_from_environment() -> int:
    return PREFERRED_PRIORITY if os.environ.get(ENV_PREFER, "") == "1" else PRIORITY


def entry(priority: int = PRIORITY) -> EncoderEntry:
    """The route's registry entry at ``priority``."""
    return EncoderEntry(
        name=NAME,
        factory=create,
        transport="webcodecs",
        probe=probe,
        priority=priority,
        reads_cuda=True,
        description="rfb's own CUDA kernels (NVRTC): CUDA nv12 in place, only the bitstream leaves the GPU",
    )


def prefer(enabled: bool = True, *, registry: Registry = REGISTRY) -> None:
    """Rank h264_cuda above ``h264_gpu_nv12`` (``enabled``) or below it (the default ranking).

    The ordering hook of issue 13, off by default: call it before ``serve(gpu=True)``
    once a benchmark on the machine shows the kernels ahead. Only the priority changes
    (a route registered in this one's place keeps its factory and probe); the route's
    cached probe answers are forgotten, so the next choice asks again.
    """
    priority = PREFERRED_PRIORITY if enabled else PRIORITY
    try:
        current = registry.get_entry(NAME)
    except KeyError:
        current = entry(priority)
    registry.register_entry(dataclasses.replace(current, priority=priority), replace=True)


ENTRIES: list[EncoderEntry] = [entry(_priority_from_environment())]
