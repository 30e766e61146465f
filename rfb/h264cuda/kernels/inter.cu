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
 */
#include "portable.h"

/* Bits of ue(v) for code number k >= 0: 2 floor(log2(k + 1)) + 1. */
DEVICE i32 ue_length(i32 k)
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
DEVICE i32 se_code_num(i32 v) { return v > 0 ? 2 * v - 1 : -2 * v; }

/* Bits of mvd_l0 for a whole-sample vector (dx, dy) against a zero predictor. */
DEVICE i32 mv_bits(i32 dx, i32 dy) { return ue_length(se_code_num(4 * dx)) + ue_length(se_code_num(4 * dy)); }

/* Sample (x, y) of a plane with the coordinates clamped into it (8.4.2.2's edge extension). */
DEVICE i32 clamped_sample(const u8 *plane, i32 width, i32 height, i32 x, i32 y)
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
    for (i32 j = 0; j < 16; j++) {
        const u8 *row = src + (i64)(y0 + j) * width + x0;
        i32 ry = iclamp(y0 + j + dy, 0, height - 1);
        const u8 *ref_row = ref + (i64)ry * width;
        for (i32 x = 0; x < 16; x++) {
            sad += iabs((i32)row[x] - (i32)ref_row[iclamp(x0 + x + dx, 0, width - 1)]);
        }
    }
    costs[i] = sad + lambda * mv_bits(dx, dy);
}

/* Whether candidate (dx, dy) comes before (ex, ey) in the model's order
 * (|dx| + |dy|, dy, dx): model.inter.candidates. */
DEVICE i32 candidate_before(i32 dx, i32 dy, i32 ex, i32 ey)
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
        if (own[k] < best || (own[k] == best && candidate_before(dx, dy, bx, by))) {
            best = own[k];
            bx = dx;
            by = dy;
        }
    }
    mv[2 * mb] = bx;
    mv[2 * mb + 1] = by;
    cost[mb] = best;
}
