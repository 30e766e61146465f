"""The jpeg_gpu route: every frame as one JPEG made on the GPU by nvJPEG (nvjpegffi).

Data-centre GPUs (A100, H100, H200) have no NVENC, and the CPU routes pull every frame
to the host first. nvJPEG encodes on the GPU's compute units, from device memory, so
the only bytes that cross PCIe are the JPEG's. For image viewers of a GPU display this
is the image route; it is also a choice for H.264-capable viewers (``?transport=image``
in the viewer's URL), since on a LAN or on localhost a JPEG per frame may reach the
screen sooner than H.264 made on the CPU.

What happens to each frame (buffers are allocated on the first frame that needs them
and reused for every frame of the same size):

- CUDA rgb24: nvJPEG reads the caller's memory as it is (pointer and row pitch): zero
  copy, no conversion on our side.
- CUDA rgba8: nvJPEG takes 3-byte pixels only, so the RGB bytes are packed into a
  staging buffer on the device (one copy kernel), then as rgb24. The JPEG is the same
  as that of the rgb24 frame holding the same pixels.
- CUDA nv12: rfb's NV12 is BT.709 limited range (what its H.264 routes signal), JPEG's
  (JFIF) is BT.601 full range, so one kernel re-matrixes it into a staging NV12 buffer,
  which nvJPEG encodes as 4:2:0 without converting again (``nvjpegEncode``).
- host frames (fallback): one host-to-device copy into a staging buffer (the NVENC
  routes' :class:`~rfb.gpu.staging.DeviceStaging`), then as above.

The work runs on the stream the frame's array names (CUDA array interface v3, as
PyTorch's and CuPy's do), else on the legacy default stream, in the device's primary
context; the encoder waits for that stream once per frame, to read the JPEG.

Lossless stills stay PNG: ``encode(frame, lossless=True)`` copies the frame down once
(``rfb.gpu.to_host_rgb``) and hands it to the CPU image route's PNG writer, as the
image route does for an idle scene.

Quality is ``EncoderConfig.quality``; the chroma subsampling (4:2:0 by default, as the
CPU image route) is a constructor option (``subsampling="444"`` keeps coloured text and
thin lines sharp, for more bytes).
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rfb.colorspace import DEFAULT_MATRIX, color_matrix, nv12_planes
from rfb.encoders.base import EncodedPayload, EncoderConfig, EncoderUnavailable, Transport
from rfb.encoders.image import JPEG_MIME, PNG_MIME, ImageEncoder
from rfb.encoders.registry import EncoderEntry
from rfb.frames import FrameError, RawFrame, frame_from_array
from rfb.gpu.arrays import as_cupy, check_cuda_frame, cupy_stream, frame_stream
from rfb.gpu.context import cupy_available, import_cupy
from rfb.gpu.convert import DEVICE_ROUND_U8, to_host_rgb

if TYPE_CHECKING:
    from nvjpegffi import JpegEncoder
    from nvjpegffi.cuda import CudaContext, Wait
    from rfb.gpu.staging import DeviceStaging

logger = logging.getLogger(__name__)

NAME = "jpeg_gpu"
PRIORITY = 20  # above the CPU image route (0): see select_encoder(gpu=True)

# JPEG (JFIF) pixels: BT.601 luma weights, full range. nvJPEG converts RGB with them.
JFIF_MATRIX = ("bt601", True)
# CUDA array interface v3 stream values that are not stream handles.

_KERNEL_NAME = "rfb_nv12_rematrix"
_KERNEL_SOURCE = (
    DEVICE_ROUND_U8
    + r"""
