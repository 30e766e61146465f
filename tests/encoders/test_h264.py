"""Tests for rfb.encoders.h264: Annex B framing, emulation prevention, Exp-Golomb, SPS.

Real bitstreams come from libx264 through PyAV (several sizes, profiles, chroma
formats); hand-made SPSs cover what x264 does not write (cropping in odd units,
field coding, picture order type 1, HRD, emulation prevention inside the SPS).
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from av.video.frame import VideoFrame
from hypothesis import given
from hypothesis import strategies as st

from rfb.encoders import h264
from rfb.encoders.h264 import BitReader, BitstreamError


class BitWriter:
    """The writing counterpart of BitReader, to build SPSs by hand."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> BitWriter:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]
        return self

    def flag(self, value: bool) -> BitWriter:
        return self.u(1, int(value))

    def ue(self, value: int) -> BitWriter:
        code = value + 1
        n = code.bit_length()
        return self.u(n - 1, 0).u(n, code)

    def se(self, value: int) -> BitWriter:
        return self.ue(2 * value - 1 if value > 0 else -2 * value)

    def rbsp(self) -> bytes:
        bits = self.bits + [1]  # rbsp_stop_one_bit, then zero alignment
        bits += [0] * (-len(bits) % 8)
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))


def make_sps(
    *,
    profile_idc: int = 66,
    constraint_flags: int = 0xC0,
    level_idc: int = 31,
    chroma_format_idc: int = 1,
    scaling_lists: bool = False,
    poc_type: int = 0,
    width_mbs: int = 80,
    height_map_units: int = 45,
    frame_mbs_only: bool = True,
    crop: tuple[int, int, int, int] | None = None,
    vui: bool = True,
    hrd: bool = False,
    restriction: tuple[int, int] | None = (0, 1),
    colour: tuple[int, int, int] | None = (1, 1, 1),
    extended_sar: bool = False,
) -> bytes:
    """An SPS NAL unit (header included, emulation prevention applied)."""
    w = BitWriter().u(8, profile_idc).u(8, constraint_flags).u(8, level_idc).ue(0)
    if profile_idc in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        w.ue(chroma_format_idc)
        if chroma_format_idc == 3:
            w.flag(False)  # separate_colour_plane_flag
        w.ue(0).ue(0).flag(False)  # bit depths 8, no transform bypass
        w.flag(scaling_lists)
        if scaling_lists:
            count = 12 if chroma_format_idc == 3 else 8
            for i in range(count):
                present = i in (0, 6)
                w.flag(present)
                if present:
                    # scales 11, 10, 15, then a delta to next_scale 0: "the rest repeat 15"
                    w.se(3).se(-1).se(5).se(-15)
    w.ue(0)  # log2_max_frame_num_minus4
    w.ue(poc_type)
    if poc_type == 0:
        w.ue(2)
    elif poc_type == 1:
        w.flag(False).se(-3).se(2).ue(3).se(1).se(-2).se(4)
    w.ue(4)  # max_num_ref_frames
    w.flag(False)  # gaps
    w.ue(width_mbs - 1).ue(height_map_units - 1)
    w.flag(frame_mbs_only)
    if not frame_mbs_only:
        w.flag(True)  # mb_adaptive_frame_field_flag
    w.flag(True)  # direct_8x8_inference
    w.flag(crop is not None)
    if crop is not None:
        for v in crop:
            w.ue(v)
    w.flag(vui)
    if vui:
        w.flag(True)  # aspect_ratio_info_present
        if extended_sar:
            w.u(8, 255).u(16, 4).u(16, 3)
        else:
            w.u(8, 1)
        w.flag(False)  # overscan
        w.flag(True).u(3, 5).flag(False)  # video_signal_type, video_format, full_range=0
        w.flag(colour is not None)
        if colour is not None:
            w.u(8, colour[0]).u(8, colour[1]).u(8, colour[2])
        w.flag(False)  # chroma_loc
        w.flag(True).u(32, 1).u(32, 60).flag(True)  # timing info
        w.flag(hrd)
        if hrd:
            w.ue(1).u(4, 2).u(4, 3)
            for _ in range(2):
                w.ue(1000).ue(2000).flag(True)
            w.u(5, 23).u(5, 23).u(5, 23).u(5, 24)
        w.flag(False)  # vcl_hrd
        if hrd:
            w.flag(False)  # low_delay_hrd_flag
        w.flag(False)  # pic_struct_present
        w.flag(restriction is not None)
        if restriction is not None:
            w.flag(True).ue(2).ue(1).ue(16).ue(16).ue(restriction[0]).ue(restriction[1])
    return b"\x67" + h264.add_emulation_prevention(w.rbsp())


