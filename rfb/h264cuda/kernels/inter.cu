/* P pictures: model.inter, as a sequence of parallel launches.
 *
 * Every decision of a P picture is independent of every other macroblock's decision
 * (the model's docstring says why), so each step below is one launch whose threads
 * read only what earlier launches wrote:
 *
 * 1. motion_costs: one thread per (macroblock, candidate vector) of the +-search
 *    window, SAD + lambda(qp) * bits of the vector against (0, 0);
 * 2. motion_choose: one thread per macroblock, the least cost, ties to the first
 *    candidate in the model's order (|dx| + |dy|, dy, dx);
 * 3. inter_residual at the zero vector (the still test, flags only): one thread per
 *    (macroblock, part), parts 0-15 the luma 4x4 blocks by luma4x4BlkIdx, 16 and 17
 *    the chroma components (each with its four 4x4 blocks and their 2x2 DC Hadamard);
 * 4. inter_decide: one thread per macroblock, still / intra / final vector;
 * 5. mv_predictors (mvpred.cu);
 * 6. inter_residual at the final vectors: levels and reconstruction;
 * 7. inter_finish: one thread per macroblock, kind and coded_block_pattern.
 *
 * The intra macroblocks are then coded by intra.cu's wavefront, in place.
 *
 * Layouts (C order): planes u8 (height, width) luma and (2, height/2, width/2) chroma;
 * reconstructions i32 in the model's macroblock views, (R, C, 16, 16) and
 * (R, C, 2, 8, 8), which is what the wavefront reads and completes; MacroblockArrays
 * fields as model/picture.py; vectors (R, C, 2) (x, y).
 */
#include "transform.h"

#define INTER_P_SKIP 0     /* model.picture.P_SKIP */
#define INTER_P_L0_16X16 1 /* model.picture.P_L0_16X16 */
#define INTER_I_16X16 2    /* model.picture.I_16X16 */
#define INTER_PARTS 18     /* per macroblock: 16 luma 4x4 blocks, 2 chroma components */
#define INTER_INTRA_PENALTY_BITS 48 /* model.inter.INTRA_PENALTY_BITS */

/* Bits of ue(v) for code number k >= 0: 2 floor(log2(k + 1)) + 1. */
DEVICE i32 inter_ue_length(i32 k)
{
    i32 bits = 0;
    u32 v = (u32)k + 1u;
    while (v) {
        bits++;
        v >>= 1;
    }
    return 2 * bits - 1;
}

/* The ue code number of se(v) (Table 9-3). */
DEVICE i32 inter_se_code_num(i32 v) { return v > 0 ? 2 * v - 1 : -2 * v; }

/* Bits of mvd_l0 for a whole-sample vector (dx, dy) against a zero predictor. */
DEVICE i32 inter_mv_bits(i32 dx, i32 dy)
{
    return inter_ue_length(inter_se_code_num(4 * dx)) + inter_ue_length(inter_se_code_num(4 * dy));
}

/* Sample (x, y) of a plane with the coordinates clamped into it (8.4.2.2's edge extension). */
DEVICE i32 inter_sample(const u8 *plane, i32 width, i32 height, i32 x, i32 y)
{
    return (i32)plane[(i64)iclamp(y, 0, height - 1) * width + iclamp(x, 0, width - 1)];
}

/* One thread per (macroblock, candidate): costs[mb * K + k], K = (2 search + 1)^2, the
 * candidate k = (dy + search) (2 search + 1) + (dx + search) in raster order of the
 * window (motion_choose applies the model's order). src, ref: (height, width) luma. */
KERNEL motion_costs(const u8 *src, const u8 *ref, i32 width, i32 height, i32 search, i32 lambda, i32 *costs)
{
    i32 side = 2 * search + 1, count = side * side;
    i32 cols = width / 16, mbs = cols * (height / 16);
    i32 i = global_index();
    if (i >= mbs * count) return;
    i32 mb = i / count, k = i % count;
    i32 dy = k / side - search, dx = k % side - search;
    i32 x0 = (mb % cols) * 16, y0 = (mb / cols) * 16;
    i32 sad = 0;
    if (x0 + dx >= 0 && x0 + dx + 16 <= width && y0 + dy >= 0 && y0 + dy + 16 <= height) {
        /* The window lies inside the reference: no clamping (most candidates). */
        for (i32 j = 0; j < 16; j++) {
            const u8 *row = src + (i64)(y0 + j) * width + x0;
            const u8 *ref_row = ref + (i64)(y0 + j + dy) * width + x0 + dx;
            for (i32 x = 0; x < 16; x++) sad += iabs((i32)row[x] - (i32)ref_row[x]);
        }
    } else {
        for (i32 j = 0; j < 16; j++) {
            const u8 *row = src + (i64)(y0 + j) * width + x0;
            const u8 *ref_row = ref + (i64)iclamp(y0 + j + dy, 0, height - 1) * width;
            for (i32 x = 0; x < 16; x++) sad += iabs((i32)row[x] - (i32)ref_row[iclamp(x0 + x + dx, 0, width - 1)]);
        }
    }
    costs[i] = sad + lambda * inter_mv_bits(dx, dy);
}

