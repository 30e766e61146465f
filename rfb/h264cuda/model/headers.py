"""Parameter sets, access unit delimiters and slice headers (7.3.2, 7.3.3).

The stream is Constrained Baseline (profile_idc 66, constraint_set0 and set1): CAVLC,
one reference frame, no B pictures, no FMO/ASO. The VUI says what every rfb H.264 route
says (BT.709, limited range; ``max_num_reorder_frames = 0`` so that a browser outputs
each picture as soon as it is decoded). Picture order comes from frame_num
(pic_order_cnt_type 2), which is all a stream without B pictures needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from rfb.colorspace import COLOUR_PRIMARIES_BT709, MATRIX_BT709, TRANSFER_BT709
from rfb.encoders.h264 import NAL_AUD, NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS
from rfb.h264cuda.model.bitwriter import Bits, nal_unit

PROFILE_BASELINE = 66
CONSTRAINT_SET0_SET1 = 0xC0  # constraint_set0_flag, constraint_set1_flag: Constrained Baseline
LOG2_MAX_FRAME_NUM = 4  # frame_num wraps at 16: legal with one reference and no gaps, and 12 bits less per slice
PIC_INIT_QP = 26

# (level_idc, MaxFS in macroblocks, MaxMBPS, MaxBR in 1000 bit/s) of Table A-1.
_LEVELS = (
    (10, 99, 1485, 64),
    (11, 396, 3000, 192),
    (12, 396, 6000, 384),
    (13, 396, 11880, 768),
    (20, 396, 11880, 2000),
    (21, 792, 19800, 4000),
    (22, 1620, 20250, 4000),
    (30, 1620, 40500, 10000),
    (31, 3600, 108000, 14000),
    (32, 5120, 216000, 20000),
    (40, 8192, 245760, 20000),
    (42, 8704, 522240, 50000),
    (50, 22080, 589824, 135000),
    (51, 36864, 983040, 240000),
    (52, 36864, 2073600, 240000),
)

# slice_type values meaning "every slice of this picture has this type" (Table 7-6).
SLICE_P = 5
SLICE_I = 7


def level_idc(mb_width: int, mb_height: int, fps: int, bitrate: int) -> int:
    """The lowest level whose frame size, macroblock rate and bit rate (Table A-1) fit."""
    frame = mb_width * mb_height
    for level, max_fs, max_mbps, max_br in _LEVELS:
        # A.3.1 (f): neither side may exceed sqrt(8 MaxFS) macroblocks.
        fits_size = frame <= max_fs and max(mb_width, mb_height) ** 2 <= 8 * max_fs
        if fits_size and frame * fps <= max_mbps and bitrate <= 1200 * max_br:
            return level
    raise ValueError(
        f"expected a size and rate within level 5.2, got {mb_width}x{mb_height} MBs at {fps} fps, {bitrate} bit/s"
    )


@dataclass(frozen=True, slots=True)
class StreamShape:
    """What the sequence and picture parameter sets say: sizes, cropping, level."""

    width: int
    height: int
    fps: int
    bitrate: int

    @property
    def mb_width(self) -> int:
        return (self.width + 15) // 16

    @property
    def mb_height(self) -> int:
        return (self.height + 15) // 16

    @property
    def level(self) -> int:
        return level_idc(self.mb_width, self.mb_height, self.fps, self.bitrate)


def sps(shape: StreamShape) -> bytes:
    """seq_parameter_set_rbsp (7.3.2.1.1) with a VUI (E.1.1)."""
    b = Bits().u(8, PROFILE_BASELINE).u(8, CONSTRAINT_SET0_SET1).u(8, shape.level)
    b.ue(0)  # seq_parameter_set_id
    b.ue(LOG2_MAX_FRAME_NUM - 4)
    b.ue(2)  # pic_order_cnt_type: order from frame_num
    b.ue(1)  # max_num_ref_frames
    b.flag(False)  # gaps_in_frame_num_value_allowed_flag
    b.ue(shape.mb_width - 1).ue(shape.mb_height - 1)
    b.flag(True)  # frame_mbs_only_flag
    b.flag(True)  # direct_8x8_inference_flag
    crop_right = (16 * shape.mb_width - shape.width) // 2  # in chroma samples (4:2:0)
    crop_bottom = (16 * shape.mb_height - shape.height) // 2
    b.flag(bool(crop_right or crop_bottom))
    if crop_right or crop_bottom:
        b.ue(0).ue(crop_right).ue(0).ue(crop_bottom)
    b.flag(True)  # vui_parameters_present_flag
    b.flag(False)  # aspect_ratio_info_present_flag
    b.flag(False)  # overscan_info_present_flag
    b.flag(True).u(3, 5).flag(False)  # video_signal_type: format unspecified, limited range
    b.flag(True).u(8, COLOUR_PRIMARIES_BT709).u(8, TRANSFER_BT709).u(8, MATRIX_BT709)
    b.flag(False)  # chroma_loc_info_present_flag
    b.flag(False)  # timing_info_present_flag
    b.flag(False).flag(False)  # nal_hrd, vcl_hrd
    b.flag(False)  # pic_struct_present_flag
    b.flag(True)  # bitstream_restriction_flag
    b.flag(True)  # motion_vectors_over_pic_boundaries_flag
    b.ue(0).ue(0)  # max_bytes_per_pic_denom, max_bits_per_mb_denom: no limit
    b.ue(16).ue(16)  # log2_max_mv_length horizontal, vertical
    b.ue(0)  # max_num_reorder_frames
    b.ue(1)  # max_dec_frame_buffering
    return nal_unit(3, NAL_SPS, b.trailing())


def pps() -> bytes:
    """pic_parameter_set_rbsp (7.3.2.2): CAVLC, one slice group, deblocking controlled per slice."""
    b = Bits().ue(0).ue(0)  # pic_parameter_set_id, seq_parameter_set_id
    b.flag(False)  # entropy_coding_mode_flag: CAVLC
    b.flag(False)  # bottom_field_pic_order_in_frame_present_flag
    b.ue(0)  # num_slice_groups_minus1
    b.ue(0).ue(0)  # num_ref_idx_l0/l1_default_active_minus1
    b.flag(False).u(2, 0)  # weighted_pred_flag, weighted_bipred_idc
    b.se(PIC_INIT_QP - 26).se(0).se(0)  # pic_init_qp, pic_init_qs, chroma_qp_index_offset
    b.flag(True)  # deblocking_filter_control_present_flag
    b.flag(False)  # constrained_intra_pred_flag
    b.flag(False)  # redundant_pic_cnt_present_flag
    return nal_unit(3, NAL_PPS, b.trailing())


def aud(idr: bool) -> bytes:
    """access_unit_delimiter_rbsp (7.3.2.4): primary_pic_type 0 (I) or 1 (I, P)."""
    return nal_unit(0, NAL_AUD, Bits().u(3, 0 if idr else 1).trailing())


def slice_header(first_mb: int, idr: bool, frame_num: int, idr_pic_id: int, qp: int) -> Bits:
    """slice_header() (7.3.3) of an I slice in an IDR picture or a P slice, deblocking off."""
    b = Bits().ue(first_mb).ue(SLICE_I if idr else SLICE_P).ue(0)  # pic_parameter_set_id
    b.u(LOG2_MAX_FRAME_NUM, frame_num % (1 << LOG2_MAX_FRAME_NUM))
    if idr:
        b.ue(idr_pic_id)
    else:
        b.flag(False)  # num_ref_idx_active_override_flag
        b.flag(False)  # ref_pic_list_modification_flag_l0
    if idr:
        b.flag(False).flag(False)  # no_output_of_prior_pics_flag, long_term_reference_flag
    else:
        b.flag(False)  # adaptive_ref_pic_marking_mode_flag: sliding window
    b.se(qp - PIC_INIT_QP)  # slice_qp_delta
    b.ue(1)  # disable_deblocking_filter_idc: the reconstruction is the decoded picture
    return b


def slice_nal(idr: bool, rbsp: Bits) -> bytes:
    """A coded slice NAL unit (IDR or not), a reference picture either way."""
    return nal_unit(3, NAL_IDR if idr else NAL_SLICE, rbsp)
