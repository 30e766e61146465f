"""Parameter sets and slice headers of the golden model, read by rfb's own SPS parser."""

from __future__ import annotations

import pytest

from rfb.encoders import h264
from rfb.encoders.h264 import BitReader, remove_emulation_prevention
from rfb.h264cuda.model import headers
from rfb.h264cuda.model.headers import StreamShape


@pytest.mark.parametrize(
    ("width", "height", "fps", "bitrate", "level"),
    [
        (320, 240, 30, 700_000, 13),
        (320, 240, 30, 2_000_000, 20),
        (1280, 720, 30, 4_000_000, 31),
        (1920, 1080, 30, 8_000_000, 40),
        (1920, 1080, 60, 8_000_000, 42),
        (3840, 2160, 30, 20_000_000, 51),
    ],
)
def test_level_is_the_lowest_that_fits_table_a_1(width: int, height: int, fps: int, bitrate: int, level: int) -> None:
    assert StreamShape(width, height, fps, bitrate).level == level


def test_a_stream_beyond_level_5_2_is_refused() -> None:
    with pytest.raises(ValueError, match="within level 5.2"):
        _ = StreamShape(8192, 4320, 60, 8_000_000).level


@pytest.mark.parametrize(("width", "height"), [(320, 240), (328, 248), (1920, 1080)])
def test_sps_is_constrained_baseline_with_rfb_vui(width: int, height: int) -> None:
    sps = h264.parse_sps(headers.sps(StreamShape(width, height, 30, 4_000_000))[4:])
    assert (sps.profile_idc, sps.constraint_flags) == (66, 0xC0)
    assert sps.codec_string.startswith("avc1.42C0")
    assert (sps.width, sps.height) == (width, height)
    assert (sps.coded_width, sps.coded_height) == (-(-width // 16) * 16, -(-height // 16) * 16)
    assert sps.max_num_ref_frames == 1 and sps.frame_mbs_only
    assert sps.video_full_range is False
    assert (sps.colour_primaries, sps.transfer_characteristics, sps.matrix_coefficients) == (1, 1, 1)
    assert (sps.max_num_reorder_frames, sps.max_dec_frame_buffering) == (0, 1)


def test_pps_is_cavlc_with_deblocking_control() -> None:
    nal = headers.pps()
    assert nal[:5] == b"\x00\x00\x00\x01\x68"
    r = BitReader(remove_emulation_prevention(nal[5:]))
    assert (r.ue(), r.ue(), r.u(1), r.u(1), r.ue()) == (0, 0, 0, 0, 0)  # ids, CAVLC, one slice group
    assert (r.ue(), r.ue(), r.u(1), r.u(2)) == (0, 0, 0, 0)
    assert (r.se(), r.se(), r.se()) == (0, 0, 0)
    assert (r.u(1), r.u(1), r.u(1)) == (1, 0, 0)  # deblocking_filter_control_present_flag


@pytest.mark.parametrize("idr", [True, False])
def test_slice_header_fields(idr: bool) -> None:
    b = headers.slice_header(first_mb=40, idr=idr, frame_num=7, idr_pic_id=3, qp=31)
    r = BitReader(b.trailing().to_bytes())
    assert r.ue() == 40
    assert r.ue() == (7 if idr else 5)
    assert r.ue() == 0
    assert r.u(headers.LOG2_MAX_FRAME_NUM) == 7
    if idr:
        assert r.ue() == 3
        assert (r.u(1), r.u(1)) == (0, 0)
    else:
        assert (r.u(1), r.u(1), r.u(1)) == (0, 0, 0)
    assert r.se() == 31 - 26
    assert r.ue() == 1  # disable_deblocking_filter_idc


def test_access_unit_delimiter() -> None:
    assert headers.aud(True) == b"\x00\x00\x00\x01\x09\x10"
    assert headers.aud(False) == b"\x00\x00\x00\x01\x09\x30"
