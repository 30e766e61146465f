/* The 4x4 integer transforms, the quantiser and the zigzag scan of H.264, per block.
 *
 * DEVICE functions shared by every stage's kernels, each equal bit for bit to its
 * namesake in rfb/h264cuda/model/transform.py (and the scan of model/residual.py);
 * kernels/transform_check.cu exposes them to the test suite, which compares them with
 * the model on random blocks (tests/h264cuda/test_kernels_transform.py).
 *
 * Blocks are i32[16] in raster order (index y * 4 + x) unless a name says zigzag;
 * 2x2 blocks are i32[4] in raster order. `in` and `out` may not alias unless stated.
 * Left shifts of values that may be negative are written as multiplications (a
 * negative left shift is undefined in C11); right shifts of negative values are
 * arithmetic on every compiler we build with (gcc, clang, NVRTC), as NumPy's are.
 */
#ifndef RFB_H264CUDA_TRANSFORM_H
#define RFB_H264CUDA_TRANSFORM_H

#include "portable.h"

/* Zigzag scan of a 4x4 frame block (Table 8-13): scan index -> raster index. */
CONSTANT i32 TF_ZIGZAG[16] = {0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15};

/* luma4x4BlkIdx -> block column and row in 4-sample units (6.4.3). */
CONSTANT i32 TF_BLK_X[16] = {0, 1, 0, 1, 2, 3, 2, 3, 0, 1, 0, 1, 2, 3, 2, 3};
CONSTANT i32 TF_BLK_Y[16] = {0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3};

/* Largest |level| Baseline CAVLC can code. */
#define TF_LEVEL_MAX 2063

/* Quantiser multipliers MF and dequantiser factors v by qp % 6 and position class:
 * 0 (even row, even column), 1 (odd, odd), 2 the rest. */
CONSTANT i32 TF_MF[6][3] = {
    {13107, 5243, 8066}, {11916, 4660, 7490}, {10082, 4194, 6554},
    {9362, 3647, 5825},  {8192, 3355, 5243},  {7282, 2893, 4559},
};
CONSTANT i32 TF_V[6][3] = {{10, 16, 13}, {11, 18, 14}, {13, 20, 16}, {14, 23, 18}, {16, 25, 20}, {18, 29, 23}};

/* QPc for qPI >= 30 (Table 8-15). */
CONSTANT i32 TF_QPC_HIGH[22] = {29, 30, 31, 32, 32, 33, 34, 34, 35, 35, 36,
                                36, 37, 37, 37, 38, 38, 38, 39, 39, 39, 39};

/* The position class of raster index i (see TF_MF). */
DEVICE i32 tf_class(i32 i)
{
    i32 odd_row = (i >> 2) & 1, odd_col = i & 1;
    return odd_row == odd_col ? odd_row : 2;
}

/* QP'c for luma qp and chroma_qp_index_offset (8.5.8). */
DEVICE i32 tf_chroma_qp(i32 qp, i32 offset)
{
    i32 qpi = iclamp(qp + offset, 0, 51);
    return qpi < 30 ? qpi : TF_QPC_HIGH[qpi - 30];
}

/* W = Cf X Cf^T (model forward4x4). */
DEVICE void tf_forward4x4(const i32 *in, i32 *out)
{
    i32 t[16];
    for (i32 r = 0; r < 4; r++) { /* rows: along x */
        const i32 *x = in + 4 * r;
        i32 s03 = x[0] + x[3], d03 = x[0] - x[3], s12 = x[1] + x[2], d12 = x[1] - x[2];
        t[4 * r + 0] = s03 + s12;
        t[4 * r + 1] = 2 * d03 + d12;
        t[4 * r + 2] = s03 - s12;
        t[4 * r + 3] = d03 - 2 * d12;
    }
    for (i32 c = 0; c < 4; c++) { /* then columns */
        i32 x0 = t[c], x1 = t[4 + c], x2 = t[8 + c], x3 = t[12 + c];
        i32 s03 = x0 + x3, d03 = x0 - x3, s12 = x1 + x2, d12 = x1 - x2;
        out[c] = s03 + s12;
        out[4 + c] = 2 * d03 + d12;
        out[8 + c] = s03 - s12;
        out[12 + c] = d03 - 2 * d12;
    }
}

/* The residual r of 8.5.12.2: rows first, then columns, then (x + 32) >> 6 (model inverse4x4). */
DEVICE void tf_inverse4x4(const i32 *in, i32 *out)
{
    i32 t[16];
    for (i32 r = 0; r < 4; r++) {
        const i32 *d = in + 4 * r;
        i32 e0 = d[0] + d[2], e1 = d[0] - d[2], e2 = (d[1] >> 1) - d[3], e3 = d[1] + (d[3] >> 1);
        t[4 * r + 0] = e0 + e3;
        t[4 * r + 1] = e1 + e2;
        t[4 * r + 2] = e1 - e2;
        t[4 * r + 3] = e0 - e3;
    }
    for (i32 c = 0; c < 4; c++) {
        i32 d0 = t[c], d1 = t[4 + c], d2 = t[8 + c], d3 = t[12 + c];
        i32 e0 = d0 + d2, e1 = d0 - d2, e2 = (d1 >> 1) - d3, e3 = d1 + (d3 >> 1);
        out[c] = (e0 + e3 + 32) >> 6;
        out[4 + c] = (e1 + e2 + 32) >> 6;
        out[8 + c] = (e1 - e2 + 32) >> 6;
        out[12 + c] = (e0 - e3 + 32) >> 6;
    }
}

