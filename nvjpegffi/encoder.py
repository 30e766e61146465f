"""``JpegEncoder``: one nvJPEG encoder turning device images into baseline JPEG bytes.

Pointers in, bytes out. The caller says where the pixels are (a device pointer and a
row pitch, from whichever framework made them) and on which CUDA stream they are
ready; nvJPEG reads them where they are (zero copy), on that stream, and the JPEG comes
back to the host as ``bytes``:

- ``encode_rgb(pointer, pitch)``: interleaved 8-bit RGB (or BGR), 3 bytes a pixel,
  rows ``pitch`` bytes apart; nvJPEG converts to YCbCr (JFIF: BT.601, full range) and
  subsamples the chroma as configured (4:2:0 by default, 4:4:4, 4:2:2 or grey);
- ``encode_nv12(pointer, pitch)``: NV12 (a luma plane, then interleaved Cb/Cr at half
  resolution), used as it is: JPEG then carries 4:2:0, and the samples are taken to be
  JFIF's (BT.601, full range); converting other colorimetry is the caller's job.

What is set up once and reused for every frame (no per-frame allocation on the GPU or
the host except the returned ``bytes``): the library handle, one encoder state (nvJPEG
keeps its scratch buffers there and grows them once), the parameters, a page-locked
host buffer as large as nvJPEG's bound for the size (``nvjpegEncodeGetBufferSize``),
the ``nvjpegImage_t`` and length cells handed to nvJPEG, and the stream handles.

Per frame: the context is pushed (where it is not current already), the image encoded
and the bitstream retrieved into the host buffer on the caller's stream, the stream
synchronized, the context popped, and the bytes copied out. ``wait="event"`` (or
``"event-blocking"``) replaces the stream sync with an event recorded after the copy
and waited for (:class:`~nvjpegffi.cuda.CompletionEvent`); the default stays
``"stream"``. nvJPEG's calls are asynchronous: a fault in its kernels surfaces at the
sync (or the event's wait), as :class:`~nvjpegffi.errors.CudaError` naming the CUDA
error.

An encoder is used by one thread at a time (nvJPEG's rule for an encoder state). It
owns its handle, state, parameters, host buffer and (unless one was passed in) its
reference to the primary context; ``close()`` releases them in that order and is
idempotent.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from nvjpegffi._ffi import ffi
from nvjpegffi.cuda import WAITS, CompletionEvent, CudaContext, HostBuffer, Wait, cuda_errors, primary_context
from nvjpegffi.errors import NvjpegUnavailable, error_for
from nvjpegffi.library import Library, load_library

logger = logging.getLogger("nvjpegffi")

Subsampling = Literal["420", "422", "444", "gray"]

_enum = ffi.typeof("nvjpegChromaSubsampling_t").relements
SUBSAMPLINGS: dict[str, int] = {
    "420": _enum["NVJPEG_CSS_420"],
    "422": _enum["NVJPEG_CSS_422"],
    "444": _enum["NVJPEG_CSS_444"],
    "gray": _enum["NVJPEG_CSS_GRAY"],
}
_inputs = ffi.typeof("nvjpegInputFormat_t").relements
RGB_ORDERS: dict[str, int] = {"rgb": _inputs["NVJPEG_INPUT_RGBI"], "bgr": _inputs["NVJPEG_INPUT_BGRI"]}
INPUT_NV12 = _inputs["NVJPEG_INPUT_NV12"]
_backends = ffi.typeof("nvjpegEncBackend_t").relements
BACKENDS: dict[str, int] = {
    "default": _backends["NVJPEG_ENC_BACKEND_DEFAULT"],  # a JPEG engine where there is one, else CUDA
    "gpu": _backends["NVJPEG_ENC_BACKEND_GPU"],  # always the CUDA kernels
    "hardware": _backends["NVJPEG_ENC_BACKEND_HARDWARE"],  # only an engine (Jetson Thor...)
}
BASELINE = ffi.typeof("nvjpegJpegEncoding_t").relements["NVJPEG_ENCODING_BASELINE_DCT"]
NULL_STREAM = 0  # CUDA's legacy default stream


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_quality(quality: Any) -> int:
    """``quality`` if it is an int in 1..100 (nvJPEG's range), else ValueError."""
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be an integer in 1..100, got {quality!r}")
    return quality


class JpegEncoder:
    """A GPU JPEG encoder for one image size. Use as a context manager.

    ``context`` is for embedders that manage CUDA themselves, and for the test suite
    (``nvjpegffi.NullContext`` drives the emulator with host memory); by default the
    primary context of ``device`` is retained, and released by ``close()``. A context
    passed in is never released here. ``stream`` is the default CUDA stream (a
    ``cudaStream_t`` as an integer; 0 is the legacy default stream); each ``encode_*``
    call may name another. ``wait`` is how the end of each frame is waited for (one of
    ``nvjpegffi.cuda.WAITS``; ``"stream"``, a stream sync, by default).
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        quality: int = 90,
        subsampling: Subsampling = "420",
        optimized_huffman: bool = False,
        backend: Literal["default", "gpu", "hardware"] = "default",
        device: int = 0,
        context: CudaContext | None = None,
        stream: int = NULL_STREAM,
        wait: Wait = "stream",
    ) -> None:
        self._closed = True  # until fully open: close() has nothing to do before that
        self.width = _positive_int("width", width)
        self.height = _positive_int("height", height)
        self._quality = check_quality(quality)
        if subsampling not in SUBSAMPLINGS:
            raise ValueError(f"subsampling must be one of {sorted(SUBSAMPLINGS)}, got {subsampling!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {backend!r}")
        if wait not in WAITS:
            raise ValueError(f"wait must be one of {list(WAITS)}, got {wait!r}")
        self.wait: Wait = wait
        self.subsampling: Subsampling = subsampling
        self.optimized_huffman = bool(optimized_huffman)
        self.default_stream = self._check_stream(stream)
        self.frames_encoded = 0

        self._lib: Library = load_library()
        self._owns_context = context is None
        self._context: CudaContext = primary_context(device) if context is None else context
        self._handle: Any = None
        self._state: Any = None
        self._params: dict[str, Any] = {}  # subsampling -> nvjpegEncoderParams_t
        self._buffer: HostBuffer | None = None
        self._event: CompletionEvent | None = None  # wait="event"/"event-blocking" only
        self._streams: dict[int, Any] = {}
        self._image = ffi.new("nvjpegImage_t *")
        self._length = ffi.new("size_t *")
        self._closed = False
        try:
            with cuda_errors(), self._context.pushed():
                self._open(backend)
            self._buffer = HostBuffer(self._context, self._bound())
            if wait != "stream":
                self._event = CompletionEvent(self._context, blocking=wait == "event-blocking")
        except BaseException:
            self._release(raise_errors=False)
            raise

    # ------------------------------------------------------------------ setup

    def _open(self, backend: str) -> None:
        lib, null = self._lib.lib, self._stream(NULL_STREAM)
        handle = ffi.new("nvjpegHandle_t *")
        self._lib.check(lib.nvjpegCreateSimple(handle), "nvjpegCreateSimple")
        self._handle = handle[0]
        state = ffi.new("nvjpegEncoderState_t *")
        if backend == "default":
            self._lib.check(lib.nvjpegEncoderStateCreate(self._handle, state, null), "nvjpegEncoderStateCreate")
        elif self._lib.has("nvjpegEncoderStateCreateWithBackend"):
            status = lib.nvjpegEncoderStateCreateWithBackend(self._handle, state, BACKENDS[backend], null)
            self._lib.check(status, "nvjpegEncoderStateCreateWithBackend")
        else:
            raise NvjpegUnavailable(
                f"backend={backend!r} needs nvjpegEncoderStateCreateWithBackend, which {self._lib} lacks"
            )
        self._state = state[0]
        self._params_for(self.subsampling)

    def _params_for(self, subsampling: str) -> Any:
        """The parameters for ``subsampling``, made on first use (NV12 needs its own 4:2:0 set)."""
        params = self._params.get(subsampling)
        if params is not None:
            return params
        lib, null = self._lib.lib, self._stream(NULL_STREAM)
        cell = ffi.new("nvjpegEncoderParams_t *")
        self._lib.check(lib.nvjpegEncoderParamsCreate(self._handle, cell, null), "nvjpegEncoderParamsCreate")
        params = self._params[subsampling] = cell[0]  # owned from here: close() destroys it
        self._lib.check(lib.nvjpegEncoderParamsSetQuality(params, self._quality, null), "nvjpegEncoderParamsSetQuality")
        self._lib.check(lib.nvjpegEncoderParamsSetEncoding(params, BASELINE, null), "nvjpegEncoderParamsSetEncoding")
        status = lib.nvjpegEncoderParamsSetOptimizedHuffman(params, int(self.optimized_huffman), null)
        self._lib.check(status, "nvjpegEncoderParamsSetOptimizedHuffman")
        status = lib.nvjpegEncoderParamsSetSamplingFactors(params, SUBSAMPLINGS[subsampling], null)
        self._lib.check(status, "nvjpegEncoderParamsSetSamplingFactors")
        return params

    def _bound(self) -> int:
        """nvJPEG's upper bound on one JPEG's size, over every parameter set in use."""
        size = ffi.new("size_t *")
        best = 0
        for params in self._params.values():
            status = self._lib.lib.nvjpegEncodeGetBufferSize(self._handle, params, self.width, self.height, size)
            self._lib.check(status, "nvjpegEncodeGetBufferSize")
            best = max(best, int(size[0]))
        return best

    def _ensure_capacity(self) -> None:
        """Grow the host buffer if the bound grew (a new parameter set, a higher quality)."""
        assert self._buffer is not None
        with cuda_errors(), self._context.pushed():
            needed = self._bound()
        if needed > self._buffer.size:
            old, self._buffer = self._buffer, None
            old.close()
            self._buffer = HostBuffer(self._context, needed)

    @staticmethod
    def _check_stream(stream: Any) -> int:
        if isinstance(stream, bool) or not isinstance(stream, int) or stream < 0:
            raise ValueError(
                f"stream must be a cudaStream_t as a non-negative integer (0: the default stream), got {stream!r}"
            )
        return stream

    def _stream(self, stream: int) -> Any:
        handle = self._streams.get(stream)
        if handle is None:
            handle = self._streams[stream] = ffi.cast("cudaStream_t", stream)
        return handle

    # ------------------------------------------------------------------ encoding

    @property
    def quality(self) -> int:
        return self._quality

    def set_quality(self, quality: int) -> None:
        """Change the quality (1..100) for the following frames."""
        quality = check_quality(quality)
        self._require_open()
        with cuda_errors(), self._context.pushed():
            for params in self._params.values():
                status = self._lib.lib.nvjpegEncoderParamsSetQuality(params, quality, self._stream(NULL_STREAM))
                self._lib.check(status, "nvjpegEncoderParamsSetQuality")
        self._quality = quality
        self._ensure_capacity()

    @property
    def capacity(self) -> int:
        """The size of the host buffer the JPEG lands in (nvJPEG's bound for this size)."""
        return self._require_open().size

    def encode_rgb(
        self, pointer: int, pitch: int, *, order: Literal["rgb", "bgr"] = "rgb", stream: int | None = None
    ) -> bytes:
        """The JPEG of an interleaved 8-bit RGB (``order="bgr"``: BGR) device image.

        ``pointer`` is the device address of the first pixel, ``pitch`` the bytes from
        one row to the next (at least ``3 * width``).
        """
        if order not in RGB_ORDERS:
            raise ValueError(f"order must be 'rgb' or 'bgr', got {order!r}")
        self._check_plane("pointer", pointer, pitch, 3 * self.width)
        image = self._image
        image.channel[0] = ffi.cast("unsigned char *", pointer)
        image.pitch[0] = pitch
        image.channel[1] = image.channel[2] = ffi.NULL
        image.pitch[1] = image.pitch[2] = 0
        return self._encode(RGB_ORDERS[order], self.subsampling, stream)

    def encode_nv12(
        self,
        pointer: int,
        pitch: int,
        *,
        uv_pointer: int | None = None,
        uv_pitch: int | None = None,
        stream: int | None = None,
    ) -> bytes:
        """The JPEG (4:2:0) of an NV12 device image.

        The interleaved Cb/Cr plane is at ``uv_pointer`` with rows ``uv_pitch`` bytes
        apart; by default right after the luma plane of one allocation
        (``pointer + pitch * height``, the same pitch), as rfb and NVENC lay NV12 out.
        Width and height must be even. Needs nvjpegEncode (nvJPEG 12.6 and later).
        """
        if self.width % 2 or self.height % 2:
            raise ValueError(f"NV12 needs an even width and height; this encoder is {self.width}x{self.height}")
        if not self._lib.has("nvjpegEncode"):
            raise NvjpegUnavailable(f"NV12 input needs nvjpegEncode, which {self._lib} lacks (update nvJPEG)")
        self._check_plane("pointer", pointer, pitch, self.width)
        uv_pitch = pitch if uv_pitch is None else uv_pitch
        uv_pointer = pointer + pitch * self.height if uv_pointer is None else uv_pointer
        self._check_plane("uv_pointer", uv_pointer, uv_pitch, self.width)
        image = self._image
        image.channel[0] = ffi.cast("unsigned char *", pointer)
        image.pitch[0] = pitch
        image.channel[1] = ffi.cast("unsigned char *", uv_pointer)
        image.pitch[1] = uv_pitch
        image.channel[2] = ffi.NULL
        image.pitch[2] = 0
        return self._encode(INPUT_NV12, "420", stream)

    def _check_plane(self, name: str, pointer: Any, pitch: Any, row_bytes: int) -> None:
        self._require_open()
        if isinstance(pointer, bool) or not isinstance(pointer, int) or pointer <= 0:
            raise ValueError(f"{name} must be a non-NULL device address (an int), got {pointer!r}")
        if isinstance(pitch, bool) or not isinstance(pitch, int) or pitch < row_bytes:
            raise ValueError(
                f"the row pitch of {name} must be an int of at least {row_bytes} bytes for a "
                f"{self.width}-pixel row, got {pitch!r}"
            )

    def _encode(self, input_format: int, subsampling: str, stream: int | None) -> bytes:
        stream = self.default_stream if stream is None else self._check_stream(stream)
        if subsampling not in self._params:
            with cuda_errors(), self._context.pushed():
                self._params_for(subsampling)
            self._ensure_capacity()
        buffer = self._require_open()
        lib, check = self._lib.lib, self._lib.check
        params, cuda_stream, length = self._params[subsampling], self._stream(stream), self._length
        with cuda_errors(), self._context.pushed():
            if input_format == INPUT_NV12:
                status = lib.nvjpegEncode(
                    self._handle,
                    self._state,
                    params,
                    self._image,
                    SUBSAMPLINGS["420"],
                    input_format,
                    self.width,
                    self.height,
                    cuda_stream,
                )
                check(status, "nvjpegEncode")
            else:
                status = lib.nvjpegEncodeImage(
                    self._handle, self._state, params, self._image, input_format, self.width, self.height, cuda_stream
                )
                check(status, "nvjpegEncodeImage")
            length[0] = buffer.size
            check(
                lib.nvjpegEncodeRetrieveBitstream(self._handle, self._state, buffer.pointer, length, cuda_stream),
                "nvjpegEncodeRetrieveBitstream",
            )
            # Waited for inside the same block: the wait's own pushed() finds the context
            # current and pushes nothing (one push and pop a frame, not two).
            event = self._event
            if event is None:
                self._context.synchronize_stream(stream)
            else:
                event.record_and_wait(stream)
        self.frames_encoded += 1
        return buffer.read(int(length[0]))

    # ------------------------------------------------------------------ release

    def _require_open(self) -> HostBuffer:
        if self._closed or self._buffer is None:
            raise RuntimeError("JpegEncoder is closed; create a new one")
        return self._buffer

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Destroy the parameters, the state and the handle, free the host buffer, and
        release the context if it is ours. Idempotent; the first failure is raised after
        everything else has been released."""
        if self._closed:
            return
        self._release(raise_errors=True)

    def _release(self, *, raise_errors: bool) -> None:
        self._closed = True
        first: BaseException | None = None

        def attempt(function: str, call: Any) -> None:
            nonlocal first
            try:
                with cuda_errors(), self._context.pushed():
                    status = call()
                if status:
                    raise error_for(function, status)
            except RuntimeError as exc:  # NvjpegError and CudaError alike: keep releasing
                logger.warning("nvjpegffi: %s during close: %s", function, exc)
                first = first or exc

        lib = self._lib.lib
        params, self._params = self._params, {}
        for value in params.values():
            attempt("nvjpegEncoderParamsDestroy", lambda p=value: lib.nvjpegEncoderParamsDestroy(p))
        state, self._state = self._state, None
        if state is not None:
            attempt("nvjpegEncoderStateDestroy", lambda: lib.nvjpegEncoderStateDestroy(state))
        handle, self._handle = self._handle, None
        if handle is not None:
            attempt("nvjpegDestroy", lambda: lib.nvjpegDestroy(handle))
        buffer, self._buffer = self._buffer, None
        if buffer is not None:
            try:
                buffer.close()
            except RuntimeError as exc:
                first = first or exc
        event, self._event = self._event, None
        if event is not None:
            try:
                event.close()
            except RuntimeError as exc:
                first = first or exc
        if self._owns_context:
            self._owns_context = False
            try:
                with cuda_errors():
                    self._context.close()
            except RuntimeError as exc:
                first = first or exc
        if first is not None and raise_errors:
            raise first

    def __enter__(self) -> JpegEncoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.frames_encoded} frames"
        return f"<nvjpegffi.JpegEncoder {self.width}x{self.height} q={self._quality} {self.subsampling} {state}>"
