/* Entropy coding: a picture's MacroblockArrays to its slice NAL unit, equal to
 * rfb/h264cuda/model/slicedata.slice_nal byte for byte (the driver is
 * rfb/h264cuda/slicedata.py, which says the order of the launches).
 *
 * The slice is a sequence of "entries", each a run of bits made by one thread:
 *   entry 0             the slice header (written here, from the scalars the model's
 *                       headers.slice_header takes: nothing is uploaded per picture);
 *   entry 1 + 28 m      macroblock m's prelude (raster order): its mb_skip_run (P
 *                       slices), mb_type, modes or mvd, coded_block_pattern, mb_qp_delta;
 *   entry 2 + 28 m + b  its residual block b (ent_part says which), empty if not coded;
 *                       a P_Skip macroblock has no bits at all;
 *   entry 28 N + 1      the trailing mb_skip_run of skipped macroblocks at the slice's end;
 *   entry 28 N + 2      rbsp_trailing_bits (a one, then zeros to the byte boundary), whose
 *                       length follows from the others' total (entropy_finish).
 * So the CAVLC of every block runs in a thread of its own (27 per macroblock), each
 * writing into its own slot of a scratch buffer (ENT_SLOT_WORDS 32-bit words, bits
 * big-endian from the most significant bit of the first word) and its bit length; an
 * exclusive prefix sum of the lengths gives each entry's offset in the payload; then
 * every payload word is gathered by the thread of the entry its first bit lies in;
 * emulation prevention counts, per chunk of payload bytes, the 03 bytes to insert, a
 * prefix sum of those counts places each chunk in the NAL unit, and a last launch
 * writes the start code, the NAL header and the bytes.
 *
 * Size of a slot, proven bound. A residual block holds at most 16 coefficients: its
 * coeff_token <= 16 bits, total_zeros <= 9 bits, and per coefficient a level <= 28 bits
 * (level_prefix <= 15, as Baseline CAVLC allows, so 16 bits, plus a suffix <= 12 bits;
 * a trailing one's sign is 1 bit) and a run_before <= 11 bits: <= 16 + 9 + 16 * 39 =
 * 649 bits. A prelude: mb_skip_run ue(v) of a run < 2^31 <= 63 bits, mb_type ue(<= 29)
 * 9 bits, intra_chroma_pred_mode ue(<= 3) 5 bits, two mvd se(v) of int32 (|mvd| <= 2^31:
 * codeNum <= 2^32) <= 65 bits each, coded_block_pattern ue(<= 47) 11 bits, mb_qp_delta
 * 1 bit: <= 219 bits. The slice header: ue(0), ue(7), ue(0), u(4), ue(idr_pic_id <
 * 2^31) <= 63 bits, 2 flags, se(int32 qp - 26) <= 65 bits, ue(1): <= 146 bits; the
 * trailing run <= 63 bits, the trailing bits <= 8. So 649 bits <= 672 = 21 words * 32.
 * (A whole macroblock: 27 blocks of 384 coefficients at most, <= 27 * 25 + 384 * 39 +
 * 219 = 15870 bits, far past the 3,000 of a typical worst case at QP 0.) The writer still
 * checks its capacity (ENT_ERR_OVERFLOW), and the fields the bound assumes (modes 0..3,
 * cbp_chroma 0..2, cbp_luma 0..15) are checked (ENT_ERR_FIELD): the model would write
 * such values into an invalid stream instead.
 */
#include "portable.h"
#include "cavlc.h"

#define ENT_SLOT_WORDS 21
#define ENT_PER_MB 28 /* entries per macroblock: its prelude and 27 residual blocks */
#define ENT_SLOT_BITS (32 * ENT_SLOT_WORDS)

/* Macroblock kinds (model/picture.py). */
#define ENT_P_SKIP 0
#define ENT_P_L0_16X16 1
#define ENT_I_16X16 2