def encode_x264(
    width: int,
    height: int,
    *,
    options: dict[str, str],
    pix_fmt: str = "yuv420p",
    frames: int = 3,
    force_idr_at: tuple[int, ...] = (),
) -> list[bytes]:
    """Access units from libx264 (PyAV) for a moving gradient."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base = Fraction(1, 30)
    ctx.framerate = Fraction(30)
    ctx.options = options
    ctx.open()
    out: list[bytes] = []
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(frames):
        rgb = np.stack([(xx + 5 * i) % 256, (yy * 2) % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)
        frame = VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
        frame.pts = i
        if i in force_idr_at:
            frame.pict_type = av.video.frame.PictureType.I
        out += [bytes(p) for p in ctx.encode(frame)]
    out += [bytes(p) for p in ctx.encode(None)]
    return out


LOW_DELAY = {"tune": "zerolatency", "x264-params": "bframes=0:keyint=1000:scenecut=0"}


# -- framing ---------------------------------------------------------------------


def test_split_handles_3_and_4_byte_start_codes_and_trailing_zeros() -> None:
    stream = b"\x00\x00\x00\x01\x67\xaa" + b"\x00\x00\x01\x68\xbb\x00\x00" + b"\x00\x00\x01\x65\xcc\xdd"
    assert h264.split_nal_units(stream) == [b"\x67\xaa", b"\x68\xbb", b"\x65\xcc\xdd"]
    assert h264.nal_types(stream) == [7, 8, 5]
    assert h264.is_idr(stream)
    assert h264.find_nal(stream, h264.NAL_PPS) == b"\x68\xbb"
    assert h264.find_nal(stream, h264.NAL_SEI) is None


def test_split_skips_leading_garbage_and_empty_units() -> None:
    stream = b"\xff\xfe\x00\x00\x01\x00\x00\x01\x41\x9a"
    assert h264.split_nal_units(stream) == [b"\x41\x9a"]
    assert not h264.is_idr(stream)
    assert h264.split_nal_units(b"no start code here") == []


def test_nal_type_of_empty_unit_is_an_error() -> None:
    with pytest.raises(BitstreamError, match="at least one byte"):
        h264.nal_type(b"")


@given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=6), st.lists(st.booleans(), min_size=6))
def test_split_round_trips_any_escaped_payloads(payloads: list[bytes], long_codes: list[bool]) -> None:
    # Real NAL units are escaped and end in a non-zero byte; build such units and frame them.
    # There are always at least as many start-code choices (6+) as units (1..6): zip takes the first ones.
    nals = [b"\x41" + h264.add_emulation_prevention(p) + b"\x80" for p in payloads]
    stream = b"".join(
        (b"\x00\x00\x00\x01" if long else b"\x00\x00\x01") + n for n, long in zip(nals, long_codes, strict=False)
    )
    assert h264.split_nal_units(stream) == nals


# -- emulation prevention --------------------------------------------------------


def test_emulation_prevention_removal() -> None:
    assert h264.remove_emulation_prevention(b"\x00\x00\x03\x01") == b"\x00\x00\x01"
    assert h264.remove_emulation_prevention(b"\x00\x00\x03\x00\x00\x03") == b"\x00\x00\x00\x00"
    # a 03 that does not follow two zeros is data
    assert h264.remove_emulation_prevention(b"\x00\x03\x00\x00\x03\x03") == b"\x00\x03\x00\x00\x03"
    assert h264.remove_emulation_prevention(b"\x12\x34") == b"\x12\x34"


@given(st.binary(max_size=200))
def test_emulation_prevention_round_trip(rbsp: bytes) -> None:
    escaped = h264.add_emulation_prevention(rbsp)
    assert b"\x00\x00\x00" not in escaped
    assert b"\x00\x00\x01" not in escaped
    assert b"\x00\x00\x02" not in escaped
    assert h264.remove_emulation_prevention(escaped) == rbsp


# -- Exp-Golomb ------------------------------------------------------------------


def test_exp_golomb_known_codes() -> None:
    # 1 | 010 | 011 | 00100 | 00101 -> ue 0, 1, 2, 3, 4 ; then se of codes 1..4 -> 1, -1, 2, -2
    r = BitReader(bytes([0b10100110, 0b01000010, 0b10000000]))
    assert [r.ue() for _ in range(5)] == [0, 1, 2, 3, 4]
    r = BitReader(bytes([0b01001100, 0b10000101, 0b00000000]))
    assert [r.se() for _ in range(4)] == [1, -1, 2, -2]


@given(st.lists(st.tuples(st.integers(0, 2**20), st.integers(-(2**15), 2**15), st.integers(0, 255))))
def test_exp_golomb_round_trip(values: list[tuple[int, int, int]]) -> None:
    w = BitWriter()
    for ue, se, byte in values:
        w.ue(ue).se(se).u(8, byte)
    r = BitReader(w.rbsp())
    assert [(r.ue(), r.se(), r.u(8)) for _ in values] == values


def test_reader_reports_truncation() -> None:
    r = BitReader(b"\x00")
    with pytest.raises(BitstreamError, match="truncated"):
        r.ue()
    r = BitReader(b"\xff")
    assert r.u(3) == 7 and r.position == 3 and r.remaining == 5
    with pytest.raises(BitstreamError, match="expected 8 more bits"):
        r.u(8)


# -- SPS: real bitstreams --------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "preset", "profile", "expected_profile", "expected_codec_prefix"),
    [
        (64, 64, "ultrafast", None, 66, "avc1.42C0"),  # constrained baseline
        (320, 240, "superfast", "main", 77, "avc1.4D40"),
        (1280, 720, "superfast", "high", 100, "avc1.6400"),
        (1918, 1080, "ultrafast", None, 66, "avc1.42C0"),  # cropped right and bottom
        (642, 362, "veryfast", "high", 100, "avc1.6400"),
    ],
)
def test_sps_of_x264_streams(
    width: int, height: int, preset: str, profile: str | None, expected_profile: int, expected_codec_prefix: str
) -> None:
    options = {"preset": preset, **LOW_DELAY}
    if profile:
        options["profile"] = profile
    units = encode_x264(width, height, options=options)
    sps = h264.sps_of(units[0])
    assert (sps.width, sps.height) == (width, height)
    assert sps.coded_width % 16 == 0 and sps.coded_height % 16 == 0
    assert sps.coded_width - sps.crop[0] - sps.crop[1] == width
    assert sps.profile_idc == expected_profile
    assert sps.chroma_format_idc == 1 and sps.bit_depth_luma == 8
    assert sps.vui_present and sps.bitstream_restriction
    assert sps.max_num_reorder_frames == 0  # no B-frames: x264 writes 0
    code = h264.codec_string(units[0])
    assert code.startswith(expected_codec_prefix)
    assert code == f"avc1.{sps.profile_idc:02X}{sps.constraint_flags:02X}{sps.level_idc:02X}"
    assert code == code.upper().replace("AVC1", "avc1")
    # the same answer from the bare SPS NAL unit and from the parsed SPS
    assert h264.codec_string(h264.find_nal(units[0], h264.NAL_SPS) or b"") == code
    assert h264.codec_string(sps) == code


def test_sps_of_x264_stream_with_custom_quant_matrices() -> None:
    # cqm=jvt: x264 sends the matrices in the PPS (its SPS says "no matrices"); the SPS
    # parse must be unaffected. SPS-level scaling lists are covered by a hand-made SPS.
    units = encode_x264(
        352, 288, options={"preset": "faster", "profile": "high", **LOW_DELAY, "x264-params": "bframes=0:cqm=jvt"}
    )
    sps = h264.sps_of(units[0])
    assert sps.profile_idc == 100 and not sps.scaling_matrix_present
    assert (sps.width, sps.height) == (352, 288)
    assert sps.max_num_reorder_frames == 0


def test_sps_high444_from_x264() -> None:
    units = encode_x264(96, 64, options={"preset": "ultrafast", **LOW_DELAY}, pix_fmt="yuv444p")
    sps = h264.sps_of(units[0])
    assert sps.profile_idc == 244 and sps.chroma_format_idc == 3
    assert (sps.width, sps.height) == (96, 64)


def test_sps_with_bframes_reports_reordering() -> None:
    units = encode_x264(128, 96, options={"preset": "medium", "x264-params": "bframes=2:b-pyramid=none"}, frames=6)
    sps = h264.sps_of(units[0])
    assert sps.bitstream_restriction and sps.max_num_reorder_frames is not None
    assert sps.max_num_reorder_frames >= 1


def test_idr_detection_on_real_stream() -> None:
    units = encode_x264(160, 120, options={"preset": "ultrafast", **LOW_DELAY}, frames=6, force_idr_at=(4,))
    assert [h264.is_idr(u) for u in units] == [True, False, False, False, True, False]
    for unit in units:
        types = h264.nal_types(unit)
        assert (h264.NAL_SPS in types) == h264.is_idr(unit)  # x264 repeats headers on IDRs


def test_payload_stream_labels_units_from_the_bitstream() -> None:
    baseline = encode_x264(160, 120, options={"preset": "ultrafast", **LOW_DELAY}, frames=2)
    high = encode_x264(160, 120, options={"preset": "medium", "profile": "high", **LOW_DELAY}, frames=1)
    codecs = h264.codec_string(baseline[0]), h264.codec_string(high[0])
    assert codecs[0] != codecs[1]
    stream = h264.PayloadStream(160, 120)
    before_any_idr = stream.payload(baseline[1])
    assert not before_any_idr.keyframe and before_any_idr.codec is None
    first, second, switched = stream.payloads([bytearray(baseline[0]), baseline[1], memoryview(high[0])])
    assert (first.keyframe, second.keyframe, switched.keyframe) == (True, False, True)
    assert (first.codec, second.codec, switched.codec) == (codecs[0], codecs[0], codecs[1])  # re-read at each IDR
    assert stream.codec == codecs[1]
    assert first.data == baseline[0] and type(first.data) is bytes
    assert (first.width, first.height, first.transport, first.mime) == (160, 120, "webcodecs", None)


# -- SPS: hand-made edge cases ---------------------------------------------------


def test_hand_made_sps_with_cropping_and_colour() -> None:
    sps = h264.parse_sps(make_sps(width_mbs=120, height_map_units=68, crop=(0, 3, 0, 4)))
    # 4:2:0 progressive: crop units are 2 luma pixels both ways
    assert (sps.coded_width, sps.coded_height) == (1920, 1088)
    assert sps.crop == (0, 6, 0, 8)
    assert (sps.width, sps.height) == (1914, 1080)
    assert (sps.colour_primaries, sps.transfer_characteristics, sps.matrix_coefficients) == (1, 1, 1)
    assert sps.video_full_range is False
    assert (sps.max_num_reorder_frames, sps.max_dec_frame_buffering) == (0, 1)
    assert sps.codec_string == "avc1.42C01F"


def test_hand_made_sps_interlaced_poc1_hrd_extended_sar() -> None:
    nal = make_sps(
        profile_idc=77,
        constraint_flags=0x40,
        level_idc=40,
        poc_type=1,
        width_mbs=45,
        height_map_units=18,
        frame_mbs_only=False,
        crop=(1, 1, 1, 1),
        hrd=True,
        extended_sar=True,
        restriction=(2, 4),
    )
    sps = h264.parse_sps(nal)
    assert not sps.frame_mbs_only
    assert (sps.coded_width, sps.coded_height) == (720, 576)  # map units are field pairs
    assert sps.crop == (2, 2, 4, 4)  # vertical crop unit doubles for field coding
    assert (sps.width, sps.height) == (716, 568)
    assert sps.bitstream_restriction and (sps.max_num_reorder_frames, sps.max_dec_frame_buffering) == (2, 4)
    assert sps.codec_string == "avc1.4D4028"


def test_hand_made_high_sps_with_scaling_lists_444_crop_units() -> None:
    sps = h264.parse_sps(
        make_sps(profile_idc=244, constraint_flags=0, chroma_format_idc=3, scaling_lists=True, crop=(1, 2, 3, 4))
    )
    assert sps.scaling_matrix_present and sps.chroma_format_idc == 3
    assert sps.crop == (1, 2, 3, 4)  # 4:4:4: crop units are single pixels
    assert sps.max_num_reorder_frames == 0


def test_hand_made_sps_without_vui_or_restriction() -> None:
    sps = h264.parse_sps(make_sps(vui=False))
    assert not sps.vui_present and not sps.bitstream_restriction
    assert sps.max_num_reorder_frames is None and sps.colour_primaries is None
    sps = h264.parse_sps(make_sps(restriction=None, colour=None))
    assert sps.vui_present and not sps.bitstream_restriction and sps.colour_primaries is None


def test_sps_with_emulation_prevention_bytes() -> None:
    # level 0 and width/height codes that put runs of zero bytes into the RBSP.
    nal = make_sps(profile_idc=66, constraint_flags=0, level_idc=0, width_mbs=2**16, height_map_units=1, crop=None)
    assert b"\x00\x00\x03" in nal  # the escape is really there
    sps = h264.parse_sps(nal)
    assert sps.coded_width == 2**16 * 16 and sps.level_idc == 0
    assert sps.codec_string == "avc1.420000"


def test_codec_string_of_annex_b_access_unit_needs_an_sps() -> None:
    with pytest.raises(BitstreamError, match=r"NAL types \[1\]"):
        h264.codec_string(b"\x00\x00\x00\x01\x41\x9a\x00")


def test_parse_sps_rejects_other_nal_types_and_truncation() -> None:
    with pytest.raises(BitstreamError, match="expected an SPS NAL unit"):
        h264.parse_sps(b"\x68\xce\x38\x80")
    with pytest.raises(BitstreamError, match="truncated"):
        h264.parse_sps(make_sps()[:6])