// One thread per 2x2 block: four luma samples and the block's chroma pair, through
// one affine map of (Y, U, V); chroma uses the block's mean luma.
extern "C" __global__ void rfb_nv12_rematrix(
    const unsigned char* __restrict__ src, const long long src_pitch,
    unsigned char* __restrict__ dst, const long long dst_pitch,
    const int half_width, const int half_height,
    const float m00, const float m01, const float m02, const float b0,
    const float m10, const float m11, const float m12, const float b1,
    const float m20, const float m21, const float m22, const float b2)
{
    const int bx = blockIdx.x * blockDim.x + threadIdx.x;
    const int by = blockIdx.y * blockDim.y + threadIdx.y;
    if (bx >= half_width || by >= half_height) return;
    const long long x = 2LL * bx;
    const long long y = 2LL * by;
    const unsigned char* uv = src + (2LL * half_height + by) * src_pitch + x;
    const float u = uv[0];
    const float v = uv[1];
    float sum = 0.0f;
    #pragma unroll
    for (int dy = 0; dy < 2; ++dy) {
        #pragma unroll
        for (int dx = 0; dx < 2; ++dx) {
            const float luma = src[(y + dy) * src_pitch + x + dx];
            sum += luma;
            dst[(y + dy) * dst_pitch + x + dx] = rfb_to_u8(m00 * luma + m01 * u + m02 * v + b0);
        }
    }
    const float mean = 0.25f * sum;
    unsigned char* out = dst + (2LL * half_height + by) * dst_pitch + x;
    out[0] = rfb_to_u8(m10 * mean + m11 * u + m12 * v + b1);
    out[1] = rfb_to_u8(m20 * mean + m21 * u + m22 * v + b2);
}
"""
)
_BLOCK = (32, 8, 1)


@functools.cache
def rematrix_coefficients(matrix: str = DEFAULT_MATRIX, full_range: bool = False) -> tuple[float, ...]:
    """The 12 floats mapping (Y, U, V) of ``matrix``/``full_range`` to JFIF's (Y, U, V).

    Row by row ``(m0, m1, m2, b)``: ``out = m . (Y, U, V) + b``, the composition of the
    source's inverse matrix (YUV -> RGB) with JFIF's forward one (RGB -> YUV). Exact for
    colours inside the RGB cube, as NV12 made from RGB is.
    """
    src = color_matrix(matrix, full_range)
    dst = color_matrix(*JFIF_MATRIX)
    m = np.asarray(dst.forward) @ np.asarray(src.inverse)
    b = np.asarray(dst.offset) - m @ np.asarray(src.offset)
    return tuple(float(v) for row, offset in zip(m, b, strict=True) for v in (*row, offset))


def nv12_to_jfif_host(nv12: np.ndarray, *, matrix: str = DEFAULT_MATRIX, full_range: bool = False) -> np.ndarray:
    """The NumPy twin of the kernel: a host NV12 array re-matrixed to JFIF, as a new array."""
    y_plane, uv_plane = nv12_planes(np.asarray(nv12))
    c = np.asarray(rematrix_coefficients(matrix, full_range), dtype=np.float32).reshape(3, 4)
    luma = y_plane.astype(np.float32)
    u, v = (uv_plane[..., k].astype(np.float32) for k in (0, 1))
    u_full, v_full = (p.repeat(2, axis=0).repeat(2, axis=1) for p in (u, v))
    mean = luma.reshape(luma.shape[0] // 2, 2, luma.shape[1] // 2, 2).mean(axis=(1, 3), dtype=np.float32)
    out = np.empty_like(np.asarray(nv12))
    out_y, out_uv = nv12_planes(out)
    out_y[...] = _round_u8(c[0, 0] * luma + c[0, 1] * u_full + c[0, 2] * v_full + c[0, 3])
    for k in (1, 2):
        out_uv[..., k - 1] = _round_u8(c[k, 0] * mean + c[k, 1] * u + c[k, 2] * v + c[k, 3])
    return out


def _round_u8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(values + np.float32(0.5)), 0, 255).astype(np.uint8)


@functools.cache
def _kernel() -> Any:
    return import_cupy().RawKernel(_KERNEL_SOURCE, _KERNEL_NAME)


class JpegGpuEncoder:
    """An :class:`~rfb.encoders.base.EncoderBackend` over one ``nvjpegffi.JpegEncoder``.

    ``context`` is nvjpegffi's (the test suite passes a ``NullContext`` to drive the
    nvJPEG emulator with host memory); by default the encoder retains the primary
    context of ``config.device_id``. ``nv12_matrix``/``nv12_full_range`` say what the
    NV12 frames published to it hold (rfb's convention by default). ``wait`` is how
    nvjpegffi waits for each JPEG (``"stream"`` by default; ``"event"`` and
    ``"event-blocking"`` are the variants ``python -m rfb.benchmark.nvjpeg_layers
    --compare`` measures against it).
    """

    transport: Transport = "image"

    def __init__(
        self,
        config: EncoderConfig,
        *,
        name: str = NAME,
        subsampling: Literal["420", "422", "444"] = "420",
        nv12_matrix: str = DEFAULT_MATRIX,
        nv12_full_range: bool = False,
        context: CudaContext | None = None,
        wait: Wait = "stream",
    ) -> None:
        from nvjpegffi import check_quality

        check_quality(config.quality)  # ValueError before anything is opened
        if config.width <= 0 or config.height <= 0:
            raise FrameError(f"expected a positive frame size, got {config.width}x{config.height}")
        self.name = name
        self.config = config
        self.nv12_coefficients = rematrix_coefficients(nv12_matrix, nv12_full_range)
        self._nv12_is_jfif = (nv12_matrix, bool(nv12_full_range)) == JFIF_MATRIX
        self.uploads = 0  # host frames copied up
        self.packs = 0  # rgba8 frames packed to rgb24 on the device
        self.conversions = 0  # nv12 frames re-matrixed to JFIF on the device
        self.downloads = 0  # frames copied down for a PNG still
        self.last_source: tuple[int, int] | None = None  # (pointer, pitch) nvJPEG last read
        self._jpeg: JpegEncoder | None = _open_nvjpeg(config, subsampling, context, wait)
        self._staging: DeviceStaging | None = None  # host uploads, made on the first host frame
        self._buffers: dict[str, Any] = {}  # "rgb24" / "nv12" -> CuPy staging array
        self._still: ImageEncoder | None = None  # the PNG writer, made on the first still

    # -- the EncoderBackend protocol ---------------------------------------------

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False, lossless: bool = False) -> list[EncodedPayload]:
        """One JPEG of the frame (``config.quality``), or one PNG with ``lossless=True``."""
        jpeg = self._require_open()
        self._check_frame(frame)
        if lossless:
            data, mime = self._png(frame), PNG_MIME
        else:
            data, mime = self._jpeg_bytes(jpeg, frame), JPEG_MIME
        return [
            EncodedPayload(
                data=data, keyframe=True, width=frame.width, height=frame.height, transport="image", mime=mime
            )
        ]

    def flush(self) -> list[EncodedPayload]:
        """Nothing is ever held back."""
        self._require_open()
        return []

    def close(self) -> None:
        """Release nvJPEG (state, handle, host buffer, context), then the staging buffers
        and the PNG writer. Idempotent."""
        jpeg, self._jpeg = self._jpeg, None
        staging, self._staging = self._staging, None
        still, self._still = self._still, None
        self._buffers.clear()
        try:
            if jpeg is not None:
                jpeg.close()
        finally:
            if staging is not None:
                staging.close()
            if still is not None:
                still.close()

    def __enter__(self) -> JpegGpuEncoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._jpeg is None

    @property
    def nvjpeg(self) -> JpegEncoder:
        """The nvjpegffi encoder (its counters and capacity, for tests and the benchmark)."""
        return self._require_open()

    # -- internals ---------------------------------------------------------------

    def _require_open(self) -> JpegEncoder:
        if self._jpeg is None:
            raise RuntimeError(f"{self.name} encoder is closed; create a new one")
        return self._jpeg

    def _check_frame(self, frame: RawFrame) -> None:
        if not isinstance(frame, RawFrame):
            raise FrameError(
                f"expected a RawFrame, got {type(frame).__name__} "
                "(use rfb.gpu.cuda_frame for CUDA arrays, rfb.frames.frame_from_array for NumPy)"
            )
        if frame.size != (self.config.width, self.config.height):
            raise FrameError(
                f"{self.name} was opened for {self.config.width}x{self.config.height} frames, "
                f"got {frame.width}x{frame.height} (open a new encoder for a new size)"
            )
        if frame.memory == "cuda" and frame.device_id != self.config.device_id:
            raise FrameError(
                f"{self.name} encodes on CUDA device {self.config.device_id}, "
                f"the frame lives on device {frame.device_id}"
            )

    def _jpeg_bytes(self, jpeg: JpegEncoder, frame: RawFrame) -> bytes:
        if frame.memory == "cpu":
            frame = self._upload(frame_from_array(frame))
        info = check_cuda_frame(frame)  # the frame's data has the geometry it claims
        stream = frame_stream(info)
        if frame.pixel_format == "rgb24":
            return self._encode_rgb(jpeg, info.ptr, frame.stride, stream)
        if frame.pixel_format == "rgba8":
            packed = self._pack(frame, stream)
            return self._encode_rgb(jpeg, packed.data.ptr, packed.strides[0], stream)
        if self._nv12_is_jfif:
            return self._encode_nv12(jpeg, info.ptr, frame.stride, stream)
        converted = self._rematrix(frame, stream)
        return self._encode_nv12(jpeg, converted.data.ptr, converted.strides[0], stream)

    def _encode_rgb(self, jpeg: JpegEncoder, pointer: int, pitch: int, stream: int) -> bytes:
        self.last_source = (pointer, pitch)
        return jpeg.encode_rgb(pointer, pitch, stream=stream)

    def _encode_nv12(self, jpeg: JpegEncoder, pointer: int, pitch: int, stream: int) -> bytes:
        self.last_source = (pointer, pitch)
        return jpeg.encode_nv12(pointer, pitch, stream=stream)

    def _upload(self, frame: RawFrame) -> RawFrame:
        """A host frame as a CUDA frame in a reused staging buffer (one 2-D copy up)."""
        if self._staging is None:
            from rfb.gpu.staging import DeviceStaging

            self._staging = DeviceStaging(("nv12", "rgb24", "rgba8"), device_id=self.config.device_id)
        self.uploads += 1
        return self._staging.device_frame(frame)

    def _buffer(self, cp: Any, kind: str, shape: tuple[int, ...]) -> Any:
        buffer = self._buffers.get(kind)
        if buffer is None or tuple(buffer.shape) != shape:
            self._buffers.pop(kind, None)  # free the old one before allocating anew
            buffer = self._buffers[kind] = cp.empty(shape, dtype=cp.uint8)
        return buffer

    def _pack(self, frame: RawFrame, stream: int) -> Any:
        """rgba8 -> packed rgb24 on the device, queued on ``stream``, into a reused buffer."""
        cp = import_cupy()
        with cp.cuda.Device(self.config.device_id), cupy_stream(cp, stream):
            target = self._buffer(cp, "rgb24", (frame.height, frame.width, 3))
            target[...] = as_cupy(frame.data)[..., :3]
        self.packs += 1
        return target

    def _rematrix(self, frame: RawFrame, stream: int) -> Any:
        """nv12 (the configured colorimetry) -> JFIF nv12, one kernel on ``stream``."""
        cp = import_cupy()
        with cp.cuda.Device(self.config.device_id), cupy_stream(cp, stream):
            target = self._buffer(cp, "nv12", (frame.height + frame.height // 2, frame.width))
            half_w, half_h = frame.width // 2, frame.height // 2
            grid = ((half_w + _BLOCK[0] - 1) // _BLOCK[0], (half_h + _BLOCK[1] - 1) // _BLOCK[1], 1)
            args = (
                as_cupy(frame.data),
                np.int64(frame.stride),
                target,
                np.int64(frame.width),
                np.int32(half_w),
                np.int32(half_h),
                *(np.float32(c) for c in self.nv12_coefficients),
            )
            _kernel()(grid, _BLOCK, args)
        self.conversions += 1
        return target

    def _png(self, frame: RawFrame) -> bytes:
        """The frame's exact pixels as PNG: CUDA frames are copied down once first."""
        if self._still is None:
            self._still = ImageEncoder(self.config, name=self.name, strips=1)
        if frame.memory == "cuda":
            check_cuda_frame(frame)
            rgb = to_host_rgb(frame)  # nv12: converted back with rfb's matrix, as every route does
            self.downloads += 1
            frame = RawFrame(rgb, frame.width, frame.height, "rgb24", "cpu", timestamp_us=frame.timestamp_us)
        (payload,) = self._still.encode(frame, lossless=True)
        return payload.data

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.nvjpeg.frames_encoded} frames"
        return f"<JpegGpuEncoder {self.name} {self.config.width}x{self.config.height} {state}>"


