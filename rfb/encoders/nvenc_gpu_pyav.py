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
- h264_nvenc registers the frame's own row stride (``linesize``) as the NVENC pitch.
  The NVENC header only asks for a multiple of 4, but every reference client hands
  NVENC 256-byte pitches (``cuMemAllocPitch``; FFmpeg's own ``CUDA_FRAME_ALIGNMENT``),
  and a driver reading a tightly packed 852-wide frame (pitch 852: a multiple of 4,
  not of 16) faulted with ``cudaErrorMisalignedAddress`` and poisoned the CUDA context
  (RTX 5080, jasna issue 230). So a CUDA nv12 frame is wrapped in place only when its
  pitch is a multiple of :data:`PITCH_ALIGNMENT` (256) and its memory is not from a
  stream-ordered pool (``cudaMallocAsync``: CuPy's ``MemoryAsyncPool``, PyTorch's
  ``cudaMallocAsync`` backend), which NVENC refuses to register; any other is copied
  on the device into a 256-byte-pitched staging buffer first. :attr:`stats` counts
  both, with the reason.
- FFmpeg's CUDA frames are nv12 only here (PyAV imports CUDA DLPack tensors for
  nv12/p010/p016), so rgb24 and rgba8 become NV12 on the GPU first, into a staging
  buffer this route owns (:class:`~rfb.gpu.staging.DeviceStaging`, 256-byte pitches,
  ``cudaMalloc`` memory whatever CuPy's allocator is), and host frames are copied up
  into it.
- NVENC's H.264 encoders refuse frames smaller than 145x49 (``NV_ENC_CAPS_WIDTH_MIN``
  / ``HEIGHT_MIN``). FFmpeg passes the size on, and the driver refuses it only when the
  first frame opens the encoder (``InitializeEncoder failed: invalid param (8)``), so
  the factory refuses such sizes itself, in plain words, before anything is opened.