/* meta[]: what the host reads back (one small copy), then the NAL's bytes. */
#define ENT_META_STATUS 0 /* ENT_ERR_* bits, 0 when the slice is good */
#define ENT_META_BITS 1   /* payload bits, rbsp_trailing_bits included (a multiple of 8) */
#define ENT_META_NAL 2    /* bytes of the NAL unit, start code included */

#define ENT_ERR_OVERFLOW 1u /* an entry's bits exceeded its scratch slot */
#define ENT_ERR_LEVEL 2u    /* a level too large for Baseline CAVLC (the model raises) */
#define ENT_ERR_KIND 4u     /* a macroblock kind other than P_Skip, P_L0_16x16, I16x16 */
#define ENT_ERR_FIELD 8u    /* a mode or coded_block_pattern out of range */
#define ENT_ERR_NEGATIVE 16u /* ue(v) of a negative value (idr_pic_id; the model raises) */

/* luma4x4BlkIdx -> position of the 4x4 block in its macroblock (model/transform.py). */
CONSTANT i32 ENT_BLK_X[16] = {0, 1, 0, 1, 2, 3, 2, 3, 0, 1, 0, 1, 2, 3, 2, 3};
CONSTANT i32 ENT_BLK_Y[16] = {0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3};

/* ------------------------------------------------------------------ bit writer */

typedef struct {
    u32 *words;  /* this entry's scratch slot */
    i32 length;  /* bits written */
    i32 pending; /* bits of acc not yet stored (0..31) */
    u64 acc;
    u32 error;
} EntWriter;

DEVICE void ent_put(EntWriter *w, u32 value, i32 n)
{
    if (n <= 0) return;
    if (n < 32 && (value >> n) != 0u) {
        w->error |= ENT_ERR_LEVEL; /* a field wider than its code (the model's Bits.u raises) */
        return;
    }
    if (w->length + n > ENT_SLOT_BITS) {
        w->error |= ENT_ERR_OVERFLOW;
        return;
    }
    w->acc = (w->acc << n) | (u64)value;
    w->pending += n;
    w->length += n;
    if (w->pending >= 32) {
        w->pending -= 32;
        w->words[(w->length - w->pending) / 32 - 1] = (u32)(w->acc >> w->pending);
        w->acc &= (((u64)1) << w->pending) - (u64)1;
    }
}

DEVICE void ent_flush(EntWriter *w)
{
    if (w->pending > 0) w->words[w->length / 32] = (u32)(w->acc << (32 - w->pending));
}

DEVICE void ent_zeros(EntWriter *w, i32 n)
{
    while (n > 0) {
        i32 k = imin(n, 32);
        ent_put(w, 0u, k);
        n -= k;
    }
}

/* n <= 64 bits of value. */
DEVICE void ent_put64(EntWriter *w, u64 value, i32 n)
{
    if (n > 32) {
        ent_put(w, (u32)(value >> 32), n - 32);
        ent_put(w, (u32)(value & 0xffffffffu), 32);
    } else {
        ent_put(w, (u32)value, n);
    }
}

/* A code as the tables hold it: (length << 16) | value. */
DEVICE void ent_code(EntWriter *w, u32 packed) { ent_put(w, packed & 0xffffu, (i32)(packed >> 16)); }

DEVICE i32 ent_bit_length(u64 v)
{
    i32 n = 0;
    while (v != 0u) {
        n++;
        v >>= 1;
    }
    return n;
}

/* ue(v) for 0 <= v < 2^63: leading zeros, a one, the low bits of v + 1. */
DEVICE void ent_ue(EntWriter *w, u64 v)
{
    u64 code = v + 1u;
    i32 nb = ent_bit_length(code);
    ent_zeros(w, nb - 1);
    ent_put64(w, code, nb);
}

DEVICE void ent_ue_signed(EntWriter *w, i64 v)
{
    if (v < 0) {
        w->error |= ENT_ERR_NEGATIVE;
        return;
    }
    ent_ue(w, (u64)v);
}

