/*
 * A minimal, real H.264 writer: SPS, PPS, AUD and one slice per picture.
 *
 * Pixel pictures are made of I_PCM macroblocks (CAVLC; in P slices the intra
 * mb_type 30 = I_PCM is used), so any conforming decoder reproduces the input
 * samples exactly: the stream is a pixel-exact oracle for pointers, pitches and
 * plane offsets. I_PCM macroblocks have QP 0 for deblocking, so the loop filter
 * (whatever disable_deblocking_filter_idc says) never changes a sample.
 *
 * Pictures use pic_order_cnt_type 2 (output order = decoding order, no B
 * pictures) and every picture is a reference picture.
 */
#include <string.h>

#include "emu.h"

enum { NAL_SLICE = 1, NAL_IDR = 5, NAL_SPS = 7, NAL_PPS = 8, NAL_AUD = 9 };

static int is_high_profile(int profile_idc)
{
    switch (profile_idc) {
    case 100: case 110: case 122: case 244: case 44: case 83: case 86:
    case 118: case 128: case 138: case 139: case 134: case 135:
        return 1;
    default:
        return 0;
    }
}

static void write_vui(bitwriter *bw, const h264_seq *s)
{
    bw_u(bw, s->aspect_present, 1);
    if (s->aspect_present) {
        bw_u(bw, 255, 8); /* Extended_SAR */
        bw_u(bw, (uint32_t)s->sar_w, 16);
        bw_u(bw, (uint32_t)s->sar_h, 16);
    }
    bw_u(bw, s->overscan_present, 1);
    if (s->overscan_present)
        bw_u(bw, s->overscan_appropriate, 1);
    bw_u(bw, s->signal_type_present, 1);
    if (s->signal_type_present) {
        bw_u(bw, (uint32_t)s->video_format, 3);
        bw_u(bw, s->full_range, 1);
        bw_u(bw, s->colour_desc_present, 1);
        if (s->colour_desc_present) {
            bw_u(bw, (uint32_t)s->colour_primaries, 8);
            bw_u(bw, (uint32_t)s->transfer, 8);
            bw_u(bw, (uint32_t)s->matrix, 8);
        }
    }
    bw_u(bw, s->chroma_loc_present, 1);
    if (s->chroma_loc_present) {
        bw_ue(bw, (uint32_t)s->chroma_loc_top);
        bw_ue(bw, (uint32_t)s->chroma_loc_bot);
    }
    bw_u(bw, s->timing_present, 1);
    if (s->timing_present) {
        bw_u(bw, s->num_units_in_tick, 32);
        bw_u(bw, s->time_scale, 32);
        bw_u(bw, s->fixed_frame_rate, 1);
    }
    bw_u(bw, 0, 1); /* nal_hrd_parameters_present_flag */
    bw_u(bw, 0, 1); /* vcl_hrd_parameters_present_flag */
    bw_u(bw, 0, 1); /* pic_struct_present_flag */
    bw_u(bw, s->bitstream_restriction, 1);
    if (s->bitstream_restriction) {
        bw_u(bw, 1, 1);  /* motion_vectors_over_pic_boundaries_flag */
        bw_ue(bw, 0);    /* max_bytes_per_pic_denom */
        bw_ue(bw, 0);    /* max_bits_per_mb_denom */
        bw_ue(bw, 16);   /* log2_max_mv_length_horizontal */
        bw_ue(bw, 16);   /* log2_max_mv_length_vertical */
        bw_ue(bw, (uint32_t)s->max_num_reorder_frames);
        bw_ue(bw, (uint32_t)s->max_dec_frame_buffering);
    }
}