/* Whether candidate (dx, dy) comes before (ex, ey) in the model's order
 * (|dx| + |dy|, dy, dx): model.inter.candidates. */
DEVICE i32 inter_candidate_before(i32 dx, i32 dy, i32 ex, i32 ey)
{
    i32 d = iabs(dx) + iabs(dy), e = iabs(ex) + iabs(ey);
    if (d != e) return d < e;
    if (dy != ey) return dy < ey;
    return dx < ex;
}

/* One thread per macroblock: the least cost of its candidates, the first in the model's
 * order on a tie (the model's argmin over its sorted candidates). mv: (R, C, 2) whole
 * samples (x, y); cost: (R, C). */
KERNEL motion_choose(const i32 *costs, i32 mbs, i32 search, i32 *mv, i32 *cost)
{
    i32 side = 2 * search + 1, count = side * side;
    i32 mb = global_index();
    if (mb >= mbs) return;
    const i32 *own = costs + (i64)mb * count;
    i32 best = own[0], bx = -search, by = -search;
    for (i32 k = 1; k < count; k++) {
        i32 dy = k / side - search, dx = k % side - search;
        if (own[k] < best || (own[k] == best && inter_candidate_before(dx, dy, bx, by))) {
            best = own[k];
            bx = dx;
            by = dy;
        }
    }
    mv[2 * mb] = bx;
    mv[2 * mb + 1] = by;
    cost[mb] = best;
}

/* One luma 4x4 block of an inter macroblock at whole-sample vector (vx, vy): the
 * prediction (a copy, edges clamped), the levels of the residual (zigzag), and the
 * decoder's reconstruction. Returns whether any level is non-zero. */
DEVICE i32 inter_luma_block(const u8 *src, const u8 *ref, i32 width, i32 height, i32 x0, i32 y0, i32 vx, i32 vy,
                            i32 qp, i32 *levels, i32 *rec)
{
    i32 pred[16], res[16], coef[16], raster[16];
    for (i32 j = 0; j < 4; j++) {
        for (i32 i = 0; i < 4; i++) {
            pred[4 * j + i] = inter_sample(ref, width, height, x0 + i + vx, y0 + j + vy);
            res[4 * j + i] = (i32)src[(i64)(y0 + j) * width + x0 + i] - pred[4 * j + i];
        }
    }
    tf_forward4x4(res, coef);
    tf_quantise(coef, qp, 0, raster);
    tf_scan(raster, levels);
    i32 nonzero = 0;
    for (i32 k = 0; k < 16; k++) nonzero |= levels[k] != 0;
    tf_dequantise(raster, qp, coef);
    tf_inverse4x4(coef, res);
    for (i32 k = 0; k < 16; k++) rec[k] = iclamp(pred[k] + res[k], 0, 255);
    return nonzero;
}

/* The chroma prediction of one component's 8x8 block at chroma sample (x0, y0) for the
 * luma vector (mvx, mvy) in quarter samples, which is the chroma vector in eighths:
 * the bilinear filter of 8-266, coordinates clamped (model predict_chroma). */
DEVICE void inter_chroma_prediction(const u8 *ref, i32 width, i32 height, i32 x0, i32 y0, i32 mvx, i32 mvy,
                                    i32 *pred)
{
    i32 xf = mvx & 7, yf = mvy & 7;
    i32 bx = x0 + (mvx >> 3), by = y0 + (mvy >> 3);
    for (i32 j = 0; j < 8; j++) {
        for (i32 i = 0; i < 8; i++) {
            i32 a = inter_sample(ref, width, height, bx + i, by + j);
            i32 b = inter_sample(ref, width, height, bx + i + 1, by + j);
            i32 c = inter_sample(ref, width, height, bx + i, by + j + 1);
            i32 d = inter_sample(ref, width, height, bx + i + 1, by + j + 1);
            pred[8 * j + i] =
                ((8 - xf) * (8 - yf) * a + xf * (8 - yf) * b + (8 - xf) * yf * c + xf * yf * d + 32) >> 6;
        }
    }
}

