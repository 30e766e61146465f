"""H.264 Annex B bitstream utilities shared by every H.264 route.

The routes (libx264 and FFmpeg's h264_nvenc through PyAV, the direct NVENC binding)
all hand back Annex B access units; the server needs to know, from the bytes alone,
whether a unit is an IDR (a new viewer may start there) and which WebCodecs codec
string describes it. Both answers are read from the bitstream the encoder actually
produced rather than from what it was asked to do, so that a preset or driver that
picks another profile or level cannot make the browser configure the wrong decoder.

Only what those answers need is parsed: NAL unit framing, the emulation-prevention
layer, Exp-Golomb codes, and the sequence parameter set up to the VUI fields that
tell a decoder whether it may output frames immediately
(``max_num_reorder_frames``). :class:`PayloadStream` turns a route's access units into
the payloads the server sends, so that every route labels them the same way. Nothing
here imports PyAV or CUDA.

References are to ITU-T H.264 (08/2021): 7.3.2.1.1 (SPS), E.1.1 (VUI), 7.4.1
(emulation prevention), 9.1 (Exp-Golomb).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypedDict

from rfb.encoders.base import EncodedPayload

# nal_unit_type values (Table 7-1) that the routes and the server care about.
NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9

# profile_idc values whose SPS carries chroma format, bit depths and scaling lists.
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})

# Default 4x4 / 8x8 scaling list sizes, in order of seq_scaling_list_present_flag[i].
_SCALING_LIST_SIZES_420 = (16,) * 6 + (64,) * 2
_SCALING_LIST_SIZES_444 = (16,) * 6 + (64,) * 6

# Extended_SAR (Table E-1): the sample aspect ratio follows as two 16-bit fields.
_EXTENDED_SAR = 255


class BitstreamError(ValueError):
    """The bytes are not the H.264 structure that was expected (truncated, wrong NAL type...)."""


def _nal_spans(buf: bytes) -> Iterator[tuple[int, int]]:
    # (start, stop) of each NAL unit in an Annex B buffer, start codes excluded.
    pos = buf.find(b"\x00\x00\x01")
    while pos >= 0:
        start = pos + 3
        nxt = buf.find(b"\x00\x00\x01", start)
        stop = len(buf) if nxt < 0 else nxt
        # Zeros right before the next start code belong to it (the first byte of a
        # 4-byte code, trailing_zero_8bits), never to this NAL unit: a NAL unit ends
        # in a non-zero byte (7.4.1: a final 0x03 follows any trailing cabac_zero_word).
        while stop > start and buf[stop - 1] == 0:
            stop -= 1
        if stop > start:
            yield start, stop
        pos = nxt


def iter_nal_units(data: bytes | bytearray | memoryview) -> Iterator[bytes]:
    """Yield each NAL unit of an Annex B byte stream, without its start code.

    Start codes are ``00 00 01`` or ``00 00 00 01``; zero bytes before a start code
    (``trailing_zero_8bits``, or the leading zero of a 4-byte code) are not part of
    the NAL unit. Bytes before the first start code are not a NAL unit and are
    skipped; a stream with no start code at all yields nothing.
    """
    buf = bytes(data)
    for start, stop in _nal_spans(buf):
        yield buf[start:stop]


def split_nal_units(data: bytes | bytearray | memoryview) -> list[bytes]:
    """All NAL units of an Annex B access unit (or stream), start codes removed."""
    return list(iter_nal_units(data))


def nal_type(nal: bytes | bytearray | memoryview) -> int:
    """``nal_unit_type`` of one NAL unit (its first byte without start code)."""
    if len(nal) == 0:
        raise BitstreamError("expected a NAL unit of at least one byte, got an empty one")
    return nal[0] & 0x1F


def nal_types(access_unit: bytes | bytearray | memoryview) -> list[int]:
    """The ``nal_unit_type`` of each NAL unit in an Annex B access unit, in order."""
    buf = bytes(access_unit)
    # Reads only the header bytes: this runs once per frame on every route.
    return [buf[start] & 0x1F for start, _ in _nal_spans(buf)]


def is_idr(access_unit: bytes | bytearray | memoryview) -> bool:
    """True when the access unit contains an IDR slice (a decoder may start here)."""
    return NAL_IDR in nal_types(access_unit)


def find_nal(access_unit: bytes | bytearray | memoryview, kind: int) -> bytes | None:
    """The first NAL unit of type ``kind`` in an access unit, or None."""
    for nal in iter_nal_units(access_unit):
        if nal_type(nal) == kind:
            return nal
    return None


def remove_emulation_prevention(nal: bytes | bytearray | memoryview) -> bytes:
    """The RBSP of a NAL unit: every ``00 00 03`` becomes ``00 00`` (7.4.1).

    The encoder inserts the ``03`` so that no ``00 00 0x`` (x <= 3) pattern, which
    would look like a start code, appears inside a NAL unit; fields must be read
    from the bytes with those insertions removed.
    """
    buf = bytes(nal)
    if b"\x00\x00\x03" not in buf:
        return buf
    out = bytearray()
    zeros = 0
    for byte in buf:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def add_emulation_prevention(rbsp: bytes | bytearray | memoryview) -> bytes:
    """The inverse of :func:`remove_emulation_prevention`: a NAL payload safe to frame."""
    out = bytearray()
    zeros = 0
    for byte in bytes(rbsp):
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


class BitReader:
    """A big-endian bit reader over an RBSP with the Exp-Golomb codes of 9.1."""

    __slots__ = ("_data", "_pos", "_nbits")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._nbits = len(self._data) * 8

    @property
    def position(self) -> int:
        """Bits consumed so far."""
        return self._pos

    @property
    def remaining(self) -> int:
        """Bits left to read."""
        return self._nbits - self._pos

    def u(self, n: int) -> int:
        """An unsigned ``n``-bit field (``u(n)``)."""
        if n < 0:
            raise ValueError(f"bit count must be >= 0, got {n}")
        if n > self.remaining:
            raise BitstreamError(
                f"expected {n} more bits at bit {self._pos}, got only {self.remaining} (truncated RBSP)"
            )
        value = 0
        for _ in range(n):
            byte = self._data[self._pos >> 3]
            value = (value << 1) | ((byte >> (7 - (self._pos & 7))) & 1)
            self._pos += 1
        return value

    def flag(self) -> bool:
        """A one-bit flag (``u(1)``)."""
        return bool(self.u(1))

    def ue(self) -> int:
        """An unsigned Exp-Golomb value (``ue(v)``)."""
        start = self._pos
        leading_zeros = 0
        while self.u(1) == 0:
            leading_zeros += 1
            if leading_zeros > 31:
                raise BitstreamError(f"Exp-Golomb code at bit {start} has more than 31 leading zeros")
        return (1 << leading_zeros) - 1 + self.u(leading_zeros)

    def se(self) -> int:
        """A signed Exp-Golomb value (``se(v)``): 1, -1, 2, -2... for codes 1, 2, 3, 4..."""
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


@dataclass(frozen=True, slots=True)
class SequenceParameterSet:
    """The fields of an SPS that the routes, the server and the tests need.

    ``width`` and ``height`` are the displayed size (after frame cropping).
    VUI fields are ``None`` when the SPS does not carry them.
    """

    profile_idc: int
    constraint_flags: int  # the whole byte: constraint_set0_flag is its top bit
    level_idc: int
    seq_parameter_set_id: int
    chroma_format_idc: int
    bit_depth_luma: int
    bit_depth_chroma: int
    scaling_matrix_present: bool
    max_num_ref_frames: int
    frame_mbs_only: bool
    coded_width: int
    coded_height: int
    crop: tuple[int, int, int, int]  # left, right, top, bottom in luma pixels
    width: int
    height: int
    vui_present: bool
    video_full_range: bool | None = None
    colour_primaries: int | None = None
    transfer_characteristics: int | None = None
    matrix_coefficients: int | None = None
    bitstream_restriction: bool = False
    max_num_reorder_frames: int | None = None
    max_dec_frame_buffering: int | None = None

    @property
    def codec_string(self) -> str:
        """The WebCodecs / RFC 6381 codec string, e.g. ``avc1.42E01F``."""
        return f"avc1.{self.profile_idc:02X}{self.constraint_flags:02X}{self.level_idc:02X}"


def parse_sps(nal: bytes | bytearray | memoryview) -> SequenceParameterSet:
    """Parse an SPS NAL unit (with its one-byte header, without start code)."""
    if nal_type(nal) != NAL_SPS:
        raise BitstreamError(f"expected an SPS NAL unit (type {NAL_SPS}), got type {nal_type(nal)}")
    r = BitReader(remove_emulation_prevention(bytes(nal)[1:]))
    profile_idc = r.u(8)
    constraint_flags = r.u(8)
    level_idc = r.u(8)
    sps_id = r.ue()
    chroma_format_idc, bit_depth_luma, bit_depth_chroma, scaling = 1, 8, 8, False
    separate_colour_plane = False
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = r.ue()
        if chroma_format_idc > 3:
            raise BitstreamError(f"expected chroma_format_idc 0..3, got {chroma_format_idc}")
        if chroma_format_idc == 3:
            separate_colour_plane = r.flag()
        bit_depth_luma = r.ue() + 8
        bit_depth_chroma = r.ue() + 8
        r.u(1)  # qpprime_y_zero_transform_bypass_flag
        scaling = r.flag()
        if scaling:
            sizes = _SCALING_LIST_SIZES_444 if chroma_format_idc == 3 else _SCALING_LIST_SIZES_420
            for size in sizes:
                if r.flag():
                    _skip_scaling_list(r, size)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        r.u(1)  # delta_pic_order_always_zero_flag
        r.se()  # offset_for_non_ref_pic
        r.se()  # offset_for_top_to_bottom_field
        for _ in range(r.ue()):  # num_ref_frames_in_pic_order_cnt_cycle
            r.se()
    elif poc_type != 2:
        raise BitstreamError(f"expected pic_order_cnt_type 0, 1 or 2, got {poc_type}")
    max_num_ref_frames = r.ue()
    r.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_map_units = r.ue() + 1
    frame_mbs_only = r.flag()
    if not frame_mbs_only:
        r.u(1)  # mb_adaptive_frame_field_flag
    r.u(1)  # direct_8x8_inference_flag
    coded_width = width_mbs * 16
    coded_height = height_map_units * 16 * (1 if frame_mbs_only else 2)
    crop = (0, 0, 0, 0)
    if r.flag():  # frame_cropping_flag
        # Crop offsets are in chroma sample units (7.4.2.1.1, equations 7-19..7-22).
        chroma_array_type = 0 if separate_colour_plane else chroma_format_idc
        if chroma_array_type == 0:
            crop_x, crop_y = 1, 2 - int(frame_mbs_only)
        else:
            sub_w = 1 if chroma_format_idc == 3 else 2
            sub_h = 2 if chroma_format_idc == 1 else 1
            crop_x, crop_y = sub_w, sub_h * (2 - int(frame_mbs_only))
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        crop = (left * crop_x, right * crop_x, top * crop_y, bottom * crop_y)
    width = coded_width - crop[0] - crop[1]
    height = coded_height - crop[2] - crop[3]
    if width <= 0 or height <= 0:
        raise BitstreamError(f"SPS crops {coded_width}x{coded_height} to a non-positive size {width}x{height}")
    vui_present = r.flag()
    vui: _Vui = _parse_vui(r) if vui_present else {}
    return SequenceParameterSet(
        profile_idc=profile_idc,
        constraint_flags=constraint_flags,
        level_idc=level_idc,
        seq_parameter_set_id=sps_id,
        chroma_format_idc=chroma_format_idc,
        bit_depth_luma=bit_depth_luma,
        bit_depth_chroma=bit_depth_chroma,
        scaling_matrix_present=scaling,
        max_num_ref_frames=max_num_ref_frames,
        frame_mbs_only=frame_mbs_only,
        coded_width=coded_width,
        coded_height=coded_height,
        crop=crop,
        width=width,
        height=height,
        vui_present=vui_present,
        **vui,
    )


def _skip_scaling_list(r: BitReader, size: int) -> None:
    # 7.3.2.1.1.1: delta-coded list; a next_scale of 0 means "the rest repeat".
    last, nxt = 8, 8
    for _ in range(size):
        if nxt != 0:
            nxt = (last + r.se() + 256) % 256
        last = nxt if nxt != 0 else last


def _skip_hrd(r: BitReader) -> None:
    # E.1.2 hrd_parameters()
    cpb_cnt = r.ue() + 1
    r.u(4)  # bit_rate_scale
    r.u(4)  # cpb_size_scale
    for _ in range(cpb_cnt):
        r.ue()  # bit_rate_value_minus1
        r.ue()  # cpb_size_value_minus1
        r.u(1)  # cbr_flag
    r.u(5 * 4)  # four 5-bit delay/length fields


class _Vui(TypedDict, total=False):
    """The VUI fields of :class:`SequenceParameterSet` that an SPS carries."""

    video_full_range: bool
    colour_primaries: int
    transfer_characteristics: int
    matrix_coefficients: int
    bitstream_restriction: bool
    max_num_reorder_frames: int
    max_dec_frame_buffering: int


def _parse_vui(r: BitReader) -> _Vui:
    # E.1.1 vui_parameters()
    out: _Vui = {}
    if r.flag():  # aspect_ratio_info_present_flag
        if r.u(8) == _EXTENDED_SAR:
            r.u(16)  # sar_width
            r.u(16)  # sar_height
    if r.flag():  # overscan_info_present_flag
        r.u(1)  # overscan_appropriate_flag
    if r.flag():  # video_signal_type_present_flag
        r.u(3)  # video_format
        out["video_full_range"] = r.flag()
        if r.flag():  # colour_description_present_flag
            out["colour_primaries"] = r.u(8)
            out["transfer_characteristics"] = r.u(8)
            out["matrix_coefficients"] = r.u(8)
    if r.flag():  # chroma_loc_info_present_flag
        r.ue()
        r.ue()
    if r.flag():  # timing_info_present_flag
        r.u(32)  # num_units_in_tick
        r.u(32)  # time_scale
        r.u(1)  # fixed_frame_rate_flag
    nal_hrd = r.flag()
    if nal_hrd:
        _skip_hrd(r)
    vcl_hrd = r.flag()
    if vcl_hrd:
        _skip_hrd(r)
    if nal_hrd or vcl_hrd:
        r.u(1)  # low_delay_hrd_flag
    r.u(1)  # pic_struct_present_flag
    if r.flag():  # bitstream_restriction_flag
        out["bitstream_restriction"] = True
        r.u(1)  # motion_vectors_over_pic_boundaries_flag
        r.ue()  # max_bytes_per_pic_denom
        r.ue()  # max_bits_per_mb_denom
        r.ue()  # log2_max_mv_length_horizontal
        r.ue()  # log2_max_mv_length_vertical
        out["max_num_reorder_frames"] = r.ue()
        out["max_dec_frame_buffering"] = r.ue()
    return out


def sps_of(access_unit_or_sps: bytes | bytearray | memoryview | SequenceParameterSet) -> SequenceParameterSet:
    """The parsed SPS of an access unit (Annex B), of a bare SPS NAL unit, or itself."""
    if isinstance(access_unit_or_sps, SequenceParameterSet):
        return access_unit_or_sps
    data = bytes(access_unit_or_sps)
    if data[:3] == b"\x00\x00\x01" or data[:4] == b"\x00\x00\x00\x01":
        nal = find_nal(data, NAL_SPS)
        if nal is None:
            found = nal_types(data)
            raise BitstreamError(f"expected an access unit with an SPS (NAL type 7), got NAL types {found}")
        return parse_sps(nal)
    return parse_sps(data)


def codec_string(access_unit_or_sps: bytes | bytearray | memoryview | SequenceParameterSet) -> str:
    """The WebCodecs codec string (``avc1.PPCCLL``, uppercase hex) of the SPS actually produced.

    Accepts an Annex B access unit that carries an SPS (an IDR from any route), a
    bare SPS NAL unit, or a parsed :class:`SequenceParameterSet`.
    """
    return sps_of(access_unit_or_sps).codec_string


class PayloadStream:
    """One H.264 stream's access units, as the :class:`EncodedPayload` s the server sends.

    Every H.264 route (libx264 and h264_nvenc through PyAV, NVENC through nvencffi)
    hands its access units here, so that all of them label a payload the same way:
    ``keyframe`` when the unit holds an IDR slice, and ``codec`` re-read from the SPS
    of every IDR (a reconfigured encoder may change profile or level) and kept for the
    units after it. ``codec`` is None until the first IDR.
    """

    __slots__ = ("width", "height", "codec")

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.codec: str | None = None

    def payload(self, access_unit: bytes | bytearray | memoryview | Any) -> EncodedPayload:
        """One access unit (bytes, or anything with the buffer protocol: a PyAV packet)."""
        data = bytes(access_unit)
        keyframe = is_idr(data)
        if keyframe:
            self.codec = codec_string(data)
        return EncodedPayload(
            data=data,
            keyframe=keyframe,
            width=self.width,
            height=self.height,
            transport="webcodecs",
            codec=self.codec,
        )

    def payloads(self, access_units: Iterable[bytes | bytearray | memoryview | Any]) -> list[EncodedPayload]:
        """:meth:`payload` of each unit, in order."""
        return [self.payload(unit) for unit in access_units]
