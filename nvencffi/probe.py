"""``probe()``: can this machine encode with NVENC? Answered by encoding, without raising.

Opening a session is not enough: an H100 loads the library, negotiates the version and
fills the function table, and only then says it has no encode engine; and a GPU that
does open a session can still refuse a size, a format or a configuration. So the probe
does what a caller will do: one frame at a realistic size (1280x720 NV12, or the
smallest size the GPU's caps allow if that is larger), from a buffer it owns (256-byte
pitch, not from a pool), through the same ``NvencEncoder``; then it checks that what
came out is a decodable IDR: Annex B with SPS, PPS and an IDR slice, decoded with PyAV
when it is importable. Everything is released before it returns.

``ProbeResult.step`` names the step that failed ("library", "cuda", "session", "caps",
"configure", "encode", "output") and ``detail`` the driver's own text, so a report can
say where a first contact went wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from nvencffi.caps import EncoderCaps, query_caps
from nvencffi.cuda import EncodeContext, PrimaryContext
from nvencffi.errors import CudaError, DriverTooOld, NvencError, NvencUnavailable
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


def _failed(step: str, exc: BaseException, version: tuple[int, int], ctx: EncodeContext, **known: object) -> ProbeResult:
    detail = exc.detail if isinstance(exc, NvencError) else None
    return ProbeResult(False, f"{step} failed: {exc}" if step != "session" else str(exc), version, ctx.gpu_name,
                       step=step, detail=detail, **known)  # type: ignore[arg-type]


def _probe(ctx: EncodeContext, version: tuple[int, int]) -> ProbeResult:
    from nvencffi import guids
    from nvencffi.encoder import NvencEncoder
    from nvencffi.session import destroy_session, open_session

    lib = load_library()
    try:
        session = open_session(lib, ctx)
    except (NvencUnavailable, NvencError) as exc:
        return _failed("session", exc, version, ctx)
    try:
        with ctx.pushed():
            caps = query_caps(lib, session, guids.new_guid(guids.CODECS["h264"]))
    except NvencError as exc:
        return _failed("caps", exc, version, ctx)
    finally:
        destroy_session(lib, ctx, session)
    size = (max(PROBE_SIZE[0], -(-caps.width_min // 2) * 2), max(PROBE_SIZE[1], -(-caps.height_min // 2) * 2))
    known = {"caps": caps, "size": size}
    try:
        encoder = NvencEncoder(*size, context=ctx)
    except (NvencUnavailable, NvencError, ValueError) as exc:
        return _failed("configure", exc, version, ctx, **known)
    frame: StagingBuffer | None = None
    try:
        with encoder:  # closed (its registration of the frame included) before the frame is freed
            frame = StagingBuffer(ctx, size[0], size[1], NV12)
            frame.fill(GREY)
            data = encoder.encode(frame)
    except (NvencError, CudaError, ValueError) as exc:
        return _failed("encode", exc, version, ctx, **known)
    finally:
        if frame is not None:
            frame.free()
    problem = check_idr(data, size)
    if problem is not None:
        return ProbeResult(False, f"output failed: {problem}", version, ctx.gpu_name, step="output", **known)  # type: ignore[arg-type]
    return ProbeResult(True, None, version, ctx.gpu_name, caps=caps, size=size)
