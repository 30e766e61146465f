/* Intra16x16 macroblocks as a wavefront, equal to rfb/h264cuda/model/intra.py.
 *
 * Macroblock (r, c) predicts from the reconstruction of (r - 1, c), (r, c - 1) and
 * (r - 1, c - 1), so the macroblocks of one anti-diagonal r + c = step are independent
 * of each other. More generally a macroblock can be coded as soon as those of its
 * neighbours that are being coded too are done: the driver (rfb/h264cuda/intra.py) hands
 * the kernels a list of macroblock indices (r * C + c) and codes it one group at a time,
 * each group independent within itself (the anti-diagonals of an I picture; in a P
 * picture, the intra macroblocks grouped by the length of their chain of intra
 * neighbours). The wavefront is a chain of dependent launches, so it is as long as
 * it has launches: one per group,
 *
 *   intra_code  one thread per (macroblock, 4x4 block), 16 luma (blkIdx order) + 8
 *               chroma (Cb then Cr, raster). Each thread works out what it needs from
 *               the macroblock rather than from other threads: the SADs of its
 *               component's candidate modes and the pick (the cheapest allowed, the
 *               first of a tie), the DC coefficients of all the blocks of its
 *               component (a block's DC coefficient is the sum of its residual), their
 *               Hadamard and levels; then its own block's transform and AC levels, and
 *               the decoder's dequantisation and inverse transform into the
 *               reconstruction. Thread 0 writes the luma DC levels and the modes,
 *               the first thread of each chroma component its DC levels;
 *
 * and one launch over all groups at the end, intra_cbp, for the coded block patterns
 * (they need every block's levels).
 *
 * Layout (the model's arrays, C order, int32): luma (R, C, 16, 16), chroma
 * (R, C, 2, 8, 8), mask (R, C) u8 (macroblocks of the list outside it are skipped);
 * MacroblockArrays fields as model/picture.py.
 */
#include "transform.h"

#define INTRA_UNAVAILABLE ((i32)0x7fffffff)
#define INTRA_I16X16 2 /* model.picture.I_16X16 */

/* Intra16x16PredMode and intra_chroma_pred_mode by candidate index (tie-break order). */
CONSTANT i32 INTRA_LUMA_MODES[4] = {2, 0, 1, 3};   /* DC, Vertical, Horizontal, Plane */
CONSTANT i32 INTRA_CHROMA_MODES[4] = {0, 2, 1, 3}; /* DC, Vertical, Horizontal, Plane */

/* The neighbours of one 16x16 luma or 8x8 chroma block and what its predictions need.
 * Candidate 0 is DC, 1 Vertical (the row above), 2 Horizontal (the left column), 3 Plane. */
typedef struct {
    i32 top[16], left[16];
    i32 has_top, has_left;
    i32 dc[4]; /* DC value by 4x4 block (raster of the 2x2 blocks for chroma; all four equal for luma) */
    i32 a, b, c; /* plane parameters */
    i32 size;
} intra_edges;

/* Plane prediction parameters (8-128..8-132 luma, 8-141..8-145 chroma); corner is p[-1, -1]. */
DEVICE void intra_plane(intra_edges *e, i32 corner, i32 scale)
{
    i32 half = e->size / 2, h = 0, v = 0;
    for (i32 k = 1; k <= half; k++) {
        i32 j = half - 1 - k;
        h += k * (e->top[half - 1 + k] - (j >= 0 ? e->top[j] : corner));
        v += k * (e->left[half - 1 + k] - (j >= 0 ? e->left[j] : corner));
    }
    e->a = 16 * (e->left[e->size - 1] + e->top[e->size - 1]);
    e->b = (scale * h + 32) >> 6;
    e->c = (scale * v + 32) >> 6;
}