/* se(v) for |v| < 2^62. */
DEVICE void ent_se(EntWriter *w, i64 v) { ent_ue(w, v > 0 ? (u64)(2 * v - 1) : (u64)(-2 * v)); }

/* ------------------------------------------------------------------ CAVLC */

DEVICE u32 ent_coeff_token(i32 n_c, i32 total, i32 trailing_ones)
{
    if (n_c == -1) return CAVLC_CHROMA_DC_COEFF_TOKEN[total][trailing_ones];
    if (n_c >= 8) /* 6-bit fixed length: total_coeff - 1, trailing_ones; 000011 for none */
        return total == 0 ? ((6u << 16) | 3u) : ((6u << 16) | (u32)(((total - 1) << 2) | trailing_ones));
    return CAVLC_COEFF_TOKEN[n_c < 2 ? 0 : (n_c < 4 ? 1 : 2)][total][trailing_ones];
}

/* residual_block_cavlc() of levels[0..max_num_coeff) in scan order (model cavlc.residual_block). */
DEVICE void ent_residual_block(EntWriter *w, const i32 *levels, i32 n_c, i32 max_num_coeff)
{
    i32 pos[16];
    i32 total = 0;
    for (i32 i = 0; i < max_num_coeff; i++)
        if (levels[i] != 0) pos[total++] = i;
    i32 trailing_ones = 0;
    while (trailing_ones < imin(total, 3) && iabs(levels[pos[total - 1 - trailing_ones]]) == 1) trailing_ones++;
    ent_code(w, ent_coeff_token(n_c, total, trailing_ones));
    if (total == 0) return;
    for (i32 k = 0; k < trailing_ones; k++) ent_put(w, levels[pos[total - 1 - k]] < 0 ? 1u : 0u, 1);
    i32 suffix_length = (total > 10 && trailing_ones < 3) ? 1 : 0;
    for (i32 i = trailing_ones; i < total; i++) {
        i64 v = (i64)levels[pos[total - 1 - i]];
        i64 level_code = v > 0 ? 2 * v - 2 : -2 * v - 1;
        if (i == trailing_ones && trailing_ones < 3) level_code -= 2; /* known not to be +-1 */
        i64 prefix, suffix;
        i32 suffix_size;
        if (suffix_length == 0) {
            if (level_code < 14) {
                prefix = level_code;
                suffix = 0;
                suffix_size = 0;
            } else if (level_code < 30) {
                prefix = 14;
                suffix = level_code - 14;
                suffix_size = 4;
            } else {
                prefix = 15;
                suffix = level_code - 30;
                suffix_size = 12;
            }
        } else if (level_code < ((i64)15 << suffix_length)) {
            prefix = level_code >> suffix_length;
            suffix = level_code & ((((i64)1) << suffix_length) - 1);
            suffix_size = suffix_length;
        } else {
            prefix = 15;
            suffix = level_code - ((i64)15 << suffix_length);
            suffix_size = 12;
        }
        if (suffix >= (((i64)1) << suffix_size)) { /* needs level_prefix > 15: not Baseline */
            w->error |= ENT_ERR_LEVEL;
            return;
        }
        ent_put(w, 1u, (i32)prefix + 1); /* level_prefix zeros, then a one */
        ent_put(w, (u32)suffix, suffix_size);
        if (suffix_length == 0) suffix_length = 1;
        i64 magnitude = v < 0 ? -v : v;
        if (magnitude > ((i64)3 << (suffix_length - 1)) && suffix_length < 6) suffix_length++;
    }
    i32 total_zeros = pos[total - 1] + 1 - total;
    if (total < max_num_coeff)
        ent_code(w, max_num_coeff == 4 ? CAVLC_CHROMA_DC_TOTAL_ZEROS[total - 1][total_zeros]
                                       : CAVLC_TOTAL_ZEROS[total - 1][total_zeros]);
    i32 zeros_left = total_zeros;
    for (i32 k = total - 1; k > 0 && zeros_left > 0; k--) {
        i32 run = pos[k] - pos[k - 1] - 1;
        ent_code(w, CAVLC_RUN_BEFORE[imin(zeros_left, 7) - 1][run]);
        zeros_left -= run;
    }
}

