"""The nvenc_gpu_cffi route: frames on the GPU straight into NVENC, through nvencffi.

The fastest route where the GPU has a video encoder: no FFmpeg, no host copy, and for
the two layouts NVENC reads natively no conversion either.

- CUDA nv12: NVENC registers the caller's own allocation (zero copy).
- CUDA rgba8: the same, as ``NV_ENC_BUFFER_FORMAT_ABGR``; the engine converts to YUV.
- CUDA rgb24: NVENC has no 24-bit input, so ``rfb.gpu.rgb_to_nv12`` writes NV12 into a
  staging buffer this backend owns and reuses; NVENC registers that buffer once.
- host frames (fallback): copied up once into a reused device buffer (then, for rgb24,
  converted on the GPU as above).

The staging is :class:`DeviceStaging`, shared with the ``nvenc_gpu_pyav`` route.

Whether NVENC works cannot be known without trying: an H100 loads the library, then
refuses the session because it has no encode engine. So the probe opens a real session
(``nvencffi.probe()``) and passes on its plain-words reason.

Priorities: every GPU route ranks above every CPU route. The display's fallback list
is ordered by priority, and a CUDA frame can only fall back to a route that takes CUDA
frames; every GPU route also takes host frames, so a host-frame display loses nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Self

from rfb.colorspace import DEFAULT_MATRIX
from rfb.encoders import h264
from rfb.encoders.base import EncodedPayload, EncoderConfig, EncoderUnavailable, Transport
from rfb.encoders.h264_cpu import check_even_size, check_frame_size
from rfb.encoders.registry import EncoderEntry
from rfb.frames import FrameError, PixelFormat, RawFrame, frame_from_array
from rfb.gpu.arrays import as_cupy, check_cuda_frame, host_shape
from rfb.gpu.context import cupy_available, import_cupy
from rfb.gpu.convert import rgb_to_nv12

if TYPE_CHECKING:
    from nvencffi import NvencEncoder
    from nvencffi.cuda import EncodeContext

logger = logging.getLogger(__name__)

NAME = "nvenc_gpu_cffi"
PRIORITY = 50

# NVENC's rule for the row pitch of a registered CUDA buffer (nvencffi.frames checks it).
PITCH_ALIGNMENT = 4

_MEMCPY_HOST_TO_DEVICE = 1  # cudaMemcpyHostToDevice
_MEMCPY_DEVICE_TO_DEVICE = 3  # cudaMemcpyDeviceToDevice
_CHANNELS = {"rgb24": 3, "rgba8": 4, "nv12": 1}


def aligned_pitch(row_bytes: int, alignment: int = PITCH_ALIGNMENT) -> int:
    """The smallest multiple of ``alignment`` that holds ``row_bytes``."""
    return -(-row_bytes // alignment) * alignment


class DeviceStaging:
    """Turns any frame into a CUDA frame that a hardware encoder reads as it is.

    ``direct`` names the CUDA layouts the encoder takes without conversion (NVENC
    through nvencffi: nv12 and rgba8; FFmpeg's CUDA frames: nv12 only). A CUDA frame in
    one of them, with a row pitch NVENC accepts, is returned untouched: nothing is
    copied and no GPU library is even imported. Anything else goes through buffers
    owned here, allocated on first need and reused for every frame of the same size:

    - a host frame is copied up once (one 2-D host -> device copy, ``uploads`` counts
      them) into a device buffer of its own layout;
    - rgb24 (or rgba8 where only nv12 is direct) becomes NV12 in one kernel launch
      (``conversions``);
    - a direct layout with a pitch NVENC refuses (not a multiple of 4) is copied on the
      device into an aligned buffer (``copies``).

    When it has queued work, ``device_frame`` waits for it before returning, so the
    encoder never needs to know which stream it ran on. The returned frame may view a
    staging buffer: it is valid until the next call. ``close()`` gives the buffers back
    to CuPy's memory pool. Used from one thread at a time, like its encoder.
    """

    def __init__(
        self,
        direct: tuple[PixelFormat, ...],
        *,
        device_id: int = 0,
        matrix: str = DEFAULT_MATRIX,
        full_range: bool = False,
    ) -> None:
        if "nv12" not in direct:
            raise ValueError(f"direct must include 'nv12' (what conversions produce), got {direct!r}")
        self.direct = direct
        self.device_id = device_id
        self.matrix = matrix
        self.full_range = full_range
        self.uploads = 0
        self.conversions = 0
        self.copies = 0
        self._buffers: dict[str, Any] = {}  # pixel format -> CuPy array, a pitched view
        self._closed = False

    def device_frame(self, frame: RawFrame) -> RawFrame:
        """``frame`` as a CUDA frame in a direct layout, its pixels ready to be read."""
        if self._closed:
            raise RuntimeError("DeviceStaging is closed")
        if frame.memory == "cuda":
            check_cuda_frame(frame)
            if frame.device_id != self.device_id:
                raise FrameError(
                    f"the encoder runs on CUDA device {self.device_id}, the frame lives on device {frame.device_id}"
                )
            if frame.pixel_format in self.direct and frame.stride % PITCH_ALIGNMENT == 0:
                return frame  # zero copy: the caller's own memory
        else:
            frame = frame_from_array(frame)  # shape, dtype, contiguity: checked before any GPU work
        cp = import_cupy()
        with cp.cuda.Device(self.device_id):
            staged = self._upload(cp, frame) if frame.memory == "cpu" else frame
            if staged.pixel_format not in self.direct:
                staged = self._convert(cp, staged)
            elif staged.stride % PITCH_ALIGNMENT:
                staged = self._copy(cp, staged)
            cp.cuda.get_current_stream().synchronize()
        return staged

    def close(self) -> None:
        """Release the staging buffers (to CuPy's pool). Idempotent."""
        self._closed = True
        self._buffers.clear()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def buffers(self) -> dict[str, Any]:
        """The staging buffers allocated so far, by pixel format (for tests and debugging)."""
        return dict(self._buffers)

    # -- the three kinds of work ---------------------------------------------------

    def _upload(self, cp: Any, frame: RawFrame) -> RawFrame:
        """One host -> device copy of a (validated, C-contiguous) host frame into the buffer of its layout."""
        target = self._target(cp, frame.pixel_format, frame.width, frame.height, frame.timestamp_us)
        self._copy_2d(cp, target, frame.data.ctypes.data, frame.row_bytes, _MEMCPY_HOST_TO_DEVICE)
        self.uploads += 1
        return target

    def _convert(self, cp: Any, frame: RawFrame) -> RawFrame:
        """rgb24/rgba8 on the device -> NV12 in the staging buffer, one kernel launch."""
        target = self._target(cp, "nv12", frame.width, frame.height, frame.timestamp_us)
        rgb_to_nv12(frame, out=target.data, matrix=self.matrix, full_range=self.full_range)
        self.conversions += 1
        return target

    def _copy(self, cp: Any, frame: RawFrame) -> RawFrame:
        """A device -> device copy of a direct layout into a buffer with an aligned pitch."""
        target = self._target(cp, frame.pixel_format, frame.width, frame.height, frame.timestamp_us)
        source = as_cupy(frame.data)  # CuPy waits for the producer's stream, if it names one
        self._copy_2d(cp, target, source.data.ptr, frame.stride, _MEMCPY_DEVICE_TO_DEVICE)
        self.copies += 1
        return target

    # -- buffers --------------------------------------------------------------------

    def _target(self, cp: Any, pixel_format: PixelFormat, width: int, height: int, timestamp_us: int | None) -> RawFrame:
        """A cuda frame over the reused buffer for ``pixel_format`` at this size."""
        layout = RawFrame(None, width, height, pixel_format, "cuda")  # geometry only
        shape = host_shape(layout)
        pitch = aligned_pitch(layout.row_bytes)
        view = self._buffers.get(pixel_format)
        if view is None or tuple(view.shape) != shape:
            self._buffers.pop(pixel_format, None)  # free the old one before allocating anew
            rows = shape[0]
            storage = cp.empty((rows, pitch), dtype=cp.uint8)
            strides = (pitch,) if len(shape) == 2 else (pitch, _CHANNELS[pixel_format])
            view = cp.ndarray(shape, dtype=cp.uint8, memptr=storage.data, strides=(*strides, 1))
            self._buffers[pixel_format] = view
        return RawFrame(view, width, height, pixel_format, "cuda", pitch=pitch, device_id=self.device_id,
                        timestamp_us=timestamp_us)

    @staticmethod
    def _copy_2d(cp: Any, target: RawFrame, source_ptr: int, source_pitch: int, kind: int) -> None:
        rows = host_shape(target)[0]
        stream = cp.cuda.get_current_stream()
        cp.cuda.runtime.memcpy2DAsync(
            target.data.data.ptr, target.stride, source_ptr, source_pitch, target.row_bytes, rows, kind, stream.ptr
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"uploads={self.uploads} conversions={self.conversions} copies={self.copies}"
        return f"<DeviceStaging direct={self.direct} device={self.device_id} {state}>"


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
        self._staging: DeviceStaging | None = DeviceStaging(("nv12", "rgba8"), device_id=config.device_id)

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


def probe(*, context: EncodeContext | None = None) -> str | None:
    """None when an NVENC session opens here and CuPy can stage frames, else why not.

    ``context`` goes to ``nvencffi.probe`` (the tests pass a ``NullContext``).
    """
    try:
        import nvencffi
    except ImportError as exc:
        return f"nvencffi cannot be imported (its compiled module is missing: build the package): {exc}"
    result = nvencffi.probe(context=context)
    if not result.available:
        return f"NVENC cannot encode here: {result.reason}"
    reason = cupy_available()
    if reason is not None:
        return f"NVENC works, but rgb24 and host frames are staged on the GPU with CuPy, which is unusable: {reason}"
    return None


ENTRIES: list[EncoderEntry] = [
    EncoderEntry(
        name=NAME,
        factory=create,
        transport="webcodecs",
        probe=probe,
        priority=PRIORITY,
        gpu=True,
        description="NVENC through nvencffi (no FFmpeg): CUDA nv12/rgba8 zero copy, rgb24 converted on the GPU",
    )
]