/* The edges of luma macroblock (r, c) of `plane` (R, C, 16, 16): zeros where a neighbour is missing. */
DEVICE void intra_luma_edges(const i32 *plane, i32 r, i32 c, i32 cols, intra_edges *e)
{
    e->size = 16;
    e->has_top = r > 0;
    e->has_left = c > 0;
    /* (pointers into the missing neighbours are never formed: they would lie before the array) */
    const i32 *up = e->has_top ? plane + ((i64)(r - 1) * cols + c) * 256 + 15 * 16 : plane;
    const i32 *lf = e->has_left ? plane + ((i64)r * cols + c - 1) * 256 + 15 : plane;
    i32 sum_top = 0, sum_left = 0;
    for (i32 k = 0; k < 16; k++) {
        e->top[k] = e->has_top ? up[k] : 0;
        e->left[k] = e->has_left ? lf[16 * k] : 0;
        sum_top += e->top[k];
        sum_left += e->left[k];
    }
    i32 dc = e->has_top && e->has_left ? (sum_top + sum_left + 16) >> 5
             : e->has_left             ? (sum_left + 8) >> 4
             : e->has_top              ? (sum_top + 8) >> 4
                                       : 128;
    for (i32 k = 0; k < 4; k++) e->dc[k] = dc;
    i32 corner = e->has_top && e->has_left ? plane[((i64)(r - 1) * cols + c - 1) * 256 + 255] : 0;
    intra_plane(e, corner, 5);
}

/* The edges of chroma component k of macroblock (r, c) of `plane` (R, C, 2, 8, 8). */
DEVICE void intra_chroma_edges(const i32 *plane, i32 r, i32 c, i32 cols, i32 k, intra_edges *e)
{
    e->size = 8;
    e->has_top = r > 0;
    e->has_left = c > 0;
    const i32 *up = e->has_top ? plane + ((i64)(r - 1) * cols + c) * 128 + k * 64 + 7 * 8 : plane;
    const i32 *lf = e->has_left ? plane + ((i64)r * cols + c - 1) * 128 + k * 64 + 7 : plane;
    i32 t[2] = {0, 0}, l[2] = {0, 0};
    for (i32 j = 0; j < 8; j++) {
        e->top[j] = e->has_top ? up[j] : 0;
        e->left[j] = e->has_left ? lf[8 * j] : 0;
        t[j >> 2] += e->top[j];
        l[j >> 2] += e->left[j];
    }
    i32 both = e->has_top && e->has_left, ht = e->has_top, hl = e->has_left;
    /* 8.3.4.1-8.3.4.3: the diagonal blocks average both edges; upper right prefers the
     * top, lower left the left. */
    for (i32 d = 0; d < 2; d++)
        e->dc[3 * d] = both ? (t[d] + l[d] + 4) >> 3 : hl ? (l[d] + 2) >> 2 : ht ? (t[d] + 2) >> 2 : 128;
    e->dc[1] = ht ? (t[1] + 2) >> 2 : hl ? (l[0] + 2) >> 2 : 128;
    e->dc[2] = hl ? (l[1] + 2) >> 2 : ht ? (t[0] + 2) >> 2 : 128;
    i32 corner = both ? plane[((i64)(r - 1) * cols + c - 1) * 128 + k * 64 + 63] : 0;
    intra_plane(e, corner, 34);
}

/* Whether candidate p can be used with these neighbours. */
DEVICE i32 intra_allowed(const intra_edges *e, i32 p)
{
    return p == 0 || (p == 1 && e->has_top) || (p == 2 && e->has_left) || (p == 3 && e->has_top && e->has_left);
}

/* Sample (x, y) of candidate p's prediction. */
DEVICE i32 intra_sample(const intra_edges *e, i32 p, i32 x, i32 y)
{
    i32 half = e->size / 2;
    switch (p) {
    case 0: return e->dc[((y >> 2) & 1) * 2 + ((x >> 2) & 1)]; /* luma: all four equal */
    case 1: return e->top[x];
    case 2: return e->left[y];
    default: return iclamp((e->a + e->b * (x - (half - 1)) + e->c * (y - (half - 1)) + 16) >> 5, 0, 255);
    }
}

