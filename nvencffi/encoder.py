"""``NvencEncoder``: one low-latency H.264 session encoding the caller's GPU frames.

The session is configured for interactive streaming, on top of the chosen preset and
tuning (``nvEncGetEncodePresetConfigEx``):

- P-frames only (``frameIntervalP = 1``), no lookahead, zero reorder delay, so each
  ``encode()`` returns the access unit of the frame it was given;
- CBR with a VBV of about one frame (``vbvBufferSize = vbvInitialDelay = bitrate/fps``),
  so no frame is much larger than the average and latency stays flat;
- SPS/PPS repeated in-band on every IDR (``repeatSPSPPS``), so a viewer can join at any
  IDR; the VUI carries ``bitstream_restriction`` (zero reorder frames: browsers' decoders
  otherwise hold frames back) and the colour description;
- an infinite GOP by default, IDRs on demand through ``NV_ENC_PIC_FLAG_FORCEIDR``
  (only honoured with ``enablePTD = 1``), ``idrPeriod = gopLength``.

Before configuring, the session's caps are asked (``caps``): a size the GPU cannot
encode is refused in plain words, the one-frame VBV is set only where a custom VBV is
supported, and a size change in place only where dynamic resolution change is.

Frames are registered zero-copy at the caller's pointer (see ``registrations``), mapped
for the encode and unmapped once the bitstream is locked, unless NVENC must not read
them there: a pitch that is not a multiple of 256, stream-ordered pool memory, another
context's memory. Those are copied on the device into the encoder's own buffer first
(see ``staging``). A frame on another device is refused. Linux NVENC is synchronous:
``nvEncLockBitstream`` waits for the engine, so one bitstream buffer would do; we keep two.

Every call hands the driver clean parameter structs (a struct the driver wrote into is
never handed back to it as the driver left it): the per-frame structs (map, picture, lock)
are refilled each call by copying a template over them, every byte, so reserved and
output fields are zero again, and only the per-frame fields are set (``_ParamStruct``).

An encoder is used by one thread at a time. It owns its session, its registrations, its
staging buffer, its bitstream buffers and (unless one was passed in) its CUDA
primary-context reference; ``close()`` signals end of stream if anything was encoded,
then releases them in that order, and is idempotent.
"""

from __future__ import annotations

import enum
import logging
import warnings
from fractions import Fraction
from typing import Any, Literal

from nvencffi import _api, guids
from nvencffi._ffi import ffi
from nvencffi.caps import EncoderCaps, query_caps
from nvencffi.cuda import EncodeContext, PrimaryContext
from nvencffi.errors import NvencError, ResizeUnsupported, error_for
from nvencffi.frames import FrameLayoutError, FrameReader
from nvencffi.inputs import Inputs
from nvencffi.library import Library, load_library
from nvencffi.session import open_session

logger = logging.getLogger("nvencffi")

PictureType = enum.IntEnum(  # type: ignore[misc]  # members come from the cdef, mypy needs literal names
    "PictureType",
    sorted(ffi.typeof("NV_ENC_PIC_TYPE").relements.items(), key=lambda item: item[1]),
)

TUNINGS = {
    "hq": "NV_ENC_TUNING_INFO_HIGH_QUALITY",
    "ll": "NV_ENC_TUNING_INFO_LOW_LATENCY",
    "ull": "NV_ENC_TUNING_INFO_ULTRA_LOW_LATENCY",
    "lossless": "NV_ENC_TUNING_INFO_LOSSLESS",
}
RATE_CONTROLS = {
    "constqp": "NV_ENC_PARAMS_RC_CONSTQP",
    "vbr": "NV_ENC_PARAMS_RC_VBR",
    "cbr": "NV_ENC_PARAMS_RC_CBR",
}
# VUI colour description: (colour_primaries, transfer_characteristics, matrix_coefficients)
COLORSPACES = {"bt709": (1, 1, 1), "bt601": (6, 6, 6)}

