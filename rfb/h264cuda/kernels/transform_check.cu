/* The functions of transform.h, one block per thread, so the test suite can compare
 * each with the model on random blocks (tests/h264cuda/test_kernels_transform.py).
 * Not used by the encoder.
 */
#include "transform.h"

/* Operation codes of transform_check (the test suite names them in the same order). */
#define TF_CHECK_FORWARD 0
#define TF_CHECK_INVERSE 1
#define TF_CHECK_HADAMARD4 2
#define TF_CHECK_HADAMARD2 3
#define TF_CHECK_QUANTISE 4
#define TF_CHECK_QUANTISE_DC 5
#define TF_CHECK_DEQUANTISE 6
#define TF_CHECK_DEQUANTISE_LUMA_DC 7
#define TF_CHECK_DEQUANTISE_CHROMA_DC 8
#define TF_CHECK_SCAN 9
#define TF_CHECK_UNSCAN 10
#define TF_CHECK_CHROMA_QP 11

/* Block i of `in` (count blocks of 16 i32, 2x2 blocks in the first 4) through operation op, into block i of `out`. */
KERNEL transform_check(i32 op, const i32 *in, i32 *out, i32 count, i32 qp, i32 intra)
{
    i32 i = global_index();
    if (i >= count) return;
    const i32 *a = in + 16 * (i64)i;
    i32 *b = out + 16 * (i64)i;
    switch (op) {
    case TF_CHECK_FORWARD: tf_forward4x4(a, b); break;
    case TF_CHECK_INVERSE: tf_inverse4x4(a, b); break;
    case TF_CHECK_HADAMARD4: tf_hadamard4(a, b); break;
    case TF_CHECK_HADAMARD2: tf_hadamard2(a, b); break;
    case TF_CHECK_QUANTISE: tf_quantise(a, qp, intra, b); break;
    case TF_CHECK_QUANTISE_DC:
        for (i32 k = 0; k < 16; k++) b[k] = tf_quantise_dc(a[k], qp, intra);
        break;
    case TF_CHECK_DEQUANTISE: tf_dequantise(a, qp, b); break;
    case TF_CHECK_DEQUANTISE_LUMA_DC: tf_dequantise_luma_dc(a, qp, b); break;
    case TF_CHECK_DEQUANTISE_CHROMA_DC: tf_dequantise_chroma_dc(a, qp, b); break;
    case TF_CHECK_SCAN: tf_scan(a, b); break;
    case TF_CHECK_UNSCAN: tf_unscan(a, b); break;
    case TF_CHECK_CHROMA_QP: b[0] = tf_chroma_qp(a[0], a[1]); break;
    default: break;
    }
}