def _open_nvjpeg(
    config: EncoderConfig,
    subsampling: Literal["420", "422", "444"],
    context: CudaContext | None,
    wait: Wait = "stream",
) -> JpegEncoder:
    """The nvjpegffi encoder for ``config``; nvJPEG that cannot run here is EncoderUnavailable."""
    try:
        import nvjpegffi
    except ImportError as exc:  # an unbuilt checkout without build_ffi.py
        raise EncoderUnavailable(f"{NAME}: nvjpegffi cannot be imported: {exc}") from exc
    try:
        return nvjpegffi.JpegEncoder(
            config.width,
            config.height,
            quality=config.quality,
            subsampling=subsampling,
            device=config.device_id,
            context=context,
            wait=wait,
        )
    except nvjpegffi.NvjpegUnavailable as exc:
        raise EncoderUnavailable(f"{NAME}: {exc}") from exc


def create(config: EncoderConfig) -> JpegGpuEncoder:
    """The jpeg_gpu factory."""
    return JpegGpuEncoder(config)


def probe(device_id: int = 0, *, context: CudaContext | None = None) -> str | None:
    """None when nvJPEG starts an encoder on CUDA device ``device_id`` and CuPy can stage frames, else why not.

    ``context`` goes to ``nvjpegffi.probe`` (the tests pass a ``NullContext``, which
    stands for every device).
    """
    try:
        import nvjpegffi
    except ImportError as exc:
        return f"nvjpegffi cannot be imported: {exc}"
    result = nvjpegffi.probe(device_id, context=context)
    if not result.available:
        return f"nvJPEG cannot encode here: {result.reason}"
    if context is None:
        reason = cupy_available()
        if reason is not None:
            return (
                "nvJPEG works, but rgba8, nv12 and host frames are staged on the GPU with CuPy, "
                f"which is unusable: {reason}"
            )
    return None


ENTRIES: list[EncoderEntry] = [
    EncoderEntry(
        name=NAME,
        factory=create,
        transport="image",
        probe=probe,
        priority=PRIORITY,
        reads_cuda=True,
        description=(
            "JPEG per frame made on the GPU by nvJPEG (nvjpegffi): CUDA rgb24 zero copy; PNG stills after one download"
        ),
    )
]