/* One chroma component of an inter macroblock (model residual.code_chroma, intra=False):
 * four 4x4 transforms, the 2x2 Hadamard of their DCs, quantisation, and the decoder's
 * rebuild. dc: 4 levels; ac: 4 x 15 levels; rec: 8x8 raster. Returns bit 0 for a
 * non-zero DC level, bit 1 for a non-zero AC level. */
DEVICE i32 inter_chroma_component(const u8 *src, const u8 *ref, i32 width, i32 height, i32 x0, i32 y0, i32 mvx,
                                  i32 mvy, i32 qpc, i32 *dc, i32 *ac, i32 *rec)
{
    i32 pred[64], coef[4][16], dc_coef[4], dc_rec[4], block[16], zigzag[16];
    inter_chroma_prediction(ref, width, height, x0, y0, mvx, mvy, pred);
    i32 flags = 0;
    for (i32 k = 0; k < 4; k++) {
        i32 ox = 4 * (k % 2), oy = 4 * (k / 2);
        for (i32 j = 0; j < 4; j++) {
            for (i32 i = 0; i < 4; i++) {
                i32 p = 8 * (oy + j) + ox + i;
                block[4 * j + i] = (i32)src[(i64)(y0 + oy + j) * width + x0 + ox + i] - pred[p];
            }
        }
        tf_forward4x4(block, coef[k]);
        dc_coef[k] = coef[k][0];
    }
    tf_hadamard2(dc_coef, dc_coef);
    for (i32 k = 0; k < 4; k++) {
        dc[k] = tf_quantise_dc(dc_coef[k], qpc, 0);
        if (dc[k] != 0) flags |= 1;
    }
    tf_dequantise_chroma_dc(dc, qpc, dc_rec);
    for (i32 k = 0; k < 4; k++) {
        tf_quantise(coef[k], qpc, 0, block);
        block[0] = 0;
        tf_scan(block, zigzag);
        for (i32 n = 1; n < 16; n++) {
            ac[15 * k + n - 1] = zigzag[n];
            if (zigzag[n] != 0) flags |= 2;
        }
        tf_dequantise(block, qpc, block);
        block[0] = dc_rec[k];
        tf_inverse4x4(block, coef[k]);
        i32 ox = 4 * (k % 2), oy = 4 * (k / 2);
        for (i32 j = 0; j < 4; j++) {
            for (i32 i = 0; i < 4; i++) {
                i32 p = 8 * (oy + j) + ox + i;
                rec[p] = iclamp(pred[p] + coef[k][4 * j + i], 0, 255);
            }
        }
    }
    return flags;
}

/* One thread per (macroblock, part): part < 16 is luma block luma4x4BlkIdx = part, 16
 * and 17 are Cb and Cr. The residual of every non-intra macroblock at its vector mv
 * (R, C, 2), quarter samples, multiples of 4. flags (R, C, 18): non-zero levels of the
 * part (chroma: bit 0 DC, bit 1 AC), 0 for intra macroblocks. With store, also the
 * levels (luma (R, C, 16, 16), chroma_dc (R, C, 2, 4), chroma_ac (R, C, 2, 4, 15);
 * zero for intra macroblocks) and the reconstruction of the non-intra ones. */