/* The cheapest allowed candidate of four SADs, the first of a tie (DC is always allowed). */
DEVICE i32 intra_pick(const i32 *sad, const intra_edges *e)
{
    i32 best = 0;
    for (i32 p = 1; p < 4; p++)
        if (intra_allowed(e, p) && sad[p] < sad[best]) best = p;
    return best;
}

/* The macroblock of thread group t of the group order[first .. first + count), or -1 past
 * its end or outside the mask. */
DEVICE i32 intra_group_mb(i32 t, const i32 *order, i32 first, i32 count, i32 cols, const u8 *mask, i32 *r, i32 *c)
{
    if (t >= count) return -1;
    i32 m = order[first + t];
    if (!mask[m]) return -1;
    *r = m / cols;
    *c = m % cols;
    return m;
}

/* Quantised luma DC levels (4x4 raster of the blocks) from the sixteen DC coefficients by blkIdx. */
DEVICE void intra_luma_dc_levels(const i32 *dccoef, i32 qp, i32 *levels)
{
    i32 raster[16], h[16];
    for (i32 b = 0; b < 16; b++) raster[TF_BLK_Y[b] * 4 + TF_BLK_X[b]] = dccoef[b];
    tf_hadamard4(raster, h);
    for (i32 i = 0; i < 16; i++) levels[i] = tf_quantise_dc((h[i] + 1) >> 1, qp, 1);
}

/* Quantised chroma DC levels of one component (2x2 raster) from its four DC coefficients. */
DEVICE void intra_chroma_dc_levels(const i32 *dccoef, i32 qpc, i32 *levels)
{
    i32 h[4];
    tf_hadamard2(dccoef, h);
    for (i32 i = 0; i < 4; i++) levels[i] = tf_quantise_dc(h[i], qpc, 1);
}

/* One pass over a 16x16 luma or 8x8 chroma block of source `src`: the SAD of each
 * candidate (allowed or not) added into sad[4], and for each 4x4 block (raster of the
 * blocks) the source's sum and the plane prediction's sum. */
DEVICE void intra_survey(const intra_edges *e, const i32 *src, i32 *sad, i32 *src_sum, i32 *plane_sum)
{
    i32 n = e->size / 4, half = e->size / 2;
    for (i32 by = 0; by < n; by++)
        for (i32 bx = 0; bx < n; bx++) {
            i32 dc = e->dc[(by & 1) * 2 + (bx & 1)], ss = 0, ps = 0;
            for (i32 y = 4 * by; y < 4 * by + 4; y++) {
                i32 left = e->left[y], row = e->a + e->c * (y - (half - 1)) + 16;
                for (i32 x = 4 * bx; x < 4 * bx + 4; x++) {
                    i32 v = src[y * e->size + x];
                    i32 plane = iclamp((row + e->b * (x - (half - 1))) >> 5, 0, 255);
                    sad[0] += iabs(v - dc);
                    sad[1] += iabs(v - e->top[x]);
                    sad[2] += iabs(v - left);
                    sad[3] += iabs(v - plane);
                    ss += v;
                    ps += plane;
                }
            }
            src_sum[by * n + bx] = ss;
            plane_sum[by * n + bx] = ps;
        }
}

/* The sum of candidate p's prediction over the 4x4 block (bx, by) (4-sample units). */
DEVICE i32 intra_pred_sum(const intra_edges *e, i32 p, i32 bx, i32 by, const i32 *plane_sum)
{
    i32 sum = 0;
    switch (p) {
    case 0: return 16 * e->dc[(by & 1) * 2 + (bx & 1)];
    case 1:
        for (i32 x = 4 * bx; x < 4 * bx + 4; x++) sum += 4 * e->top[x];
        return sum;
    case 2:
        for (i32 y = 4 * by; y < 4 * by + 4; y++) sum += 4 * e->left[y];
        return sum;
    default: return plane_sum[by * (e->size / 4) + bx];
    }
}