/* ------------------------------------------------------------------ counts and nC */

/* TotalCoeff of every block laid out as the picture's grids of blocks (model
 * slicedata.neighbour_counts): luma (4 rows, 4 cols) and chroma AC (2, 2 rows, 2 cols).
 * One thread per luma 4x4 block (rows * cols * 16), then per chroma AC block (* 8).
 * Also counts the P_Skip macroblocks into *skipped (zero before the launch). */
KERNEL entropy_counts(const i32 *kind, const i32 *luma, const i32 *chroma_ac, i32 rows, i32 cols, i32 *luma_counts, i32 *chroma_counts, i32 *skipped)
{
    i32 i = global_index();
    i32 n = rows * cols;
    if (i >= 24 * n) return;
    if (i < 16 * n) {
        i32 m = i / 16, blk = i % 16;
        if (blk == 0 && kind[m] == ENT_P_SKIP) atomicAdd(skipped, 1); /* for an I slice's tail */
        const i32 *levels = luma + (i64)i * 16;
        i32 count = 0;
        for (i32 k = 0; k < 16; k++) count += levels[k] != 0 ? 1 : 0;
        i32 y = 4 * (m / cols) + ENT_BLK_Y[blk], x = 4 * (m % cols) + ENT_BLK_X[blk];
        luma_counts[(i64)y * 4 * cols + x] = count;
        return;
    }
    i32 j = i - 16 * n;
    i32 m = j / 8, comp = (j % 8) / 4, blk = j % 4;
    const i32 *levels = chroma_ac + (i64)j * 15;
    i32 count = 0;
    for (i32 k = 0; k < 15; k++) count += levels[k] != 0 ? 1 : 0;
    i32 y = 2 * (m / cols) + blk / 2, x = 2 * (m % cols) + blk % 2;
    chroma_counts[(i64)comp * 4 * n + (i64)y * 2 * cols + x] = count;
}

/* nC of the block at (y, x) of a grid `width` blocks wide (model cavlc.predicted_counts). */
DEVICE i32 ent_predicted(const i32 *grid, i32 width, i32 y, i32 x)
{
    i32 has_a = x > 0, has_b = y > 0;
    i32 n_a = has_a ? grid[(i64)y * width + x - 1] : 0;
    i32 n_b = has_b ? grid[(i64)(y - 1) * width + x] : 0;
    if (has_a && has_b) return (n_a + n_b + 1) >> 1;
    return has_a ? n_a : (has_b ? n_b : 0);
}

DEVICE void ent_slice_header(EntWriter *w, i32 idr, i32 frame_num, i32 idr_pic_id, i32 qp)
{
    /* model headers.slice_header(0, idr, frame_num, idr_pic_id, qp): LOG2_MAX_FRAME_NUM 4,
     * SLICE_I 7 / SLICE_P 5, PIC_INIT_QP 26, deblocking off. */
    ent_ue(w, 0u);               /* first_mb_in_slice */
    ent_ue(w, idr ? 7u : 5u);    /* slice_type */
    ent_ue(w, 0u);               /* pic_parameter_set_id */
    ent_put(w, (u32)(((frame_num % 16) + 16) % 16), 4); /* frame_num, as Python's % */
    if (idr) {
        ent_ue_signed(w, (i64)idr_pic_id);
        ent_put(w, 0u, 2); /* no_output_of_prior_pics_flag, long_term_reference_flag */
    } else {
        ent_put(w, 0u, 2); /* num_ref_idx_active_override_flag, ref_pic_list_modification_flag_l0 */
        ent_put(w, 0u, 1); /* adaptive_ref_pic_marking_mode_flag */
    }
    ent_se(w, (i64)qp - 26); /* slice_qp_delta */
    ent_ue(w, 1u);           /* disable_deblocking_filter_idc */
}

/* ------------------------------------------------------------------ skip runs */