/* A c A with A = [[1 1 1 1], [1 1 -1 -1], [1 -1 -1 1], [1 -1 1 -1]] (model hadamard4). */
DEVICE void tf_hadamard4(const i32 *in, i32 *out)
{
    i32 t[16];
    for (i32 r = 0; r < 4; r++) {
        const i32 *x = in + 4 * r;
        i32 s01 = x[0] + x[1], s23 = x[2] + x[3], d01 = x[0] - x[1], d23 = x[2] - x[3];
        t[4 * r + 0] = s01 + s23;
        t[4 * r + 1] = s01 - s23;
        t[4 * r + 2] = d01 - d23;
        t[4 * r + 3] = d01 + d23;
    }
    for (i32 c = 0; c < 4; c++) {
        i32 x0 = t[c], x1 = t[4 + c], x2 = t[8 + c], x3 = t[12 + c];
        i32 s01 = x0 + x1, s23 = x2 + x3, d01 = x0 - x1, d23 = x2 - x3;
        out[c] = s01 + s23;
        out[4 + c] = s01 - s23;
        out[8 + c] = d01 - d23;
        out[12 + c] = d01 + d23;
    }
}

/* [[1 1], [1 -1]] c [[1 1], [1 -1]] of a 2x2 block (model hadamard2); in may alias out. */
DEVICE void tf_hadamard2(const i32 *in, i32 *out)
{
    i32 a = in[0], b = in[1], c = in[2], d = in[3];
    out[0] = a + b + c + d;
    out[1] = a - b + c - d;
    out[2] = a + b - c - d;
    out[3] = a - b - c + d;
}

/* The quantiser's rounding offset: 1/3 of a step intra, 1/6 inter. */
DEVICE i32 tf_deadzone(i32 qbits, i32 intra) { return (1 << qbits) / (intra ? 3 : 6); }

/* sign(w) min((|w| mf + offset) >> shift, LEVEL_MAX). */
DEVICE i32 tf_quant(i32 w, i32 mf, i32 offset, i32 shift)
{
    i32 mag = imin((iabs(w) * mf + offset) >> shift, TF_LEVEL_MAX);
    return w < 0 ? -mag : mag;
}

/* The level of coefficient w at raster index i (model quantise). */
DEVICE i32 tf_quantise_at(i32 w, i32 i, i32 qp, i32 intra)
{
    i32 qbits = 15 + qp / 6;
    return tf_quant(w, TF_MF[qp % 6][tf_class(i)], tf_deadzone(qbits, intra), qbits);
}

/* Levels of a 4x4 block of coefficients (model quantise); in may alias out. */
DEVICE void tf_quantise(const i32 *in, i32 qp, i32 intra, i32 *out)
{
    for (i32 i = 0; i < 16; i++) out[i] = tf_quantise_at(in[i], i, qp, intra);
}

/* The level of one DC coefficient after its Hadamard (model quantise_dc). */
DEVICE i32 tf_quantise_dc(i32 w, i32 qp, i32 intra)
{
    i32 qbits = 15 + qp / 6;
    return tf_quant(w, TF_MF[qp % 6][0], 2 * tf_deadzone(qbits, intra), qbits + 1);
}

/* c v << qp/6 of the level at raster index i (model dequantise). */
DEVICE i32 tf_dequantise_at(i32 level, i32 i, i32 qp) { return level * TF_V[qp % 6][tf_class(i)] * (1 << (qp / 6)); }

/* A 4x4 block of levels dequantised (model dequantise); in may alias out. */
DEVICE void tf_dequantise(const i32 *in, i32 qp, i32 *out)
{
    for (i32 i = 0; i < 16; i++) out[i] = tf_dequantise_at(in[i], i, qp);
}

/* dcY of 8.5.10 from the 4x4 raster of Intra16x16 DC levels (model dequantise_luma_dc). */
DEVICE void tf_dequantise_luma_dc(const i32 *levels, i32 qp, i32 *out)
{
    i32 f[16];
    tf_hadamard4(levels, f);
    i32 scale = 16 * TF_V[qp % 6][0];
    for (i32 i = 0; i < 16; i++) {
        if (qp >= 36) out[i] = f[i] * scale * (1 << (qp / 6 - 6));
        else out[i] = (f[i] * scale + (1 << (5 - qp / 6))) >> (6 - qp / 6);
    }
}

/* dcC of 8.5.11.2 from one component's 2x2 raster of DC levels (model dequantise_chroma_dc). */
DEVICE void tf_dequantise_chroma_dc(const i32 *levels, i32 qpc, i32 *out)
{
    i32 f[4];
    tf_hadamard2(levels, f);
    i32 scale = 16 * TF_V[qpc % 6][0];
    for (i32 i = 0; i < 4; i++) out[i] = (f[i] * scale * (1 << (qpc / 6))) >> 5;
}

/* Raster -> zigzag order (residual.scan). */
DEVICE void tf_scan(const i32 *raster, i32 *zigzag)
{
    for (i32 k = 0; k < 16; k++) zigzag[k] = raster[TF_ZIGZAG[k]];
}

/* Zigzag -> raster order (residual.unscan). */
DEVICE void tf_unscan(const i32 *zigzag, i32 *raster)
{
    for (i32 k = 0; k < 16; k++) raster[TF_ZIGZAG[k]] = zigzag[k];
}

#endif