/* source_cost: one thread per macroblock; the least luma SAD of any allowed Intra16x16
 * prediction made from the source's own neighbours. */
KERNEL intra_source_cost(i32 rows, i32 cols, const i32 *src_y, i32 *cost)
{
    i32 m = global_index();
    if (m >= rows * cols) return;
    intra_edges e;
    intra_luma_edges(src_y, m / cols, m % cols, cols, &e);
    i32 sad[4] = {0, 0, 0, 0}, src_sum[16], plane_sum[16];
    intra_survey(&e, src_y + (i64)m * 256, sad, src_sum, plane_sum);
    i32 best = INTRA_UNAVAILABLE;
    for (i32 p = 0; p < 4; p++)
        if (intra_allowed(&e, p)) best = imin(best, sad[p]);
    cost[m] = best;
}

/* Forward transform and quantisation of the 4x4 block at (bx, by): levels in zigzag order
 * (the DC position included, as quantised; the callers drop it). */
DEVICE void intra_block_levels(const intra_edges *e, i32 p, const i32 *src, i32 bx, i32 by, i32 qp, i32 *zz)
{
    i32 res[16], w[16];
    for (i32 y = 0; y < 4; y++)
        for (i32 x = 0; x < 4; x++) res[4 * y + x] = src[(by + y) * e->size + bx + x] - intra_sample(e, p, bx + x, by + y);
    tf_forward4x4(res, w);
    tf_quantise(w, qp, 1, w);
    tf_scan(w, zz);
}

/* The decoder's block from its AC levels (zigzag, position 0 ignored) and dequantised DC:
 * prediction plus inverse transform, clipped, into out (row pitch e->size). */
DEVICE void intra_block_reconstruct(const intra_edges *e, i32 p, const i32 *zz, i32 dc, i32 qp, i32 bx, i32 by, i32 *out)
{
    i32 ac[16], d[16], res[16];
    for (i32 k = 0; k < 16; k++) ac[k] = k ? zz[k] : 0;
    tf_unscan(ac, d);
    tf_dequantise(d, qp, d);
    d[0] = dc;
    tf_inverse4x4(d, res);
    for (i32 y = 0; y < 4; y++)
        for (i32 x = 0; x < 4; x++)
            out[(by + y) * e->size + bx + x] = iclamp(intra_sample(e, p, bx + x, by + y) + res[4 * y + x], 0, 255);
}