/* mb_skip_run is the distance to the previous coded (not P_Skip) macroblock: a scan for
 * the last coded index, in chunks of `chunk` macroblocks. First, per chunk, the last
 * coded macroblock in it (-1: none). */
KERNEL entropy_coded_chunks(const i32 *kind, i32 n, i32 chunk, i32 *last)
{
    i32 k = global_index();
    i32 start = k * chunk;
    if (start >= n) return;
    i32 end = imin(start + chunk, n), found = -1;
    for (i32 i = start; i < end; i++)
        if (kind[i] != ENT_P_SKIP) found = i;
    last[k] = found;
}

/* One thread: last[k] becomes the last coded macroblock before chunk k, and
 * last[count] the last of the slice (-1 where there is none). */
KERNEL entropy_coded_top(i32 *last, i32 count)
{
    if (global_index() != 0) return;
    i32 found = -1;
    for (i32 k = 0; k < count; k++) {
        i32 v = last[k];
        last[k] = found;
        found = imax(found, v);
    }
    last[count] = found;
}

/* The last coded macroblock before m: within m's chunk, else before the chunk. */
DEVICE i32 ent_coded_before(const i32 *kind, i32 m, i32 chunk, const i32 *last)
{
    for (i32 j = m - 1; j >= (m / chunk) * chunk; j--)
        if (kind[j] != ENT_P_SKIP) return j;
    return last[m / chunk];
}

/* ------------------------------------------------------------------ per-entry bits */

/* The bits of macroblock m before its residual: mb_skip_run (P slices), mb_type, the
 * prediction modes or the motion vector difference, coded_block_pattern, mb_qp_delta. */
DEVICE void ent_prelude(EntWriter *w, i32 m, const i32 *kind, const i32 *luma_mode, const i32 *chroma_mode, const i32 *mv, const i32 *mvp, const i32 *cbp_luma, const i32 *cbp_chroma, i32 idr, i32 chunk, const i32 *last)
{
    i32 k = kind[m];
    if (k == ENT_P_SKIP) return;
    if (!idr) ent_ue(w, (u64)(m - 1 - ent_coded_before(kind, m, chunk, last))); /* mb_skip_run */
    i32 cl = cbp_luma[m], cc = cbp_chroma[m];
    if (cc < 0 || cc > 2 || cl < 0 || cl > 15) {
        w->error |= ENT_ERR_FIELD;
    } else if (k == ENT_I_16X16) {
        i32 lm = luma_mode[m], cm = chroma_mode[m];
        if (lm < 0 || lm > 3 || cm < 0 || cm > 3) {
            w->error |= ENT_ERR_FIELD;
            return;
        }
        ent_ue(w, (u64)(1 + lm + 4 * cc + (cl != 0 ? 12 : 0) + (idr ? 0 : 5))); /* mb_type */
        ent_ue(w, (u64)cm);
        ent_put(w, 1u, 1); /* mb_qp_delta se(0): the slice's QP throughout */
    } else if (k == ENT_P_L0_16X16) {
        ent_put(w, 1u, 1); /* mb_type P_L0_16x16 ue(0); no ref_idx with one reference */
        /* mvd = mv - mvp in int32, wrapping as the model's NumPy int32 arrays do */
        ent_se(w, (i64)(i32)((u32)mv[2 * m] - (u32)mvp[2 * m]));
        ent_se(w, (i64)(i32)((u32)mv[2 * m + 1] - (u32)mvp[2 * m + 1]));
        i32 cbp = cl + 16 * cc;
        ent_ue(w, (u64)CAVLC_INTER_CBP_CODE_NUM[cbp]);
        if (cbp != 0) ent_put(w, 1u, 1); /* mb_qp_delta se(0) */
    } else {
        w->error |= ENT_ERR_KIND;
    }
}

/* Residual block `part` of macroblock m (r, c), if the macroblock codes it, in the
 * order of the model's macroblock_bits: 0 luma DC (I16x16), 1 + blkIdx the luma 4x4
 * blocks (AC only for I16x16), 17 + comp chroma DC, 19 + 4 comp + blk chroma AC.
 * Macroblocks whose fields are out of range code nothing (ent_prelude reports them). */
