/* Motion vector prediction (8.4.1.3) and the P_Skip vector (8.4.1.1): model.mvpred.
 *
 * Once every macroblock's final vector and kind are known, each macroblock's
 * predictor is a gather of its neighbours' vectors and a median, so one thread per
 * macroblock computes it with no dependency on any other thread. Neighbours: A left,
 * B above, C above right, or D above left where C is outside the picture. Outside the
 * picture a neighbour is "not available"; an intra neighbour is available but has
 * refIdx -1 and vector 0: availability alone decides the substitutions.
 */
#include "portable.h"

/* One neighbour of a macroblock: whether it exists, whether it is inter (refIdx 0),
 * and its vector (0 unless inter). */
typedef struct {
    i32 has, ref0, x, y;
} MvpredNeighbour;

DEVICE MvpredNeighbour mvpred_neighbour(const i32 *mv, const i32 *inter, i32 rows, i32 cols, i32 r, i32 c)
{
    MvpredNeighbour n;
    n.has = 0;
    n.ref0 = 0;
    n.x = 0;
    n.y = 0;
    if (r < 0 || r >= rows || c < 0 || c >= cols) return n;
    i32 i = r * cols + c;
    n.has = 1;
    n.ref0 = inter[i] != 0;
    if (n.ref0) {
        n.x = mv[2 * i];
        n.y = mv[2 * i + 1];
    }
    return n;
}

DEVICE i32 mvpred_median3(i32 a, i32 b, i32 c) { return a + b + c - imin(a, imin(b, c)) - imax(a, imax(b, c)); }

/* One thread per macroblock. mv, mvp, skip: (rows, cols, 2) quarter samples (x, y);
 * inter: (rows, cols), non-zero for inter macroblocks. */
KERNEL mv_predictors(const i32 *mv, const i32 *inter, i32 rows, i32 cols, i32 *mvp, i32 *skip)
{
    i32 i = global_index();
    if (i >= rows * cols) return;
    i32 r = i / cols, c = i % cols;
    MvpredNeighbour a = mvpred_neighbour(mv, inter, rows, cols, r, c - 1);
    MvpredNeighbour b = mvpred_neighbour(mv, inter, rows, cols, r - 1, c);
    MvpredNeighbour cn = mvpred_neighbour(mv, inter, rows, cols, r - 1, c + 1);
    if (!cn.has) cn = mvpred_neighbour(mv, inter, rows, cols, r - 1, c - 1);
    i32 zero_skip = !a.has || !b.has || (a.ref0 && a.x == 0 && a.y == 0) || (b.ref0 && b.x == 0 && b.y == 0);
    if (!b.has && !cn.has && a.has) {
        b = a;
        cn = a;
    }
    i32 px, py;
    if (a.ref0 + b.ref0 + cn.ref0 == 1) {
        MvpredNeighbour only = a.ref0 ? a : (b.ref0 ? b : cn);
        px = only.x;
        py = only.y;
    } else {
        px = mvpred_median3(a.x, b.x, cn.x);
        py = mvpred_median3(a.y, b.y, cn.y);
    }
    mvp[2 * i] = px;
    mvp[2 * i + 1] = py;
    skip[2 * i] = zero_skip ? 0 : px;
    skip[2 * i + 1] = zero_skip ? 0 : py;
}