/* One group: thread 24 t + s is block s of macroblock t (see the top of this file). */
KERNEL intra_code(const i32 *order, i32 first, i32 count, i32 cols, i32 qp, const u8 *mask, const i32 *src_y, const i32 *src_c, i32 *rec_y, i32 *rec_c, i32 *kind, i32 *luma_mode, i32 *chroma_mode, i32 *luma_dc, i32 *luma, i32 *chroma_dc, i32 *chroma_ac)
{
    i32 i = global_index(), r, c;
    i32 m = intra_group_mb(i / 24, order, first, count, cols, mask, &r, &c);
    if (m < 0) return;
    i32 s = i % 24;
    i32 dccoef[16], lv[16], dc[16], zz[16];
    if (s < 16) {
        intra_edges e;
        intra_luma_edges(rec_y, r, c, cols, &e);
        const i32 *src = src_y + (i64)m * 256;
        i32 sad[4] = {0, 0, 0, 0}, src_sum[16], plane_sum[16];
        intra_survey(&e, src, sad, src_sum, plane_sum);
        i32 p = intra_pick(sad, &e);
        /* a block's DC coefficient is its residual's sum */
        for (i32 b = 0; b < 16; b++) {
            i32 bx = TF_BLK_X[b], by = TF_BLK_Y[b];
            dccoef[b] = src_sum[4 * by + bx] - intra_pred_sum(&e, p, bx, by, plane_sum);
        }
        intra_luma_dc_levels(dccoef, qp, lv);
        tf_dequantise_luma_dc(lv, qp, dc);
        i32 bx = 4 * TF_BLK_X[s], by = 4 * TF_BLK_Y[s];
        intra_block_levels(&e, p, src, bx, by, qp, zz);
        i32 *out = luma + (i64)m * 256 + s * 16;
        for (i32 k = 1; k < 16; k++) out[k] = zz[k];
        intra_block_reconstruct(&e, p, zz, dc[TF_BLK_Y[s] * 4 + TF_BLK_X[s]], qp, bx, by, rec_y + (i64)m * 256);
        if (s == 0) {
            kind[m] = INTRA_I16X16;
            luma_mode[m] = INTRA_LUMA_MODES[p];
            tf_scan(lv, zz);
            for (i32 k = 0; k < 16; k++) luma_dc[(i64)m * 16 + k] = zz[k];
        }
    } else {
        i32 k = (s - 16) / 4, b = (s - 16) % 4, qpc = tf_chroma_qp(qp, 0);
        intra_edges e[2];
        intra_chroma_edges(rec_c, r, c, cols, 0, &e[0]);
        intra_chroma_edges(rec_c, r, c, cols, 1, &e[1]);
        i32 sad[4] = {0, 0, 0, 0}, src_sum[2][4], plane_sum[2][4];
        for (i32 j = 0; j < 2; j++) intra_survey(&e[j], src_c + (i64)m * 128 + j * 64, sad, src_sum[j], plane_sum[j]);
        i32 p = intra_pick(sad, &e[0]);
        const i32 *src = src_c + (i64)m * 128 + k * 64;
        for (i32 j = 0; j < 4; j++)
            dccoef[j] = src_sum[k][j] - intra_pred_sum(&e[k], p, j & 1, j >> 1, plane_sum[k]);
        intra_chroma_dc_levels(dccoef, qpc, lv);
        tf_dequantise_chroma_dc(lv, qpc, dc);
        i32 bx = 4 * (b & 1), by = 4 * (b >> 1);
        intra_block_levels(&e[k], p, src, bx, by, qpc, zz);
        i32 *out = chroma_ac + (i64)m * 120 + k * 60 + b * 15;
        for (i32 j = 1; j < 16; j++) out[j - 1] = zz[j];
        intra_block_reconstruct(&e[k], p, zz, dc[b], qpc, bx, by, rec_c + (i64)m * 128 + k * 64);
        if (b == 0)
            for (i32 j = 0; j < 4; j++) chroma_dc[(i64)m * 8 + k * 4 + j] = lv[j];
        if (s == 16) chroma_mode[m] = INTRA_CHROMA_MODES[p];
    }
}

/* After every group: the coded block patterns of the macroblocks order[0 .. count), one thread each. */
KERNEL intra_cbp(const i32 *order, i32 count, const u8 *mask, const i32 *luma, const i32 *chroma_dc, const i32 *chroma_ac, i32 *cbp_luma, i32 *cbp_chroma)
{
    i32 t = global_index();
    if (t >= count) return;
    i32 m = order[t];
    if (!mask[m]) return;
    i32 any_luma = 0, any_ac = 0, any_dc = 0;
    const i32 *all = luma + (i64)m * 256;
    for (i32 b = 0; b < 16; b++)
        for (i32 k = 1; k < 16; k++) any_luma |= all[b * 16 + k] != 0;
    for (i32 k = 0; k < 120; k++) any_ac |= chroma_ac[(i64)m * 120 + k] != 0;
    for (i32 k = 0; k < 8; k++) any_dc |= chroma_dc[(i64)m * 8 + k] != 0;
    cbp_luma[m] = any_luma ? 15 : 0;
    cbp_chroma[m] = any_ac ? 2 : any_dc ? 1 : 0;
}