DEVICE void ent_part(EntWriter *w, i32 m, i32 r, i32 c, i32 cols, i32 n, i32 part, const i32 *kind, const i32 *luma_mode, const i32 *chroma_mode, const i32 *luma_dc, const i32 *luma, const i32 *chroma_dc, const i32 *chroma_ac, const i32 *cbp_luma, const i32 *cbp_chroma, const i32 *luma_counts, const i32 *chroma_counts)
{
    i32 k = kind[m], cl = cbp_luma[m], cc = cbp_chroma[m];
    if (cc < 0 || cc > 2 || cl < 0 || cl > 15) return;
    if (k == ENT_I_16X16) {
        if (luma_mode[m] < 0 || luma_mode[m] > 3 || chroma_mode[m] < 0 || chroma_mode[m] > 3) return;
    } else if (k != ENT_P_L0_16X16 || cl + 16 * cc == 0) {
        return;
    }
    if (part == 0) {
        if (k == ENT_I_16X16)
            ent_residual_block(w, luma_dc + (i64)m * 16, ent_predicted(luma_counts, 4 * cols, 4 * r, 4 * c), 16);
    } else if (part <= 16) {
        i32 blk = part - 1;
        i32 coded = k == ENT_I_16X16 ? cl != 0 : ((cl >> (blk / 4)) & 1) != 0;
        if (!coded) return;
        i32 n_c = ent_predicted(luma_counts, 4 * cols, 4 * r + ENT_BLK_Y[blk], 4 * c + ENT_BLK_X[blk]);
        if (k == ENT_I_16X16)
            ent_residual_block(w, luma + (i64)m * 256 + blk * 16 + 1, n_c, 15);
        else
            ent_residual_block(w, luma + (i64)m * 256 + blk * 16, n_c, 16);
    } else if (part <= 18) {
        if (cc != 0) ent_residual_block(w, chroma_dc + (i64)m * 8 + (part - 17) * 4, -1, 4);
    } else if (cc == 2) {
        i32 comp = (part - 19) / 4, blk = (part - 19) % 4;
        const i32 *grid = chroma_counts + (i64)comp * 4 * n;
        i32 n_c = ent_predicted(grid, 2 * cols, 2 * r + blk / 2, 2 * c + blk % 2);
        ent_residual_block(w, chroma_ac + (i64)m * 120 + comp * 60 + blk * 15, n_c, 15);
    }
}

/* One thread per entry (ENT_PER_MB * N + 3 of them, N = rows * cols macroblocks): the
 * slice header; per macroblock its prelude and its 27 residual blocks; the trailing
 * skip run; the last entry (rbsp_trailing_bits) gets length 0 here and its bits in
 * entropy_finish. */
