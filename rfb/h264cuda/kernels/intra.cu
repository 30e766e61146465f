/* Intra16x16 macroblocks as a wavefront, equal to rfb/h264cuda/model/intra.py.
 *
 * Macroblock (r, c) predicts from the reconstruction of (r - 1, c), (r, c - 1) and
 * (r - 1, c - 1), so the macroblocks of one anti-diagonal r + c = step are independent
 * of each other. The driver (rfb/h264cuda/intra.py) runs three launches per step:
 *
 *   intra_sad          one thread per (macroblock, candidate mode): 4 luma + 4 chroma
 *                      SADs of source against prediction (INT32_MAX where the mode's
 *                      neighbours are missing);
 *   intra_forward      one thread per (macroblock, 4x4 block): 16 luma + 8 chroma; picks
 *                      the cheapest mode (the first of a tie), predicts its block,
 *                      transforms the residual, writes the AC levels and keeps the DC
 *                      coefficient for the next launch;
 *   intra_reconstruct  one thread per (macroblock, 4x4 block): the DC Hadamard and its
 *                      quantisation (each thread of a component recomputes it from the
 *                      sixteen or four DCs, so no further launch is needed), then the
 *                      decoder's dequantisation and inverse transform, prediction plus
 *                      residual into the reconstruction; the first thread of each
 *                      macroblock writes the DC levels and the coded block patterns.
 *
 * Layout (the model's arrays, C order, int32): luma (R, C, 16, 16), chroma
 * (R, C, 2, 8, 8), mask (R, C) u8; MacroblockArrays fields as model/picture.py.
 * Scratch: sad (R, C, 8), dccoef (R, C, 24).
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

/* SAD of candidate p against a size x size source block (row pitch = size). */
DEVICE i32 intra_sad_of(const intra_edges *e, i32 p, const i32 *src)
{
    i32 sad = 0;
    for (i32 y = 0; y < e->size; y++)
        for (i32 x = 0; x < e->size; x++) sad += iabs(src[y * e->size + x] - intra_sample(e, p, x, y));
    return sad;
}

/* The cheapest candidate of four SADs, the first of a tie. */
DEVICE i32 intra_pick(const i32 *sad)
{
    i32 best = 0;
    for (i32 p = 1; p < 4; p++)
        if (sad[p] < sad[best]) best = p;
    return best;
}

