"""``probe()``: can this machine encode with NVENC? Answered by encoding, without raising.

Opening a session is not enough: an H100 loads the library, negotiates the version and
fills the function table, and only then says it has no encode engine; and a GPU that
does open a session can still refuse a size, a format or a configuration. So the probe
does what a caller will do: one frame at a realistic size (1280x720 NV12, or the
nearest size the GPU's caps allow), from a buffer it owns (256-byte
pitch, not from a pool), through the same ``NvencEncoder``; then it checks that what
came out is a decodable IDR: Annex B with SPS, PPS and an IDR slice, decoded with PyAV
when it is importable. Everything is released before it returns.

``ProbeResult.step`` names the step that failed ("library", "cuda", "session", "caps",
"configure", "encode", "output") and ``detail`` the driver's own text, so a report can
say where a first contact went wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from nvencffi.caps import EncoderCaps
from nvencffi.cuda import EncodeContext, PrimaryContext
from nvencffi.encoder import NvencEncoder
from nvencffi.errors import CudaError, DriverTooOld, FrameSizeUnsupported, NvencError, NvencUnavailable
from nvencffi.frames import NV12
from nvencffi.library import load_library
from nvencffi.staging import StagingBuffer

PROBE_SIZE = (1280, 720)
GREY = 0x80  # a flat mid-grey NV12 frame: luma and chroma both 128
NAL_IDR, NAL_SPS, NAL_PPS = 5, 7, 8


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """``available``; else ``reason`` in plain words, ``step`` where it failed and
    ``detail`` the driver's text. The other fields as far as known."""

    available: bool
    reason: str | None
    max_api_version: tuple[int, int] | None
    gpu_name: str | None
    step: str | None = None
    detail: str | None = None
    caps: EncoderCaps | None = None
    size: tuple[int, int] | None = None  # the size the probe encoded


def nal_types(data: bytes) -> list[int]:
    """The NAL unit types of an Annex B stream, in order."""
    types = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0 and i + 3 < len(data):
        types.append(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return types


def check_idr(data: bytes, size: tuple[int, int]) -> str | None:
    """Why ``data`` is not one decodable IDR access unit of ``size``, or None."""
    types = nal_types(data)
    missing = [name for name, t in (("SPS", NAL_SPS), ("PPS", NAL_PPS), ("IDR slice", NAL_IDR)) if t not in types]
    if missing:
        return f"the access unit ({len(data)} bytes, NAL types {types}) has no {', '.join(missing)}"
    try:
        import av
    except ImportError:
        return None  # the NAL structure is all we can check without a decoder
    try:
        codec = av.CodecContext.create("h264", "r")
        frames = list(codec.decode(av.Packet(data))) + list(codec.decode(None))
    except av.FFmpegError as exc:
        return f"FFmpeg's H.264 decoder refused the access unit: {exc}"
    if len(frames) != 1 or (frames[0].width, frames[0].height) != size:
        got = [(f.width, f.height) for f in frames]
        return f"FFmpeg decoded {len(frames)} frame(s) of sizes {got} from it, expected one of {size[0]}x{size[1]}"
    return None


def probe(device: int = 0, *, context: EncodeContext | None = None) -> ProbeResult:
    """Encode one frame on ``device`` and check it; never raises for "unavailable".

    ``context`` as for ``NvencEncoder`` (the test suite passes a ``NullContext``); by
    default the primary context of ``device`` is retained and released.
    """
    try:
        lib = load_library()
    except DriverTooOld as exc:
        return ProbeResult(False, str(exc), exc.max_api_version, None, step="library")
    except NvencUnavailable as exc:
        return ProbeResult(False, str(exc), None, None, step="library")
    version = lib.max_api_version
    try:
        ctx = PrimaryContext(device) if context is None else context
    except NvencUnavailable as exc:
        return ProbeResult(False, str(exc), version, None, step="cuda")
    try:
        return _probe(ctx, version)
    finally:
        if context is None:
            ctx.close()


def _failed(
    step: str,
    exc: BaseException,
    version: tuple[int, int],
    ctx: EncodeContext,
    *,
    caps: EncoderCaps | None = None,
    size: tuple[int, int] | None = None,
) -> ProbeResult:
    detail = exc.detail if isinstance(exc, NvencError) else None
    reason = str(exc) if step == "session" else f"{step} failed: {exc}"
    return ProbeResult(False, reason, version, ctx.gpu_name, step=step, detail=detail, caps=caps, size=size)


# Which probe step an NvencError raised while opening an encoder belongs to.
_OPEN_STEPS = {"nvEncOpenEncodeSessionEx": "session", "nvEncGetEncodeCaps": "caps"}


def _even_within(value: int, low: int, high: int) -> int:
    value = max(value, -(-low // 2) * 2)
    return min(value, high - high % 2) if high > 0 else value


def _open(ctx: EncodeContext) -> NvencEncoder:
    """An encoder at :data:`PROBE_SIZE`, or at the nearest size the GPU's caps allow."""
    try:
        return NvencEncoder(*PROBE_SIZE, context=ctx)
    except FrameSizeUnsupported as exc:
        (w_min, h_min), (w_max, h_max) = exc.min_size, exc.max_size
        size = (_even_within(PROBE_SIZE[0], w_min, w_max), _even_within(PROBE_SIZE[1], h_min, h_max))
        return NvencEncoder(*size, context=ctx)


def _probe(ctx: EncodeContext, version: tuple[int, int]) -> ProbeResult:
    try:
        encoder = _open(ctx)
    except (NvencUnavailable, NvencError) as exc:
        step = _OPEN_STEPS.get(getattr(exc, "function", ""), "configure")
        return _failed(step, exc, version, ctx)
    except ValueError as exc:  # FrameSizeUnsupported at the nearest size too: caps that contradict themselves
        return _failed("caps", exc, version, ctx)
    size = (encoder.width, encoder.height)
    frame: StagingBuffer | None = None
    try:
        with encoder:  # closed (its registration of the frame included) before the frame is freed
            frame = StagingBuffer(ctx, size[0], size[1], NV12)
            frame.fill(GREY)
            data = encoder.encode(frame)
    except (NvencError, CudaError, ValueError) as exc:
        return _failed("encode", exc, version, ctx, caps=encoder.caps, size=size)
    finally:
        if frame is not None:
            frame.free()
    problem = check_idr(data, size)
    if problem is not None:
        reason = f"output failed: {problem}"
        return ProbeResult(False, reason, version, ctx.gpu_name, step="output", caps=encoder.caps, size=size)
    return ProbeResult(True, None, version, ctx.gpu_name, caps=encoder.caps, size=size)
