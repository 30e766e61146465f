"""The nvenc_gpu_pyav route: FFmpeg's h264_nvenc through PyAV, fed CUDA frames.

The same encoder as ``nvenc_cpu`` (FFmpeg's NVENC wrapper and its options), but the
frames never leave the GPU: PyAV >= 18 wraps device memory as an FFmpeg CUDA frame
(``VideoFrame.from_dlpack``), and h264_nvenc registers that memory with NVENC.

How the pieces fit (PyAV 18.1, ``av/video/frame.py`` and ``av/codec/context.py``):

- ``from_dlpack((y, uv), format="nv12", cuda_context=ctx)`` takes the two planes as
  DLPack tensors and makes an ``AV_PIX_FMT_CUDA`` frame whose ``hw_frames_ctx`` comes
  from ``ctx``, a :class:`av.video.frame.CudaContext`. Its CUDA device is created with
  ``av_hwdevice_ctx_create(..., {"primary_ctx": "1"})``: FFmpeg retains the device's
  *primary* context, the one CuPy, PyTorch and JAX allocate in, so FFmpeg reads their
  memory as it is. FFmpeg refuses a primary context that is already active with flags
  other than ``CU_CTX_SCHED_BLOCKING_SYNC`` (what ``rfb.enable_cuda_context_sharing``
  sets); then ``{"current_ctx": "1"}`` wraps the same context, made current by CuPy.
  The route owns one ``CudaContext``: it caches one frames context per (format, size),
  so every frame carries the same one. (Without ``cuda_context``, each call would
  create a new CUDA device context.)
- h264_nvenc refuses to open without ``hw_frames_ctx`` when ``pix_fmt`` is ``cuda``
  ("hw_frames_ctx must be set when using GPU frames as input"). PyAV >= 18 adopts the
  first frame's ``hw_frames_ctx`` when ``encode()`` opens a context that is not open
  yet, so this route configures the context and lets the first frame open it
  (``PyAVSettings.open_with_first_frame``); a flush before that drains nothing.
- h264_nvenc registers ``frame->data[0]`` with NVENC and finds the chroma plane
  ``linesize * height`` bytes after it; the planes must therefore be two views of ONE
  NV12 allocation (``rfb.gpu``'s layout), never two arrays. Registrations are cached
  by pointer, so a reused buffer registers once.
- FFmpeg's CUDA frames are nv12 only here (PyAV imports CUDA DLPack tensors for
  nv12/p010/p016), so rgb24 and rgba8 become NV12 on the GPU first, into a staging
  buffer this route owns (:class:`~rfb.gpu.staging.DeviceStaging`), and
  host frames are copied up into it.

The encode loop, options and payload handling are the shared PyAV ones
(:class:`~rfb.encoders.h264_cpu.PyAVH264Encoder`, ``nvenc_cpu.nvenc_settings``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rfb.encoders import nvenc_cpu
from rfb.encoders.base import EncoderConfig, EncoderUnavailable
from rfb.encoders.checks import check_frame_size
from rfb.encoders.h264_cpu import PyAVH264Encoder
from rfb.encoders.registry import EncoderEntry
from rfb.frames import FrameError, RawFrame
from rfb.gpu.arrays import as_cupy, check_cuda_frame
from rfb.gpu.context import GpuUnavailable, cupy_available, gpu_available, import_cupy, primary_context_state
from rfb.gpu.staging import DeviceStaging

if TYPE_CHECKING:
    from av.video.frame import VideoFrame

NAME = "nvenc_gpu_pyav"
PRIORITY = 40
CODEC = nvenc_cpu.CODEC

# The only primary-context flags FFmpeg's CUDA device accepts for primary_ctx=1
# (hwcontext_cuda.c compares the whole word): CU_CTX_SCHED_BLOCKING_SYNC.
_FFMPEG_PRIMARY_FLAGS = 0x04


class CudaFrameConverter:
    """Turns RawFrames (CUDA or host) into FFmpeg CUDA frames (nv12) for h264_nvenc.

    A :class:`~rfb.colorspace.FrameConverter` (the shared encode loop's hook). CUDA nv12
    frames are wrapped where they are; the rest are staged on the GPU first. The
    wrapped frame keeps the memory alive (through its DLPack tensors) for as long as
    FFmpeg holds it. Owns its staging buffers and its FFmpeg CUDA context; ``close()``
    releases both.
    """

    target_format = "cuda"

    def __init__(self, device_id: int = 0) -> None:
        from av.video.frame import CudaContext  # noqa: F401  (PyAV < 18 fails here, in the factory)

        self.device_id = device_id
        self.staging: DeviceStaging | None = DeviceStaging(("nv12",), device_id=device_id)
        self.context_mode: str | None = None  # "primary_ctx" or "current_ctx", chosen on the first frame
        self._cuda: Any = None

    def convert(self, frame: RawFrame) -> VideoFrame:
        """``frame`` as an ``AV_PIX_FMT_CUDA`` nv12 frame over the same (or staged) memory."""
        from av.video.frame import VideoFrame

        if self.staging is None:
            raise RuntimeError("CudaFrameConverter is closed")
        staged = self.staging.device_frame(frame)
        cp = import_cupy()
        with cp.cuda.Device(self.device_id):  # also makes the primary context current here
            nv12 = as_cupy(staged.data)  # CuPy waits for the producer's stream, if it names one
            # FFmpeg reads on its own (the legacy default) stream: finish what CuPy queued.
            cp.cuda.get_current_stream().synchronize()
            planes = (nv12[: frame.height], nv12[frame.height :])
            return VideoFrame.from_dlpack(
                planes, format="nv12", width=frame.width, height=frame.height, cuda_context=self._context()
            )

    def close(self) -> None:
        """Release the staging buffers and drop the CUDA context (FFmpeg frees it when unused)."""
        if self.staging is not None:
            self.staging.close()
            self.staging = None
        self._cuda = None

    def _context(self) -> Any:
        """FFmpeg's CUDA device: the primary context, one way or the other.

        ``primary_ctx`` makes FFmpeg retain the primary context, but FFmpeg insists on
        its flags being exactly ``CU_CTX_SCHED_BLOCKING_SYNC`` and refuses an active one
        with others ("Primary context already active with incompatible flags"), which
        is the case whenever CuPy, PyTorch or JAX ran before
        ``rfb.enable_cuda_context_sharing()``. Then ``current_ctx`` wraps the context
        current on this thread, which is the same primary context (CuPy's, made
        current by ``cupy.cuda.Device``), without the check.
        """
        if self._cuda is None:
            from av.video.frame import CudaContext

            flags, active = primary_context_state(self.device_id)
            if not active or flags == _FFMPEG_PRIMARY_FLAGS:
                self._cuda = CudaContext(device_id=self.device_id, primary_ctx=True)
                self.context_mode = "primary_ctx"
            else:
                self._cuda = CudaContext(device_id=self.device_id, primary_ctx=False, current_ctx=True)
                self.context_mode = "current_ctx"
        return self._cuda


class NvencGpuPyAVEncoder(PyAVH264Encoder):
    """The shared PyAV encode loop, fed FFmpeg CUDA frames by a :class:`CudaFrameConverter`."""

    def __init__(self, config: EncoderConfig, *, name: str = NAME) -> None:
        # h264_nvenc's options as nvenc_cpu sets them, fed CUDA frames: opened by the first one.
        settings = replace(
            nvenc_cpu.nvenc_settings(config), pix_fmt=CudaFrameConverter.target_format, open_with_first_frame=True
        )
        converter = self._gpu = _converter(config)
        try:
            super().__init__(name, config, settings, converter=converter)
        except BaseException:
            converter.close()
            raise

    @property
    def staging(self) -> DeviceStaging:
        """The staging buffers (their counters say what each frame cost)."""
        self._require_open()
        staging = self._gpu.staging
        if staging is None:
            raise RuntimeError(f"{self.name} encoder is closed; create a new one")
        return staging

    @property
    def cuda_context_mode(self) -> str | None:
        """How FFmpeg holds the primary context: "primary_ctx", "current_ctx", or None before the first frame."""
        return self._gpu.context_mode

    def _check_frame(self, frame: RawFrame) -> RawFrame:
        """CUDA frames are checked here; host frames as the shared loop checks them."""
        if not (isinstance(frame, RawFrame) and frame.memory == "cuda"):
            return super()._check_frame(frame)
        check_cuda_frame(frame)
        check_frame_size(frame, self.config, self.name)
        return frame


def _converter(config: EncoderConfig) -> CudaFrameConverter:
    try:
        return CudaFrameConverter(config.device_id)
    except ImportError as exc:  # PyAV < 18: no CudaContext / from_dlpack
        raise EncoderUnavailable(f"{NAME} needs PyAV >= 18 (VideoFrame.from_dlpack with a CudaContext): {exc}") from exc


def create(config: EncoderConfig) -> NvencGpuPyAVEncoder:
    """The nvenc_gpu_pyav factory."""
    return NvencGpuPyAVEncoder(config)


def probe(device_id: int = 0) -> str | None:
    """None when h264_nvenc encodes a known CUDA frame on device ``device_id`` that decodes back, else why not.

    Cheap answers first (PyAV, a CUDA device), then FFmpeg's own NVENC probe from host
    frames (``nvenc_cpu.probe``: it words "no driver" and "no NVENC-capable GPU"
    plainly), then one real session fed one CUDA frame (:func:`trial_encode`).
    """
    try:
        import av
    except ImportError as exc:
        return f"PyAV is not installed ({exc}); pip install 'av>=18'"
    if CODEC not in av.codecs_available:
        return f"this PyAV build has no {CODEC} encoder"
    if not hasattr(av.VideoFrame, "from_dlpack"):
        return f"PyAV {av.__version__} cannot wrap CUDA memory as a frame (VideoFrame.from_dlpack needs PyAV >= 18)"
    reason = gpu_available()
    if reason is not None:
        return f"CUDA frames need a CUDA GPU: {reason}"
    reason = nvenc_cpu.probe(device_id)
    if reason is not None:
        return reason
    reason = cupy_available()
    if reason is not None:
        return f"h264_nvenc works, but frames are staged on the GPU with CuPy, which is unusable: {reason}"
    return trial_encode(device_id)


def trial_encode(device_id: int = 0, *, frame: RawFrame | None = None) -> str | None:
    """Encode one known 1280x720 CUDA frame through this route on ``device_id``; None when it decodes back.

    ``frame`` shows :func:`rfb.encoders.trial.reference_picture` at the trial size; by
    default that picture as NV12 in CuPy memory on the device, which FFmpeg wraps in
    place. A failure's reason is FFmpeg's own complaint.
    """
    import av

    from rfb.encoders import trial

    width, height = trial.TRIAL_SIZE
    reference = trial.reference_picture(width, height)
    if frame is None:
        try:
            frame = trial.cuda_trial_frame(device_id)
        except trial.TrialFrameUnavailable as exc:
            return str(exc)
    sent = trial.describe_frame(frame)
    with nvenc_cpu.capture_ffmpeg_log() as logs:
        try:
            with create(EncoderConfig(width, height, device_id=device_id)) as encoder:
                payloads = encoder.encode(frame, force_keyframe=True)
        except (av.FFmpegError, EncoderUnavailable, GpuUnavailable, FrameError, ValueError, TypeError) as exc:
            reason = nvenc_cpu.ffmpeg_failure_reason(exc, logs)
            return f"FFmpeg's {CODEC} opened for host frames but not for a {sent} frame: {reason}"
    reason = trial.check_h264(payloads, [reference])
    if reason is not None:
        return f"FFmpeg's {CODEC} encoded a {sent} frame, but {reason}"
    return None


ENTRIES: list[EncoderEntry] = [
    EncoderEntry(
        name=NAME,
        factory=create,
        transport="webcodecs",
        probe=probe,
        priority=PRIORITY,
        reads_cuda=True,
        description="FFmpeg h264_nvenc through PyAV with CUDA frames (from_dlpack, FFmpeg in the primary context)",
    )
]