/* The macroblock of thread group t on anti-diagonal step, or -1 past its end or outside the mask. */
DEVICE i32 intra_diagonal_mb(i32 t, i32 step, i32 rows, i32 cols, const u8 *mask, i32 *r, i32 *c)
{
    i32 r0 = imax(0, step - cols + 1), r1 = imin(rows - 1, step);
    if (t > r1 - r0) return -1;
    *r = r0 + t;
    *c = step - *r;
    i32 m = *r * cols + *c;
    return mask[m] ? m : -1;
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

/* source_cost: one thread per macroblock; the least luma SAD of any allowed Intra16x16
 * prediction made from the source's own neighbours. */
KERNEL intra_source_cost(i32 rows, i32 cols, const i32 *src_y, i32 *cost)
{
    i32 m = global_index();
    if (m >= rows * cols) return;
    intra_edges e;
    intra_luma_edges(src_y, m / cols, m % cols, cols, &e);
    i32 best = INTRA_UNAVAILABLE;
    for (i32 p = 0; p < 4; p++)
        if (intra_allowed(&e, p)) best = imin(best, intra_sad_of(&e, p, src_y + (i64)m * 256));
    cost[m] = best;
}

/* Step 1 of a diagonal: thread 8 t + s is candidate s (luma 0-3, chroma 4-7) of macroblock t. */
KERNEL intra_sad(i32 step, i32 rows, i32 cols, const u8 *mask, const i32 *src_y, const i32 *src_c, const i32 *rec_y, const i32 *rec_c, i32 *sad)
{
    i32 i = global_index(), r, c;
    i32 m = intra_diagonal_mb(i / 8, step, rows, cols, mask, &r, &c);
    if (m < 0) return;
    i32 s = i % 8;
    intra_edges e;
    i32 cost;
    if (s < 4) {
        intra_luma_edges(rec_y, r, c, cols, &e);
        cost = intra_allowed(&e, s) ? intra_sad_of(&e, s, src_y + (i64)m * 256) : INTRA_UNAVAILABLE;
    } else {
        cost = 0;
        for (i32 k = 0; k < 2; k++) {
            intra_chroma_edges(rec_c, r, c, cols, k, &e);
            if (!intra_allowed(&e, s - 4)) {
                cost = INTRA_UNAVAILABLE;
                break;
            }
            cost += intra_sad_of(&e, s - 4, src_c + (i64)m * 128 + k * 64);
        }
    }
    sad[(i64)m * 8 + s] = cost;
}

/* Step 2 of a diagonal: thread 24 t + s is block s of macroblock t (luma blkIdx 0-15, then
 * chroma Cb 16-19, Cr 20-23 in raster order): prediction, forward transform, AC levels. */
KERNEL intra_forward(i32 step, i32 rows, i32 cols, i32 qp, const u8 *mask, const i32 *src_y, const i32 *src_c, const i32 *rec_y, const i32 *rec_c, const i32 *sad, i32 *dccoef, i32 *kind, i32 *luma_mode, i32 *chroma_mode, i32 *luma, i32 *chroma_ac)
{
    i32 i = global_index(), r, c;
    i32 m = intra_diagonal_mb(i / 24, step, rows, cols, mask, &r, &c);
    if (m < 0) return;
    i32 s = i % 24;
    intra_edges e;
    i32 res[16], w[16], lv[16], zz[16];
    if (s < 16) {
        i32 p = intra_pick(sad + (i64)m * 8);
        intra_luma_edges(rec_y, r, c, cols, &e);
        i32 bx = 4 * TF_BLK_X[s], by = 4 * TF_BLK_Y[s];
        const i32 *src = src_y + (i64)m * 256;
        for (i32 y = 0; y < 4; y++)
            for (i32 x = 0; x < 4; x++)
                res[4 * y + x] = src[(by + y) * 16 + bx + x] - intra_sample(&e, p, bx + x, by + y);
        tf_forward4x4(res, w);
        dccoef[(i64)m * 24 + s] = w[0];
        tf_quantise(w, qp, 1, lv);
        tf_scan(lv, zz);
        i32 *out = luma + (i64)m * 256 + s * 16;
        for (i32 k = 1; k < 16; k++) out[k] = zz[k];
        if (s == 0) {
            kind[m] = INTRA_I16X16;
            luma_mode[m] = INTRA_LUMA_MODES[p];
        }
    } else {
        i32 k = (s - 16) / 4, b = (s - 16) % 4;
        i32 p = intra_pick(sad + (i64)m * 8 + 4);
        intra_chroma_edges(rec_c, r, c, cols, k, &e);
        i32 bx = 4 * (b & 1), by = 4 * (b >> 1);
        const i32 *src = src_c + (i64)m * 128 + k * 64;
        for (i32 y = 0; y < 4; y++)
            for (i32 x = 0; x < 4; x++)
                res[4 * y + x] = src[(by + y) * 8 + bx + x] - intra_sample(&e, p, bx + x, by + y);
        tf_forward4x4(res, w);
        dccoef[(i64)m * 24 + s] = w[0];
        tf_quantise(w, tf_chroma_qp(qp, 0), 1, lv);
        tf_scan(lv, zz);
        i32 *out = chroma_ac + (i64)m * 120 + k * 60 + b * 15;
        for (i32 j = 1; j < 16; j++) out[j - 1] = zz[j];
        if (s == 16) chroma_mode[m] = INTRA_CHROMA_MODES[p];
    }
}

/* Step 3 of a diagonal, threads as intra_forward: DC levels, the decoder's residual, the
 * reconstruction; thread 0 of each macroblock writes the luma DC levels and both coded
 * block patterns, threads 16 and 20 their component's chroma DC levels. */
KERNEL intra_reconstruct(i32 step, i32 rows, i32 cols, i32 qp, const u8 *mask, i32 *rec_y, i32 *rec_c, const i32 *sad, const i32 *dccoef, const i32 *luma, const i32 *chroma_ac, i32 *luma_dc, i32 *chroma_dc, i32 *cbp_luma, i32 *cbp_chroma)
{
    i32 i = global_index(), r, c;
    i32 m = intra_diagonal_mb(i / 24, step, rows, cols, mask, &r, &c);
    if (m < 0) return;
    i32 s = i % 24, qpc = tf_chroma_qp(qp, 0);
    const i32 *dcc = dccoef + (i64)m * 24;
    intra_edges e;
    i32 zz[16], lv[16], d[16], res[16], dc[16];
    if (s < 16) {
        i32 p = intra_pick(sad + (i64)m * 8);
        intra_luma_dc_levels(dcc, qp, lv);
        tf_dequantise_luma_dc(lv, qp, dc);
        const i32 *ac = luma + (i64)m * 256 + s * 16;
        zz[0] = 0;
        for (i32 k = 1; k < 16; k++) zz[k] = ac[k];
        tf_unscan(zz, d);
        tf_dequantise(d, qp, d);
        d[0] = dc[TF_BLK_Y[s] * 4 + TF_BLK_X[s]];
        tf_inverse4x4(d, res);
        intra_luma_edges(rec_y, r, c, cols, &e);
        i32 bx = 4 * TF_BLK_X[s], by = 4 * TF_BLK_Y[s];
        i32 *out = rec_y + (i64)m * 256;
        for (i32 y = 0; y < 4; y++)
            for (i32 x = 0; x < 4; x++)
                out[(by + y) * 16 + bx + x] = iclamp(intra_sample(&e, p, bx + x, by + y) + res[4 * y + x], 0, 255);
        if (s == 0) {
            tf_scan(lv, zz);
            for (i32 k = 0; k < 16; k++) luma_dc[(i64)m * 16 + k] = zz[k];
            i32 any_luma = 0, any_ac = 0, any_dc = 0;
            const i32 *all = luma + (i64)m * 256;
            for (i32 b = 0; b < 16; b++)
                for (i32 k = 1; k < 16; k++) any_luma |= all[b * 16 + k] != 0;
            const i32 *cac = chroma_ac + (i64)m * 120;
            for (i32 k = 0; k < 120; k++) any_ac |= cac[k] != 0;
            for (i32 k = 0; k < 2; k++) {
                intra_chroma_dc_levels(dcc + 16 + 4 * k, qpc, lv);
                for (i32 j = 0; j < 4; j++) any_dc |= lv[j] != 0;
            }
            cbp_luma[m] = any_luma ? 15 : 0;
            cbp_chroma[m] = any_ac ? 2 : any_dc ? 1 : 0;
        }
    } else {
        i32 k = (s - 16) / 4, b = (s - 16) % 4;
        i32 p = intra_pick(sad + (i64)m * 8 + 4);
        intra_chroma_dc_levels(dcc + 16 + 4 * k, qpc, lv);
        tf_dequantise_chroma_dc(lv, qpc, dc);
        const i32 *ac = chroma_ac + (i64)m * 120 + k * 60 + b * 15;
        zz[0] = 0;
        for (i32 j = 1; j < 16; j++) zz[j] = ac[j - 1];
        tf_unscan(zz, d);
        tf_dequantise(d, qpc, d);
        d[0] = dc[b];
        tf_inverse4x4(d, res);
        intra_chroma_edges(rec_c, r, c, cols, k, &e);
        i32 bx = 4 * (b & 1), by = 4 * (b >> 1);
        i32 *out = rec_c + (i64)m * 128 + k * 64;
        for (i32 y = 0; y < 4; y++)
            for (i32 x = 0; x < 4; x++)
                out[(by + y) * 8 + bx + x] = iclamp(intra_sample(&e, p, bx + x, by + y) + res[4 * y + x], 0, 255);
        if (b == 0)
            for (i32 j = 0; j < 4; j++) chroma_dc[(i64)m * 8 + k * 4 + j] = lv[j];
    }
}