KERNEL inter_residual(const u8 *src_y, const u8 *src_c, const u8 *ref_y, const u8 *ref_c, i32 width, i32 height, const i32 *mv, const u8 *intra, i32 qp, i32 store, i32 *flags, i32 *luma, i32 *chroma_dc, i32 *chroma_ac, i32 *rec_y, i32 *rec_c)
{
    i32 cols = width / 16, mbs = cols * (height / 16);
    i32 i = global_index();
    if (i >= mbs * INTER_PARTS) return;
    i32 mb = i / INTER_PARTS, part = i % INTER_PARTS;
    i32 mx = mb % cols, my = mb / cols;
    i32 mvx = mv[2 * mb], mvy = mv[2 * mb + 1];
    if (intra[mb]) {
        flags[i] = 0;
        if (!store) return;
        if (part < 16) {
            for (i32 k = 0; k < 16; k++) luma[((i64)mb * 16 + part) * 16 + k] = 0;
        } else {
            i32 comp = part - 16;
            for (i32 k = 0; k < 4; k++) chroma_dc[((i64)mb * 2 + comp) * 4 + k] = 0;
            for (i32 k = 0; k < 60; k++) chroma_ac[((i64)mb * 2 + comp) * 60 + k] = 0;
        }
        return;
    }
    if (part < 16) {
        i32 bx = TF_BLK_X[part], by = TF_BLK_Y[part];
        i32 levels[16], rec[16];
        flags[i] = inter_luma_block(src_y, ref_y, width, height, 16 * mx + 4 * bx, 16 * my + 4 * by, mvx >> 2,
                                    mvy >> 2, qp, levels, rec);
        if (!store) return;
        for (i32 k = 0; k < 16; k++) luma[((i64)mb * 16 + part) * 16 + k] = levels[k];
        i32 *out = rec_y + (i64)mb * 256;
        for (i32 j = 0; j < 4; j++) {
            for (i32 x = 0; x < 4; x++) out[16 * (4 * by + j) + 4 * bx + x] = rec[4 * j + x];
        }
    } else {
        i32 comp = part - 16, cw = width / 2, ch = height / 2;
        i64 plane = (i64)comp * cw * ch;
        i32 dc[4], ac[60], rec[64];
        flags[i] = inter_chroma_component(src_c + plane, ref_c + plane, cw, ch, 8 * mx, 8 * my, mvx, mvy,
                                          tf_chroma_qp(qp, 0), dc, ac, rec);
        if (!store) return;
        for (i32 k = 0; k < 4; k++) chroma_dc[((i64)mb * 2 + comp) * 4 + k] = dc[k];
        for (i32 k = 0; k < 60; k++) chroma_ac[((i64)mb * 2 + comp) * 60 + k] = ac[k];
        i32 *out = rec_c + ((i64)mb * 2 + comp) * 64;
        for (i32 k = 0; k < 64; k++) out[k] = rec[k];
    }
}

/* One thread per macroblock: still (no level at the zero vector: still_flags of
 * inter_residual), intra (not still, moved, and the source's best Intra16x16 SAD below
 * the search's cost by more than lambda INTRA_PENALTY_BITS), and the final vector in
 * quarter samples ((0, 0) for still and intra macroblocks, else the searched one). */
KERNEL inter_decide(i32 mbs, i32 lambda, const i32 *still_flags, const i32 *search_mv, const i32 *search_cost, const i32 *source_cost, u8 *still, u8 *intra, i32 *mv)
{
    i32 mb = global_index();
    if (mb >= mbs) return;
    i32 any = 0;
    for (i32 p = 0; p < INTER_PARTS; p++) any |= still_flags[mb * INTER_PARTS + p];
    i32 sx = search_mv[2 * mb], sy = search_mv[2 * mb + 1];
    i32 is_still = any == 0;
    i32 moved = sx != 0 || sy != 0;
    i32 is_intra = !is_still && moved && source_cost[mb] + lambda * INTER_INTRA_PENALTY_BITS < search_cost[mb];
    still[mb] = (u8)is_still;
    intra[mb] = (u8)is_intra;
    mv[2 * mb] = is_still || is_intra ? 0 : 4 * sx;
    mv[2 * mb + 1] = is_still || is_intra ? 0 : 4 * sy;
}

/* One thread per macroblock, after inter_residual at the final vectors: the kind
 * (P_Skip for a still macroblock whose P_Skip vector is (0, 0), I_16X16 for intra, else
 * P_L0_16x16) and, for the non-intra ones, coded_block_pattern from the parts' flags. */
KERNEL inter_finish(i32 mbs, const u8 *still, const u8 *intra, const i32 *skip_mv, const i32 *flags, i32 *kind, i32 *cbp_luma, i32 *cbp_chroma)
{
    i32 mb = global_index();
    if (mb >= mbs) return;
    if (intra[mb]) {
        kind[mb] = INTER_I_16X16;
        return;
    }
    i32 skip = still[mb] && skip_mv[2 * mb] == 0 && skip_mv[2 * mb + 1] == 0;
    kind[mb] = skip ? INTER_P_SKIP : INTER_P_L0_16X16;
    const i32 *own = flags + mb * INTER_PARTS;
    i32 luma = 0;
    for (i32 b = 0; b < 16; b++) {
        if (own[b]) luma |= 1 << (b / 4);
    }
    i32 chroma = own[16] | own[17];
    cbp_luma[mb] = luma;
    cbp_chroma[mb] = (chroma & 2) ? 2 : (chroma & 1);
}