The encode loop, options and payload handling are the shared PyAV ones
(:class:`~rfb.encoders.h264_cpu.PyAVH264Encoder`, ``nvenc_cpu.nvenc_settings``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rfb.encoders import nvenc_cpu
from rfb.encoders.base import EncoderConfig, EncoderUnavailable
from rfb.encoders.checks import check_even_size, check_frame_size
from rfb.encoders.h264_cpu import PyAVH264Encoder
from rfb.encoders.registry import EncoderEntry
from rfb.frames import FrameError, RawFrame
from rfb.gpu.arrays import as_cupy, check_cuda_frame
from rfb.gpu.context import (
    GpuUnavailable,
    cupy_available,
    gpu_available,
    import_cupy,
    load_driver,
    primary_context_state,
)
from rfb.gpu.staging import PITCH_ALIGNMENT, DeviceStaging  # 256 bytes: cuMemAllocPitch, FFmpeg

if TYPE_CHECKING:
    from av.video.frame import VideoFrame

NAME = "nvenc_gpu_pyav"
PRIORITY = 40
CODEC = nvenc_cpu.CODEC

# The only primary-context flags FFmpeg's CUDA device accepts for primary_ctx=1
# (hwcontext_cuda.c compares the whole word): CU_CTX_SCHED_BLOCKING_SYNC.
_FFMPEG_PRIMARY_FLAGS = 0x04

# NV_ENC_CAPS_WIDTH_MIN / HEIGHT_MIN of NVENC's H.264 encoders (145x49 on every GPU reported).
MIN_SIZE = (145, 49)
# Why a CUDA nv12 frame is copied before FFmpeg sees it (the keys of ``stats``).
STAGE_REASONS = ("pitch", "mempool")

# CUpointer_attribute names (looked up in cuda-python's enum: BUFFER_ID is 7, MEMPOOL_HANDLE 17).
_BUFFER_ID = "CU_POINTER_ATTRIBUTE_BUFFER_ID"
_MEMPOOL_HANDLE = "CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE"


class PoolMemory:
    """Which allocations come from a stream-ordered pool, asked of the driver once per allocation.

    ``in_pool(pointer)`` asks ``CU_POINTER_ATTRIBUTE_BUFFER_ID`` (one cheap call per
    frame: another allocation may take a freed one's address) and, for an
    allocation not seen before, ``CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE``, with device
    ``device_id``'s primary context current (made so by CuPy, as for the frame itself:
    the driver may answer ``CUDA_ERROR_INVALID_CONTEXT`` without one). None means
    "cannot tell" (no usable driver or CuPy, or memory the driver does not know): such
    a frame is handed to FFmpeg as it is, and FFmpeg's own error follows if NVENC
    refuses it.
    """

    capacity = 64  # allocations remembered

    def __init__(self, device_id: int = 0) -> None:
        self.device_id = device_id
        self._verdicts: dict[int, tuple[int, bool]] = {}  # pointer -> (buffer id, in a pool)
        self._driver: Any = None
        self.unavailable: str | None = None  # why the driver cannot be asked

    def in_pool(self, pointer: int) -> bool | None:
        driver = self._load()
        if driver is None:
            return None
        with import_cupy().cuda.Device(self.device_id):
            return self._ask(driver, pointer)

    def _ask(self, driver: Any, pointer: int) -> bool | None:
        buffer_id = self._attribute(driver, _BUFFER_ID, pointer)
        if not buffer_id:  # 0: memory CUDA did not allocate
            return None
        known = self._verdicts.get(pointer)
        if known is not None and known[0] == buffer_id:
            return known[1]
        pool = self._attribute(driver, _MEMPOOL_HANDLE, pointer)
        if pool is None:
            return None
        if len(self._verdicts) >= self.capacity and pointer not in self._verdicts:
            self._verdicts.pop(next(iter(self._verdicts)))
        self._verdicts[pointer] = (buffer_id, pool != 0)
        return pool != 0

    def _load(self) -> Any:
        if self._driver is None and self.unavailable is None:
            try:
                import_cupy()
                self._driver = load_driver()
            except GpuUnavailable as exc:
                self.unavailable = str(exc)
        return self._driver

    @staticmethod
    def _attribute(driver: Any, attribute: str, pointer: int) -> int | None:
        """One attribute of ``pointer``; 0 (NULL) for memory CUDA does not know, None if the call fails.

        ``cuPointerGetAttributes`` rather than the singular call: for a pointer CUDA does
        not know it answers NULL with ``CUDA_SUCCESS`` instead of an error (cuda.h); the
        pool handle of memory outside any pool is NULL.
        """
        err, values = driver.cuPointerGetAttributes(1, [getattr(driver.CUpointer_attribute, attribute)], pointer)
        if int(err) != 0:
            return None
        value = values[0]
        return 0 if value is None else int(value)


class CudaFrameConverter:
    """Turns RawFrames (CUDA or host) into FFmpeg CUDA frames (nv12) for h264_nvenc.

    A :class:`~rfb.colorspace.FrameConverter` (the shared encode loop's hook). CUDA nv12
    frames at a 256-byte pitch, outside any stream-ordered pool, are wrapped where they
    are (``zero_copy`` counts them); other CUDA nv12 frames are copied on the device
    into a 256-byte-pitched buffer (``staged`` counts them by reason); other layouts and
    host frames are converted or uploaded into one (the staging's own counters). The
    wrapped frame keeps the memory alive (through its DLPack tensors) for as long as
    FFmpeg holds it. Owns its staging buffers and its FFmpeg CUDA context; ``close()``
    releases both. ``pools`` answers "is this pointer pool memory?" (a
    :class:`PoolMemory` by default).
    """

    target_format = "cuda"

    def __init__(self, device_id: int = 0, *, pools: PoolMemory | None = None) -> None:
        from av.video.frame import CudaContext  # noqa: F401  (PyAV < 18 fails here, in the factory)

        self.device_id = device_id
        self.staging: DeviceStaging | None = DeviceStaging(
            ("nv12",), device_id=device_id, pitch_alignment=PITCH_ALIGNMENT, plain_memory=True
        )
        self.pools = pools if pools is not None else PoolMemory(device_id)
        self.zero_copy = 0
        self.staged = dict.fromkeys(STAGE_REASONS, 0)
        self.context_mode: str | None = None  # "primary_ctx" or "current_ctx", chosen on the first frame
        self._cuda: Any = None

    def convert(self, frame: RawFrame) -> VideoFrame:
        """``frame`` as an ``AV_PIX_FMT_CUDA`` nv12 frame over the same (or staged) memory."""
        return self._wrap(self._stage(frame))

    def close(self) -> None:
        """Release the staging buffers and drop the CUDA context (FFmpeg frees it when unused)."""
        if self.staging is not None:
            self.staging.close()
            self.staging = None
        self._cuda = None

    def _stage(self, frame: RawFrame) -> RawFrame:
        """``frame`` as CUDA nv12 memory FFmpeg may hand NVENC: its own, or a staging buffer."""
        staging = self.staging
        if staging is None:
            raise RuntimeError("CudaFrameConverter is closed")
        if frame.memory != "cuda" or frame.pixel_format != "nv12":
            return staging.device_frame(frame)  # uploaded or converted into a 256-byte-pitched buffer
        if frame.stride % PITCH_ALIGNMENT:
            reason = "pitch"
        else:
            checked = staging.device_frame(frame)  # its geometry and device checked; nothing copied
            if not self.pools.in_pool(check_cuda_frame(frame).ptr):
                self.zero_copy += 1
                return checked
            reason = "mempool"
        staged = self._copy(frame)
        self.staged[reason] += 1
        return staged

    def _copy(self, frame: RawFrame) -> RawFrame:
        """The CUDA nv12 ``frame`` copied on the device into the 256-byte-pitched staging buffer."""
        assert self.staging is not None
        return self.staging.device_frame(frame, copy=True)

    def _wrap(self, frame: RawFrame) -> VideoFrame:
        """FFmpeg's CUDA frame over the CUDA nv12 ``frame``'s memory, its two planes one allocation."""
        from av.video.frame import VideoFrame

        cp = import_cupy()
        with cp.cuda.Device(self.device_id):  # also makes the primary context current here
            nv12 = as_cupy(frame.data)  # CuPy waits for the producer's stream, if it names one
            # FFmpeg reads on its own (the legacy default) stream: finish what CuPy queued.
            cp.cuda.get_current_stream().synchronize()
            planes = (nv12[: frame.height], nv12[frame.height :])
            return VideoFrame.from_dlpack(
                planes, format="nv12", width=frame.width, height=frame.height, cuda_context=self._context()
            )

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
    """The shared PyAV encode loop, fed FFmpeg CUDA frames by a :class:`CudaFrameConverter`.

    ``converter`` replaces the default one for ``config.device_id`` (the encoder owns it
    and closes it); the test suite passes one over host memory to drive FFmpeg's CUDA
    path without a GPU.
    """

    def __init__(self, config: EncoderConfig, *, name: str = NAME, converter: CudaFrameConverter | None = None) -> None:
        try:
            check_even_size(config, name)
            check_min_size(config, name)
        except BaseException:
            if converter is not None:
                converter.close()
            raise
        # h264_nvenc's options as nvenc_cpu sets them, fed CUDA frames: opened by the first one.
        settings = replace(
            nvenc_cpu.nvenc_settings(config), pix_fmt=CudaFrameConverter.target_format, open_with_first_frame=True
        )
        converter = self._gpu = converter if converter is not None else _converter(config)
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
    def stats(self) -> dict[str, int]:
        """What the frames so far cost before FFmpeg saw them.

        ``zero_copy``: CUDA nv12 frames wrapped in place; ``staged``: CUDA nv12 frames
        copied on the device into a 256-byte-pitched buffer, and ``staged_<reason>`` per
        reason (``pitch``: not a multiple of 256 bytes; ``mempool``: stream-ordered pool
        memory); ``uploads``: host frames copied up; ``conversions``: rgb24/rgba8 frames
        turned into NV12 on the device.
        """
        staging = self.staging
        gpu = self._gpu
        stats = {"zero_copy": gpu.zero_copy, "staged": sum(gpu.staged.values())}
        stats.update({f"staged_{reason}": n for reason, n in gpu.staged.items()})
        stats.update(uploads=staging.uploads, conversions=staging.conversions)
        return stats

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


def check_min_size(config: EncoderConfig, route: str = NAME) -> None:
    """NVENC's H.264 encoders refuse frames below :data:`MIN_SIZE`; say so in the factory, not at the first frame."""
    width, height = MIN_SIZE
    if config.width < width or config.height < height:
        raise EncoderUnavailable(
            f"{route} encodes through NVENC, whose H.264 encoders take frames of at least {width}x{height} "
            f"(NV_ENC_CAPS_WIDTH_MIN/HEIGHT_MIN); got {config.width}x{config.height} "
            "(render larger, or use a CPU route such as h264_cpu for small frames)"
        )


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
    problem = trial.check_h264(payloads, [reference])
    if problem is not None:
        return f"FFmpeg's {CODEC} encoded a {sent} frame, but {problem}"
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