size_t h264_write_sps(const h264_seq *s, uint8_t *dst, size_t cap)
{
    uint8_t rbsp[256];
    bitwriter bw;
    bw_init(&bw, rbsp, sizeof rbsp);
    bw_u(&bw, (uint32_t)s->profile_idc, 8);
    bw_u(&bw, (uint32_t)s->constraint_flags, 8);
    bw_u(&bw, (uint32_t)s->level_idc, 8);
    bw_ue(&bw, (uint32_t)s->sps_id);
    if (is_high_profile(s->profile_idc)) {
        bw_ue(&bw, 1);                       /* chroma_format_idc: 4:2:0 */
        bw_ue(&bw, 0);                       /* bit_depth_luma_minus8 */
        bw_ue(&bw, 0);                       /* bit_depth_chroma_minus8 */
        bw_u(&bw, s->transform_bypass, 1);   /* qpprime_y_zero_transform_bypass_flag */
        bw_u(&bw, 0, 1);                     /* seq_scaling_matrix_present_flag */
    }
    bw_ue(&bw, (uint32_t)(s->log2_max_frame_num - 4));
    bw_ue(&bw, 2); /* pic_order_cnt_type */
    bw_ue(&bw, (uint32_t)s->max_num_ref_frames);
    bw_u(&bw, 0, 1); /* gaps_in_frame_num_value_allowed_flag */
    bw_ue(&bw, (uint32_t)(s->mb_w - 1));
    bw_ue(&bw, (uint32_t)(s->mb_h - 1));
    bw_u(&bw, 1, 1); /* frame_mbs_only_flag */
    bw_u(&bw, 1, 1); /* direct_8x8_inference_flag */
    int crop_r = (s->mb_w * 16 - s->width) / 2, crop_b = (s->mb_h * 16 - s->height) / 2;
    int cropping = crop_r || crop_b;
    bw_u(&bw, cropping, 1);
    if (cropping) {
        bw_ue(&bw, 0);
        bw_ue(&bw, (uint32_t)crop_r);
        bw_ue(&bw, 0);
        bw_ue(&bw, (uint32_t)crop_b);
    }
    bw_u(&bw, s->vui_present, 1);
    if (s->vui_present)
        write_vui(&bw, s);
    bw_trailing_bits(&bw);
    if (bw.overflow)
        return 0;
    return nal_write(dst, cap, 3, NAL_SPS, rbsp, bw_size(&bw));
}

size_t h264_write_pps(const h264_seq *s, uint8_t *dst, size_t cap)
{
    uint8_t rbsp[64];
    bitwriter bw;
    bw_init(&bw, rbsp, sizeof rbsp);
    bw_ue(&bw, (uint32_t)s->pps_id);
    bw_ue(&bw, (uint32_t)s->sps_id);
    bw_u(&bw, 0, 1); /* entropy_coding_mode_flag: CAVLC */
    bw_u(&bw, 0, 1); /* bottom_field_pic_order_in_frame_present_flag */
    bw_ue(&bw, 0);   /* num_slice_groups_minus1 */
    bw_ue(&bw, 0);   /* num_ref_idx_l0_default_active_minus1 */
    bw_ue(&bw, 0);   /* num_ref_idx_l1_default_active_minus1 */
    bw_u(&bw, 0, 1); /* weighted_pred_flag */
    bw_u(&bw, 0, 2); /* weighted_bipred_idc */
    bw_se(&bw, 0);   /* pic_init_qp_minus26 */
    bw_se(&bw, 0);   /* pic_init_qs_minus26 */
    bw_se(&bw, 0);   /* chroma_qp_index_offset */
    bw_u(&bw, 1, 1); /* deblocking_filter_control_present_flag */
    bw_u(&bw, 0, 1); /* constrained_intra_pred_flag */
    bw_u(&bw, 0, 1); /* redundant_pic_cnt_present_flag */
    bw_trailing_bits(&bw);
    if (bw.overflow)
        return 0;
    return nal_write(dst, cap, 3, NAL_PPS, rbsp, bw_size(&bw));
}

size_t h264_write_headers(const h264_seq *s, uint8_t *dst, size_t cap)
{
    size_t n = h264_write_sps(s, dst, cap);
    if (!n)
        return 0;
    size_t m = h264_write_pps(s, dst + n, cap - n);
    return m ? n + m : 0;
}

size_t h264_write_aud(int primary_pic_type, uint8_t *dst, size_t cap)
{
    uint8_t rbsp[4];
    bitwriter bw;
    bw_init(&bw, rbsp, sizeof rbsp);
    bw_u(&bw, (uint32_t)primary_pic_type, 3);
    bw_trailing_bits(&bw);
    return nal_write(dst, cap, 0, NAL_AUD, rbsp, bw_size(&bw));
}

size_t h264_slice_rbsp_bound(const h264_seq *s)
{
    /* header <= 64 bytes; per I_PCM MB: mb_skip_run + mb_type + alignment
     * (2 bytes) and 384 sample bytes; trailing bits. */
    return 64 + (size_t)s->mb_w * (size_t)s->mb_h * 386 + 8;
}