_E = _api.enum_value
_FORCEIDR = _E("NV_ENC_PIC_FLAGS", "NV_ENC_PIC_FLAG_FORCEIDR")
_EOS = _E("NV_ENC_PIC_FLAGS", "NV_ENC_PIC_FLAG_EOS")
_PIC_STRUCT_FRAME = _E("NV_ENC_PIC_STRUCT", "NV_ENC_PIC_STRUCT_FRAME")
_CUDADEVICEPTR = _E("NV_ENC_INPUT_RESOURCE_TYPE", "NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR")
_INPUT_IMAGE = _E("NV_ENC_BUFFER_USAGE", "NV_ENC_INPUT_IMAGE")
_IDR = _E("NV_ENC_PIC_TYPE", "NV_ENC_PIC_TYPE_IDR")
_I = _E("NV_ENC_PIC_TYPE", "NV_ENC_PIC_TYPE_I")
_BITSTREAM_BUFFERS = 2
_PIC_PARAMS = ffi.typeof("NV_ENC_PIC_PARAMS *")
_MAP_PARAMS = ffi.typeof("NV_ENC_MAP_INPUT_RESOURCE *")
_LOCK_PARAMS = ffi.typeof("NV_ENC_LOCK_BITSTREAM *")
_memmove = ffi.memmove


class _ParamStruct:
    """A parameter struct handed to the driver every frame, and the clean template it is
    refilled from before each call.

    The driver writes output fields into what it is given and requires reserved fields to
    be zero, so a struct must never go back to it as the driver left it. Before each call
    the whole template is copied over the struct (every byte: reserved and output fields
    are zero again; the per-frame path inlines the ``ffi.memmove``), then the caller sets
    the per-frame fields. The template holds the fields that never change (``version``...)
    and is never passed to the driver. One copy into memory that stays warm is cheaper
    than allocating and zeroing a new struct per call.
    """

    __slots__ = ("template", "struct", "size")

    def __init__(self, ctype: Any, **fields: Any) -> None:
        self.template = ffi.new(ctype)
        for name, value in fields.items():
            setattr(self.template, name, value)
        self.struct = ffi.new(ctype)
        self.size = ffi.sizeof(self.template[0])


def _frame_rate(fps: float) -> Fraction:
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


def _pick(table: dict[str, str], value: str, what: str) -> str:
    try:
        return table[value]
    except KeyError:
        raise ValueError(f"{what} must be one of {sorted(table)}, got {value!r}") from None