KERNEL entropy_entries(const i32 *kind, const i32 *luma_mode, const i32 *chroma_mode, const i32 *mv, const i32 *mvp, const i32 *luma_dc, const i32 *luma, const i32 *chroma_dc, const i32 *chroma_ac, const i32 *cbp_luma, const i32 *cbp_chroma, const i32 *luma_counts, const i32 *chroma_counts, const i32 *skipped, const i32 *last, i32 chunk, i32 rows, i32 cols, i32 idr, i32 frame_num, i32 idr_pic_id, i32 qp, u32 *scratch, i32 *lengths, u32 *meta)
{
    i32 e = global_index();
    i32 n = rows * cols;
    if (e >= ENT_PER_MB * n + 3) return;
    EntWriter writer;
    EntWriter *w = &writer;
    w->words = scratch + (i64)e * ENT_SLOT_WORDS;
    w->length = 0;
    w->pending = 0;
    w->acc = 0u;
    w->error = 0u;
    if (e == 0) {
        ent_slice_header(w, idr, frame_num, idr_pic_id, qp);
    } else if (e <= ENT_PER_MB * n) {
        i32 m = (e - 1) / ENT_PER_MB, part = (e - 1) % ENT_PER_MB;
        if (part == 0)
            ent_prelude(w, m, kind, luma_mode, chroma_mode, mv, mvp, cbp_luma, cbp_chroma, idr, chunk, last);
        else
            ent_part(w, m, m / cols, m % cols, cols, n, part - 1, kind, luma_mode, chroma_mode, luma_dc, luma, chroma_dc, chroma_ac, cbp_luma, cbp_chroma, luma_counts, chroma_counts);
    } else if (e == ENT_PER_MB * n + 1) { /* the skipped macroblocks at the end of the slice */
        /* An I slice writes no mb_skip_run before its macroblocks, so the model's run
         * there never restarts: its tail is every P_Skip of the slice (none, from the
         * encoder: I pictures have no P_Skip). */
        i32 run = idr ? *skipped : n - 1 - last[(n + chunk - 1) / chunk];
        if (run != 0) ent_ue(w, (u64)run);
    }
    ent_flush(w);
    lengths[e] = w->length;
    if (w->error != 0u) atomicOr(meta + ENT_META_STATUS, w->error);
}

/* ------------------------------------------------------------------ prefix sums */

/* An exclusive prefix sum in three launches (no thread reads another's result within
 * a launch): per chunk of `chunk` values their sum, then one thread scans the sums,
 * then per chunk the offsets. */
KERNEL entropy_scan_sums(const i32 *values, i32 n, i32 chunk, i32 *sums)
{
    i32 k = global_index();
    i32 start = k * chunk;
    if (start >= n) return;
    i32 end = imin(start + chunk, n), sum = 0;
    for (i32 i = start; i < end; i++) sum += values[i];
    sums[k] = sum;
}

KERNEL entropy_scan_top(i32 *sums, i32 count)
{
    if (global_index() != 0) return;
    i32 sum = 0;
    for (i32 k = 0; k < count; k++) {
        i32 v = sums[k];
        sums[k] = sum;
        sum += v;
    }
}

KERNEL entropy_scan_offsets(const i32 *values, i32 n, i32 chunk, const i32 *sums, i32 *offsets)
{
    i32 k = global_index();
    i32 start = k * chunk;
    if (start >= n) return;
    i32 end = imin(start + chunk, n), sum = sums[k];
    for (i32 i = start; i < end; i++) {
        offsets[i] = sum;
        sum += values[i];
    }
}

/* ------------------------------------------------------------------ payload */

/* One thread: rbsp_trailing_bits as the last entry, now that the others' total is known. */
KERNEL entropy_finish(i32 *lengths, const i32 *offsets, i32 n_entries, u32 *scratch, u32 *meta)
{
    if (global_index() != 0) return;
    i32 last = n_entries - 1;
    i32 before = offsets[last] + lengths[last]; /* lengths[last] is 0 until now */
    i32 stop = 1 + ((8 - ((before + 1) & 7)) & 7);
    lengths[last] = stop;
    scratch[(i64)last * ENT_SLOT_WORDS] = 0x80000000u;
    meta[ENT_META_BITS] = (u32)(before + stop);
}

/* n <= 32 bits of slot from bit pos, right-aligned (the slot holds at least pos + n bits). */
DEVICE u32 ent_read(const u32 *slot, i32 pos, i32 n)
{
    if (n <= 0) return 0u;
    i32 word = pos >> 5, shift = pos & 31;
    u64 bits = ((u64)slot[word]) << 32;
    if (shift + n > 32) bits |= (u64)slot[word + 1];
    return (u32)((bits << shift) >> (64 - n));
}

/* One thread per entry: every payload word whose first bit lies in this entry, gathered
 * from this entry and the ones after it (so each word has one writer, no atomics). */