static void write_slice_header(bitwriter *bw, const h264_seq *s, const h264_pic *p)
{
    int intra = p->kind != PIC_P;
    bw_ue(bw, 0);                    /* first_mb_in_slice */
    bw_ue(bw, intra ? 7 : 5);        /* slice_type (all slices of the picture alike) */
    bw_ue(bw, (uint32_t)s->pps_id);
    bw_u(bw, p->frame_num, s->log2_max_frame_num);
    if (p->kind == PIC_IDR)
        bw_ue(bw, p->idr_pic_id);
    if (!intra) {
        bw_u(bw, 0, 1);              /* num_ref_idx_active_override_flag */
        bw_u(bw, 0, 1);              /* ref_pic_list_modification_flag_l0 */
    }
    /* dec_ref_pic_marking(): every picture is a reference (nal_ref_idc != 0) */
    if (p->kind == PIC_IDR) {
        bw_u(bw, 0, 1);              /* no_output_of_prior_pics_flag */
        bw_u(bw, 0, 1);              /* long_term_reference_flag */
    } else {
        bw_u(bw, 0, 1);              /* adaptive_ref_pic_marking_mode_flag */
    }
    bw_se(bw, 0);                    /* slice_qp_delta */
    bw_ue(bw, (uint32_t)s->deblocking_idc);
    if (s->deblocking_idc != 1) {
        bw_se(bw, 0);                /* slice_alpha_c0_offset_div2 */
        bw_se(bw, 0);                /* slice_beta_offset_div2 */
    }
}

static size_t finish_slice(bitwriter *bw, const h264_pic *p, uint8_t *dst, size_t cap)
{
    bw_trailing_bits(bw);
    if (bw->overflow)
        return 0;
    int idr = p->kind == PIC_IDR;
    return nal_write(dst, cap, idr ? 3 : 2, idr ? NAL_IDR : NAL_SLICE, bw->buf, bw_size(bw));
}

size_t h264_write_pcm_slice(const h264_seq *s, const h264_pic *p,
                            const uint8_t *y, const uint8_t *u, const uint8_t *v,
                            uint8_t *scratch, size_t scratch_cap, uint8_t *dst, size_t cap)
{
    if (scratch_cap < h264_slice_rbsp_bound(s))
        return 0;
    bitwriter bw;
    bw_init(&bw, scratch, scratch_cap);
    write_slice_header(&bw, s, p);

    int intra = p->kind != PIC_P;
    /* The macroblock prefix once the writer is byte aligned: [mb_skip_run=0]
     * mb_type=I_PCM, then pcm_alignment_zero_bits. */
    uint8_t prefix[4];
    bitwriter pw;
    bw_init(&pw, prefix, sizeof prefix);
    if (!intra)
        bw_ue(&pw, 0);
    bw_ue(&pw, intra ? 25 : 30);
    bw_align_zero(&pw);
    size_t prefix_len = bw_size(&pw);

    const size_t ys = (size_t)s->mb_w * 16, cs = (size_t)s->mb_w * 8;
    for (int my = 0; my < s->mb_h; my++) {
        for (int mx = 0; mx < s->mb_w; mx++) {
            if (bw_is_aligned(&bw)) {
                bw_bytes(&bw, prefix, prefix_len);
            } else { /* first macroblock, right after the slice header */
                if (!intra)
                    bw_ue(&bw, 0);
                bw_ue(&bw, intra ? 25 : 30);
                bw_align_zero(&bw);
            }
            /* capacity was checked against the bound above */
            uint8_t *o = bw.buf + bw.pos;
            const uint8_t *py = y + (size_t)my * 16 * ys + (size_t)mx * 16;
            for (int r = 0; r < 16; r++, o += 16)
                memcpy(o, py + (size_t)r * ys, 16);
            const uint8_t *pu = u + (size_t)my * 8 * cs + (size_t)mx * 8;
            for (int r = 0; r < 8; r++, o += 8)
                memcpy(o, pu + (size_t)r * cs, 8);
            const uint8_t *pv = v + (size_t)my * 8 * cs + (size_t)mx * 8;
            for (int r = 0; r < 8; r++, o += 8)
                memcpy(o, pv + (size_t)r * cs, 8);
            bw.pos += 384;
        }
    }
    return finish_slice(&bw, p, dst, cap);
}

size_t h264_write_flat_slice(const h264_seq *s, const h264_pic *p,
                             uint8_t *scratch, size_t scratch_cap, uint8_t *dst, size_t cap)
{
    bitwriter bw;
    bw_init(&bw, scratch, scratch_cap);
    write_slice_header(&bw, s, p);
    uint32_t mbs = (uint32_t)s->mb_w * (uint32_t)s->mb_h;
    if (p->kind == PIC_P) {
        bw_ue(&bw, mbs); /* mb_skip_run: the whole picture repeats its reference */
    } else {
        /* I_16x16, DC prediction, no coded residual: mb_type 3, intra_chroma_pred_mode 0
         * (DC), mb_qp_delta 0, Intra16x16DCLevel coeff_token "1" (TotalCoeff 0, nC 0).
         * 8 bits per macroblock, and the decoded picture is flat grey (128). */
        for (uint32_t i = 0; i < mbs; i++)
            bw_u(&bw, 0x27, 8); /* 00100 1 1 1 */
    }
    return finish_slice(&bw, p, dst, cap);
}