class NvencEncoder:
    """A hardware H.264 encoder for frames already on the GPU. Use as a context manager.

    ``encode(frame)`` takes an NV12 ``(H + H/2, W)`` or RGBA8 ``(H, W, 4)`` uint8 CUDA
    array (see ``nvencffi.frames``) and returns one Annex B access unit.

    ``context`` is for embedders that manage CUDA themselves, and for the test suite
    (``nvencffi.cuda.NullContext`` drives the emulator with host memory); by default the
    primary context of ``device`` is retained, and released by ``close()``. A context
    passed in is never released here.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        codec: Literal["h264"] = "h264",
        preset: str = "p1",
        tuning: Literal["ull", "ll", "hq", "lossless"] = "ull",
        rate_control: Literal["cbr", "vbr", "constqp"] = "cbr",
        bitrate: int = 8_000_000,
        fps: float = 30.0,
        gop: int | None = None,
        profile: Literal["high", "main", "baseline"] = "high",
        device: int = 0,
        cuda_stream: int | None = None,
        registration_cache_size: int = 8,
        max_width: int | None = None,
        max_height: int | None = None,
        qp: int = 23,
        colorspace: Literal["bt709", "bt601"] = "bt709",
        context: EncodeContext | None = None,
    ) -> None:
        self._closed = True  # until fully open: close() has nothing to do before that
        if codec != "h264":
            raise ValueError(f"codec must be 'h264' (the only codec nvencffi configures), got {codec!r}")
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, int) or value <= 0 or value % 2:
                raise ValueError(f"{name} must be a positive even integer, got {value!r}")
        if gop is not None and (not isinstance(gop, int) or gop < 1):
            raise ValueError(f"gop must be None (infinite, IDR on demand) or a positive integer, got {gop!r}")
        if bitrate <= 0 and rate_control != "constqp":
            raise ValueError(f"bitrate must be positive, got {bitrate!r}")
        if not 0 <= qp <= 51:
            raise ValueError(f"qp must be in 0..51, got {qp!r}")
        preset_guid = guids.PRESETS.get(preset)
        if preset_guid is None:
            raise ValueError(f"preset must be one of {sorted(guids.PRESETS)}, got {preset!r}")
        profile_guid = guids.H264_PROFILES.get(profile)
        if profile not in ("high", "main", "baseline") or profile_guid is None:
            raise ValueError(f"profile must be 'high', 'main' or 'baseline', got {profile!r}")
        tuning_value = _E("NV_ENC_TUNING_INFO", _pick(TUNINGS, tuning, "tuning"))
        rc_value = _E("NV_ENC_PARAMS_RC_MODE", _pick(RATE_CONTROLS, rate_control, "rate_control"))
        if colorspace not in COLORSPACES:
            raise ValueError(f"colorspace must be one of {sorted(COLORSPACES)}, got {colorspace!r}")
        rate = _frame_rate(fps)
        max_width = width if max_width is None else max_width
        max_height = height if max_height is None else max_height
        if max_width < width or max_height < height:
            raise ValueError(f"max size {max_width}x{max_height} is smaller than the size {width}x{height}")

        self._width = width
        self._height = height
        self._max_width = max_width
        self._max_height = max_height
        self._bitrate = bitrate
        self._rate = rate
        self._rate_control = rate_control
        self._tuning = tuning
        self._gop = gop
        self._cuda_stream = cuda_stream
        self._frames = 0
        self._force_next_idr = False
        self._last_picture_type: int | None = None

        self._lib: Library = load_library()
        self._owns_context = context is None
        self._context: EncodeContext = PrimaryContext(device) if context is None else context
        self._encoder: Any = None
        self._bitstreams: list[Any] = []
        self._next_bitstream = 0
        self._io_stream: Any = None  # the CUstream NVENC was given a pointer to: lives as long as we do
        self._eos_due = False  # a picture went in since the last end of stream
        self._caps: EncoderCaps | None = None
        self._inputs = Inputs(self._context, registration_cache_size, self._register, self._unregister)
        self._cache = self._inputs.cache
        # Work a failed call left undone, settled before the next frame and on close:
        # ("unmap", mapped input, cache key), ("unlock", bitstream) or ("drain", bitstream:
        # encoded but never locked; NVENC wants outputs locked in submission order).
        self._debts: list[tuple[Any, ...]] = []
        self._reader = FrameReader()  # parse_frame, reusing a recent view for an equal interface
        self._map = _ParamStruct(_MAP_PARAMS, version=_api.MAP_INPUT_RESOURCE_VER)
        # Its template's size fields are set by _set_picture_template() (and on reconfigure).
        self._pic = _ParamStruct(_PIC_PARAMS, version=_api.PIC_PARAMS_VER, pictureStruct=_PIC_STRUCT_FRAME)
        self._lock = _ParamStruct(_LOCK_PARAMS, version=_api.LOCK_BITSTREAM_VER)
        self._set_picture_template()
        self._closed = False
        try:
            self._encoder = open_session(self._lib, self._context)
            with self._context.pushed():
                self._codec_guid = guids.new_guid(guids.CODECS["h264"])
                self._caps = caps = query_caps(self._lib, self._encoder, self._codec_guid)
                gpu = self._context.gpu_name
                caps.check_size(width, height, gpu_name=gpu, what="a frame size")
                caps.check_size(max_width, max_height, gpu_name=gpu, what="a maximum size (max_width, max_height)")
                self._configure(preset_guid, profile, tuning_value, rc_value, qp, colorspace)
                self._check(self._lib.nvEncInitializeEncoder(self._encoder, self._init), "nvEncInitializeEncoder")
                self._create_bitstreams()
                if cuda_stream is not None:
                    self._set_io_streams(cuda_stream)
        except BaseException:
            self._release(raise_errors=False)
            raise

    # ------------------------------------------------------------------ setup

    def _check(self, status: int, function: str) -> None:
        if status:
            raise error_for(function, status, self._lib.last_error(self._encoder))

    def _configure(self, preset_guid: Any, profile: str, tuning: int, rc_mode: int, qp: int, colorspace: str) -> None:
        lib, enc = self._lib, self._encoder
        self._preset_guid = guids.new_guid(preset_guid)
        preset = ffi.new("NV_ENC_PRESET_CONFIG *")
        preset.version = _api.PRESET_CONFIG_VER
        preset.presetCfg.version = _api.CONFIG_VER
        self._check(
            lib.nvEncGetEncodePresetConfigEx(enc, self._codec_guid[0], self._preset_guid[0], tuning, preset),
            "nvEncGetEncodePresetConfigEx",
        )
        config = ffi.new("NV_ENC_CONFIG *")
        config[0] = preset.presetCfg
        config.version = _api.CONFIG_VER
        h264 = config.encodeCodecConfig.h264Config
        for part in (config, config.rcParams, h264, h264.h264VUIParameters):
            _api.zero_reserved(part)  # input structs: reserved fields must be 0
        self._config = config
        gop_length = _api.INFINITE_GOPLENGTH if self._gop is None else self._gop
        config.gopLength = gop_length
        config.frameIntervalP = 1
        lossless = self._tuning == "lossless"
        if not lossless:  # lossless needs the preset's profile (High 4:4:4) and QP 0
            guids.write_guid(config.profileGUID, guids.H264_PROFILES[profile])
        rc = config.rcParams
        rc.enableLookahead = 0
        rc.lookaheadDepth = 0
        rc.zeroReorderDelay = 1
        if not lossless:
            rc.rateControlMode = rc_mode
            if self._rate_control == "constqp":
                rc.constQP.qpInterP = rc.constQP.qpInterB = rc.constQP.qpIntra = qp
                rc.averageBitRate = rc.maxBitRate = 0
                if self._caps is not None and self._caps.custom_vbv:
                    rc.vbvBufferSize = rc.vbvInitialDelay = 0
            else:
                self._apply_bitrate(rc)
        h264.idrPeriod = gop_length
        h264.repeatSPSPPS = 1
        h264.disableSPSPPS = 0
        h264.chromaFormatIDC = 1
        h264.level = _E("NV_ENC_LEVEL", "NV_ENC_LEVEL_AUTOSELECT")
        vui = h264.h264VUIParameters
        vui.bitstreamRestrictionFlag = 1
        primaries, transfer, matrix = COLORSPACES[colorspace]
        vui.videoSignalTypePresentFlag = 1
        vui.videoFormat = _E("NV_ENC_VUI_VIDEO_FORMAT", "NV_ENC_VUI_VIDEO_FORMAT_UNSPECIFIED")
        vui.videoFullRangeFlag = 0
        vui.colourDescriptionPresentFlag = 1
        vui.colourPrimaries = primaries
        vui.transferCharacteristics = transfer
        vui.colourMatrix = matrix

        init = ffi.new("NV_ENC_INITIALIZE_PARAMS *")
        init.version = _api.INITIALIZE_PARAMS_VER
        init.encodeGUID = self._codec_guid[0]
        init.presetGUID = self._preset_guid[0]
        init.encodeWidth = init.darWidth = self._width
        init.encodeHeight = init.darHeight = self._height
        init.frameRateNum = self._rate.numerator
        init.frameRateDen = self._rate.denominator
        init.enableEncodeAsync = 0
        init.enablePTD = 1
        init.encodeConfig = config
        init.maxEncodeWidth = self._max_width
        init.maxEncodeHeight = self._max_height
        init.tuningInfo = tuning
        self._init = init

    def _apply_bitrate(self, rc: Any) -> None:
        """Bitrate, and a one-frame VBV where the GPU takes a custom VBV size (else the
        preset's VBV stays: setting one without the cap is refused)."""
        rc.averageBitRate = self._bitrate
        rc.maxBitRate = self._bitrate
        if self._caps is not None and self._caps.custom_vbv:
            frame_bits = int(self._bitrate * self._rate.denominator / self._rate.numerator)
            rc.vbvBufferSize = frame_bits
            rc.vbvInitialDelay = frame_bits

    def _set_picture_template(self) -> None:
        """The picture parameters that change only with the size (reconfigure() calls it);
        the constant ones were set when the template was made."""
        template = self._pic.template
        template.inputWidth = self._width
        template.inputHeight = self._height

    def _create_bitstreams(self) -> None:
        for _ in range(_BITSTREAM_BUFFERS):
            create = ffi.new("NV_ENC_CREATE_BITSTREAM_BUFFER *")
            create.version = _api.CREATE_BITSTREAM_BUFFER_VER
            self._check(self._lib.nvEncCreateBitstreamBuffer(self._encoder, create), "nvEncCreateBitstreamBuffer")
            self._bitstreams.append(create.bitstreamBuffer)

    def _set_io_streams(self, stream: int) -> None:
        fn = self._lib.functions.nvEncSetIOCudaStreams
        if fn == ffi.NULL:
            raise NvencError(
                "nvEncSetIOCudaStreams",
                22,
                None,
                "cuda_stream was given but this NVENC library has no nvEncSetIOCudaStreams",
            )
        # NV_ENC_CUSTREAM_PTR is a pointer TO a CUstream, which the driver keeps: it must
        # live as long as the session (FFmpeg passes a field of its context), not a call.
        self._io_stream = ffi.new("void **", ffi.cast("void *", stream))
        self._check(fn(self._encoder, self._io_stream, self._io_stream), "nvEncSetIOCudaStreams")

    # -------------------------------------------------------------- properties

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def max_size(self) -> tuple[int, int]:
        return self._max_width, self._max_height

    @property
    def bitrate(self) -> int:
        return self._bitrate

    @property
    def fps(self) -> float:
        return float(self._rate)

    @property
    def frames_encoded(self) -> int:
        return self._frames

    @property
    def last_picture_type(self) -> PictureType | None:
        """The NVENC picture type of the last access unit (``PictureType.NV_ENC_PIC_TYPE_IDR``...)."""
        value = self._last_picture_type
        return None if value is None else PictureType(value)

    @property
    def last_was_keyframe(self) -> bool:
        return self._last_picture_type in (_IDR, _I)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def gpu_name(self) -> str | None:
        return self._context.gpu_name

    @property
    def registrations(self) -> list[tuple[int, int, int, int, int]]:
        """Cached registrations' keys (pointer, pitch, width, height, format), oldest first."""
        return list(self._cache)

    @property
    def registration_stats(self) -> dict[str, int]:
        """Registrations cached, cache hits and misses, ``stale`` (registrations dropped
        because another allocation took their address), ``staged`` (frames copied into
        the encoder's buffer) and why: ``staged_pitch``, ``staged_mempool``,
        ``staged_context`` (see ``nvencffi.staging``)."""
        return self._inputs.stats

    @property
    def caps(self) -> EncoderCaps:
        """What this GPU's H.264 encoder reported (sizes, custom VBV, dynamic resize)."""
        assert self._caps is not None  # set before the constructor returns
        return self._caps

    @property
    def device(self) -> int:
        """The CUDA device the encoder runs on; frames must live there."""
        return self._context.device

    # -------------------------------------------------------------- encoding

    def _require_open(self) -> None:
        if self._closed:
            raise RuntimeError("this NvencEncoder is closed")

    def _register(self, pointer: int, pitch: int, width: int, height: int, buffer_format: int) -> Any:
        reg = ffi.new("NV_ENC_REGISTER_RESOURCE *")
        reg.version = _api.REGISTER_RESOURCE_VER
        reg.resourceType = _CUDADEVICEPTR
        reg.width = width
        reg.height = height
        reg.pitch = pitch
        reg.resourceToRegister = ffi.cast("void *", pointer)
        reg.bufferFormat = buffer_format
        reg.bufferUsage = _INPUT_IMAGE
        self._check(self._lib.nvEncRegisterResource(self._encoder, reg), "nvEncRegisterResource")
        return reg.registeredResource

    def _unregister(self, handle: Any) -> None:
        self._check(self._lib.nvEncUnregisterResource(self._encoder, handle), "nvEncUnregisterResource")

    def encode(self, frame: Any, *, force_idr: bool = False) -> bytes:
        """Encode one frame; returns its Annex B access unit (SPS/PPS in-band on IDRs).

        This is the per-frame path: bookkeeping that only a failure needs happens only on
        failure, and the frame's memory is queried in full only when it is new.
        """
        if self._closed:
            raise RuntimeError("this NvencEncoder is closed")
        view = self._reader.read(frame, dlpack_stream=self._cuda_stream)
        if view.width != self._width or view.height != self._height:
            raise FrameLayoutError(
                f"this encoder takes {self._width}x{self._height} frames (reconfigure() changes that); "
                f"got a {view.width}x{view.height} frame ({view!r})"
            )
        context = self._context
        with context.pushed():  # once for everything below, the stream's synchronize included
            if view.stream is not None and view.stream != self._cuda_stream:
                context.synchronize_stream(view.stream)
            if self._debts:
                self._settle()
            handle, pitch, key = self._inputs.resolve(view, self._cuda_stream)
            return self._encode_input(handle, pitch, key, force_idr)

    def _encode_input(self, handle: Any, pitch: int, key: Any, force_idr: bool) -> bytes:
        """Map the registered input, encode it, copy its access unit out, unmap (context current).

        The NVENC calls of one frame and their parameter structs, nothing else: what
        the overhead benchmark times as the binding's floor (rfb.benchmark.encode_overhead).
        """
        lib = self._lib
        enc = self._encoder
        params = self._map
        mapping = params.struct
        _memmove(mapping, params.template, params.size)
        mapping.registeredResource = handle
        status = lib.nvEncMapInputResource(enc, mapping)
        if status:
            self._check(status, "nvEncMapInputResource")
        mapped = mapping.mappedResource
        try:
            data = self._encode_mapped(mapped, mapping.mappedBufferFmt, pitch, force_idr)
        except BaseException:
            status = lib.nvEncUnmapInputResource(enc, mapped)
            if status:  # e.g. its output is not locked yet: retried before the next frame
                self._owe_unmap(mapped, key)
                logger.debug(
                    "nvencffi: unmap after a failed encode deferred: %s",
                    error_for("nvEncUnmapInputResource", status, lib.last_error(enc)),
                )
            raise
        status = lib.nvEncUnmapInputResource(enc, mapped)
        if status:
            self._owe_unmap(mapped, key)
            self._check(status, "nvEncUnmapInputResource")
        return data

    def _encode_mapped(self, mapped: Any, buffer_format: int, pitch: int, force_idr: bool) -> bytes:
        lib = self._lib
        enc = self._encoder
        index = self._next_bitstream
        bitstream = self._bitstreams[index]
        self._next_bitstream = index ^ 1  # two buffers, alternating
        params = self._pic
        pic = params.struct
        _memmove(pic, params.template, params.size)  # version, picture structure and size
        pic.inputBuffer = mapped
        pic.bufferFmt = buffer_format
        pic.inputPitch = pitch
        pic.outputBitstream = bitstream
        if force_idr or self._force_next_idr:
            pic.encodePicFlags = _FORCEIDR
        frames = self._frames
        pic.inputTimeStamp = frames
        status = lib.nvEncEncodePicture(enc, pic)
        if status:
            self._check(status, "nvEncEncodePicture")
        self._eos_due = True
        self._force_next_idr = False
        self._frames = frames + 1
        params = self._lock
        lock = params.struct
        _memmove(lock, params.template, params.size)
        lock.outputBitstream = bitstream
        status = lib.nvEncLockBitstream(enc, lock)
        if status:
            self._debts.append(("drain", bitstream))
            self._check(status, "nvEncLockBitstream")
        data: bytes = ffi.buffer(lock.bitstreamBufferPtr, lock.bitstreamSizeInBytes)[:]
        self._last_picture_type = lock.pictureType
        status = lib.nvEncUnlockBitstream(enc, bitstream)
        if status:
            self._debts.append(("unlock", bitstream))
            self._check(status, "nvEncUnlockBitstream")
        return data

    def _owe_unmap(self, mapped: Any, key: Any) -> None:
        self._debts.append(("unmap", mapped, key))
        self._cache.mark_mapped(key, True)  # never evicted while NVENC still has it mapped

    def _settle(self) -> None:
        """Finish what failed calls left undone, oldest first; raises if still failing."""
        lib, enc = self._lib, self._encoder
        while self._debts:
            debt = self._debts[0]
            if debt[0] == "unmap":
                self._check(lib.nvEncUnmapInputResource(enc, debt[1]), "nvEncUnmapInputResource")
                self._cache.mark_mapped(debt[2], False)
            elif debt[0] == "unlock":
                self._check(lib.nvEncUnlockBitstream(enc, debt[1]), "nvEncUnlockBitstream")
            else:  # drain: lock the orphaned output (discarding it), then unlock it
                lock = ffi.new("NV_ENC_LOCK_BITSTREAM *")
                lock.version = _api.LOCK_BITSTREAM_VER
                lock.outputBitstream = debt[1]
                self._check(lib.nvEncLockBitstream(enc, lock), "nvEncLockBitstream")
                self._debts[0] = ("unlock", debt[1])
                continue
            self._debts.pop(0)

    def flush(self) -> list[bytes]:
        """Signal end of stream (``NV_ENC_PIC_FLAG_EOS``); returns pending access units.

        With this configuration (P-frames only, no lookahead, synchronous) nothing is ever
        pending, so the list is empty. The encoder stays usable: the next frame is an IDR.
        """
        self._require_open()
        with self._context.pushed():
            self._check(self._send_eos(), "nvEncEncodePicture")
        self._force_next_idr = True
        return []

    def _send_eos(self) -> int:
        """``NV_ENC_PIC_FLAG_EOS`` with no input (context pushed); returns the status."""
        eos = ffi.new(_PIC_PARAMS)
        eos.version = _api.PIC_PARAMS_VER
        eos.encodePicFlags = _EOS
        status = int(self._lib.nvEncEncodePicture(self._encoder, eos))
        if status == 0:
            self._eos_due = False
        return status

    def reconfigure(
        self,
        *,
        bitrate: int | None = None,
        fps: float | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> None:
        """Change bitrate, frame rate or size in place (``nvEncReconfigureEncoder``).

        Sizes must stay within ``max_width``/``max_height`` given at construction and
        within the GPU's caps (else :class:`~nvencffi.errors.FrameSizeUnsupported`), and a
        GPU that cannot change resolution within a session raises
        :class:`~nvencffi.errors.ResizeUnsupported` (open a new encoder instead). A size
        change resets the encoder and makes the next frame an IDR; a rate change does not.
        On failure the previous settings stay in force.
        """
        self._require_open()
        new_width = self._width if width is None else width
        new_height = self._height if height is None else height
        for name, value in (("width", new_width), ("height", new_height)):
            if not isinstance(value, int) or value <= 0 or value % 2:
                raise ValueError(f"{name} must be a positive even integer, got {value!r}")
        if new_width > self._max_width or new_height > self._max_height:
            raise ValueError(
                f"{new_width}x{new_height} exceeds this session's maximum {self._max_width}x{self._max_height} "
                "(pass max_width/max_height when creating the encoder)"
            )
        if bitrate is not None and bitrate <= 0:
            raise ValueError(f"bitrate must be positive, got {bitrate!r}")
        new_rate = self._rate if fps is None else _frame_rate(fps)
        resized = (new_width, new_height) != (self._width, self._height)
        if resized:
            self.caps.check_size(new_width, new_height, gpu_name=self.gpu_name, what="a new frame size")
            if not self.caps.dyn_res_change:
                raise ResizeUnsupported(
                    f"this GPU's NVENC ({self.gpu_name or 'unnamed'}) cannot change resolution within a session "
                    f"(NV_ENC_CAPS_SUPPORT_DYN_RES_CHANGE is 0): close this encoder and open one at "
                    f"{new_width}x{new_height}"
                )

        saved_config = ffi.new("NV_ENC_CONFIG *", self._config[0])
        saved_init = ffi.new("NV_ENC_INITIALIZE_PARAMS *", self._init[0])
        saved = (self._bitrate, self._rate)
        init = self._init
        self._bitrate = self._bitrate if bitrate is None else bitrate
        self._rate = new_rate
        if self._rate_control != "constqp" and self._tuning != "lossless":
            self._apply_bitrate(self._config.rcParams)
        init.frameRateNum = new_rate.numerator
        init.frameRateDen = new_rate.denominator
        init.encodeWidth = init.darWidth = new_width
        init.encodeHeight = init.darHeight = new_height
        params = ffi.new("NV_ENC_RECONFIGURE_PARAMS *")
        params.version = _api.RECONFIGURE_PARAMS_VER
        params.reInitEncodeParams = init[0]
        params.resetEncoder = 1 if resized else 0
        params.forceIDR = 1 if resized else 0
        try:
            with self._context.pushed():
                self._check(self._lib.nvEncReconfigureEncoder(self._encoder, params), "nvEncReconfigureEncoder")
        except BaseException:
            self._config[0] = saved_config[0]
            self._init[0] = saved_init[0]
            self._init.encodeConfig = self._config
            self._bitrate, self._rate = saved
            raise
        self._width, self._height = new_width, new_height
        self._set_picture_template()

    def sequence_params(self) -> bytes:
        """The session's SPS and PPS as Annex B NAL units (``nvEncGetSequenceParams``)."""
        self._require_open()
        buffer = ffi.new("uint8_t[]", _api.MAX_SEQ_HDR_LEN)
        size = ffi.new("uint32_t *")
        payload = ffi.new("NV_ENC_SEQUENCE_PARAM_PAYLOAD *")
        payload.version = _api.SEQUENCE_PARAM_PAYLOAD_VER
        payload.inBufferSize = _api.MAX_SEQ_HDR_LEN
        payload.spsppsBuffer = buffer
        payload.outSPSPPSPayloadSize = size
        with self._context.pushed():
            self._check(self._lib.nvEncGetSequenceParams(self._encoder, payload), "nvEncGetSequenceParams")
        header: bytes = ffi.buffer(buffer, size[0])[:]
        return header

    # ------------------------------------------------------------ registrations

    def forget(self, pointer: int) -> int:
        """Unregister cached registrations of ``pointer`` (e.g. after freeing that buffer).

        Returns how many were dropped. Not needed for correctness (see
        ``nvencffi.registrations``), only to release driver resources early.
        """
        self._require_open()
        with self._context.pushed():
            if self._debts:
                self._settle()  # a registration still mapped cannot go
            return self._cache.forget(int(pointer))

    def clear_registrations(self) -> None:
        """Unregister every cached registration now."""
        self._require_open()
        with self._context.pushed():
            if self._debts:
                self._settle()  # a registration still mapped cannot go
            for handle in self._cache.drain():
                self._unregister(handle)

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Release everything, in order: unmap, unregister, destroy bitstream buffers,
        destroy the session, release the CUDA context. Idempotent.

        Every step is attempted even if an earlier one fails; the first failure is then
        raised.
        """
        if self._closed:
            return
        self._release(raise_errors=True)

    def _release(self, *, raise_errors: bool) -> None:
        self._closed = True
        failures: list[BaseException] = []
        lib, enc, context = self._lib, self._encoder, self._context

        def attempt(status: int, function: str, *, session_alive: bool = True) -> None:
            if status:
                detail = lib.last_error(enc) if session_alive else None
                failures.append(error_for(function, status, detail))

        if enc is not None:
            try:
                with context.pushed():
                    try:
                        self._settle()
                    except NvencError as exc:
                        failures.append(exc)
                    self._debts = []
                    if self._eos_due:  # the header: flush before freeing resources
                        attempt(self._send_eos(), "nvEncEncodePicture")
                    for handle in self._inputs.drain():
                        attempt(lib.nvEncUnregisterResource(enc, handle), "nvEncUnregisterResource")
                    for bitstream in self._bitstreams:
                        attempt(lib.nvEncDestroyBitstreamBuffer(enc, bitstream), "nvEncDestroyBitstreamBuffer")
                    self._bitstreams = []
                    self._encoder = None
                    # the handle is gone whatever this returns: never ask it for an error string
                    attempt(lib.nvEncDestroyEncoder(enc), "nvEncDestroyEncoder", session_alive=False)
            except Exception as exc:  # keep releasing: the context must still go
                failures.append(exc)
        try:
            self._inputs.free_staging()
        except Exception as exc:
            failures.append(exc)
        if self._owns_context:
            try:
                context.close()
            except Exception as exc:
                failures.append(exc)
        if failures:
            for extra in failures[1:]:
                logger.warning("nvencffi: while closing the encoder, also: %s", extra)
            if raise_errors:
                raise failures[0]
            logger.warning("nvencffi: while releasing a failed encoder: %s", failures[0])

    def __enter__(self) -> NvencEncoder:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except Exception as close_error:  # do not mask the exception already in flight
            logger.warning("nvencffi: closing the encoder after an error failed too: %s", close_error)

    def __del__(self) -> None:
        if getattr(self, "_closed", True):
            return
        warnings.warn(f"unclosed {self!r}; call close() or use 'with'", ResourceWarning, stacklevel=2)
        try:
            self._release(raise_errors=False)
        except Exception:  # a finalizer must not raise
            logger.exception("nvencffi: releasing an unclosed encoder failed")

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._frames} frames"
        return f"<NvencEncoder h264 {self._width}x{self._height} {self._rate_control} {state}>"