KERNEL entropy_pack(const u32 *scratch, const i32 *lengths, const i32 *offsets, i32 n_entries, u32 *payload)
{
    i32 e = global_index();
    if (e >= n_entries) return;
    i32 length = lengths[e];
    if (length == 0) return;
    i32 begin = offsets[e], end = begin + length;
    for (i32 word = (begin + 31) / 32; word * 32 < end; word++) {
        u64 bits = 0u;
        i32 filled = 0, j = e, local = word * 32 - begin;
        while (filled < 32 && j < n_entries) {
            i32 take = imin(lengths[j] - local, 32 - filled);
            if (take > 0) {
                bits = (bits << take) | (u64)ent_read(scratch + (i64)j * ENT_SLOT_WORDS, local, take);
                filled += take;
            }
            j++;
            local = 0;
        }
        payload[word] = (u32)(bits << (32 - filled));
    }
}

/* ------------------------------------------------------------------ emulation prevention */

DEVICE i32 ent_byte(const u32 *payload, i64 p) { return (i32)((payload[p >> 2] >> (24 - 8 * (p & 3))) & 0xffu); }

/* The zero bytes right before byte p. */
DEVICE i32 ent_zeros_before(const u32 *payload, i64 p)
{
    i32 z = 0;
    while (p - 1 - z >= 0 && ent_byte(payload, p - 1 - z) == 0) z++;
    return z;
}

/* The model's rule (rfb.encoders.h264.add_emulation_prevention: 03 before a byte <= 3
 * that follows two zeros, counting zeros again after each 03) in a form that needs only
 * the zero bytes right before a byte: an 03 goes before byte p <= 3 when the z zero
 * bytes before it are two or more and z is even. */
DEVICE i32 ent_inserts_before(i32 byte, i32 z) { return byte <= 3 && z >= 2 && (z & 1) == 0; }

/* The payload's bytes in `chunks` chunks of ceil(bytes / chunks); thread k counts the
 * 03 bytes its chunk needs. */
KERNEL entropy_ep_count(const u32 *payload, const u32 *meta, i32 chunks, i32 *counts)
{
    i32 k = global_index();
    if (k >= chunks) return;
    i64 bytes = (i64)(meta[ENT_META_BITS] / 8u), size = (bytes + chunks - 1) / chunks;
    i64 start = (i64)k * size, end = start + size < bytes ? start + size : bytes;
    i32 count = 0;
    if (start < end) {
        i32 z = ent_zeros_before(payload, start);
        for (i64 p = start; p < end; p++) {
            i32 b = ent_byte(payload, p);
            count += ent_inserts_before(b, z);
            z = b == 0 ? z + 1 : 0;
        }
    }
    counts[k] = count;
}

/* Thread k writes its chunk at 5 + its start + the 03 bytes before it (offsets: the
 * exclusive prefix sum of counts); thread 0 also writes the start code and the NAL
 * header (nal_ref_idc 3, nal_unit_type as given) and the NAL's length into meta. */
KERNEL entropy_ep_write(const u32 *payload, u32 *meta, i32 chunks, const i32 *counts, const i32 *offsets, i32 nal_unit_type, u8 *out)
{
    i32 k = global_index();
    if (k >= chunks) return;
    i64 bytes = (i64)(meta[ENT_META_BITS] / 8u), size = (bytes + chunks - 1) / chunks;
    i64 start = (i64)k * size, end = start + size < bytes ? start + size : bytes;
    if (k == 0) {
        out[0] = 0u;
        out[1] = 0u;
        out[2] = 0u;
        out[3] = 1u;
        out[4] = (u8)((3 << 5) | nal_unit_type);
        meta[ENT_META_NAL] = (u32)(5 + bytes + offsets[chunks - 1] + counts[chunks - 1]);
    }
    if (start >= end) return;
    i64 at = 5 + start + offsets[k];
    i32 z = ent_zeros_before(payload, start);
    for (i64 p = start; p < end; p++) {
        i32 b = ent_byte(payload, p);
        if (ent_inserts_before(b, z)) out[at++] = 3u;
        out[at++] = (u8)b;
        z = b == 0 ? z + 1 : 0;
    }
}
