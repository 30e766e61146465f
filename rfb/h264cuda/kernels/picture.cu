/* The picture as the encoder codes it: NV12 in, whole macroblocks out.
 *
 * The coded size is the picture rounded up to 16; the samples beyond the picture
 * repeat its last row and column (the SPS crops them off again), and chroma is split
 * out of NV12's interleaved plane into one plane per component, as the model's
 * encoder.ModelEncoder.encode does.
 */
#include "portable.h"

/* One thread per luma sample of the coded picture (cols x rows). */
KERNEL pad_luma(const u8 *y, i32 pitch, i32 width, i32 height, u8 *out, i32 cols, i32 rows)
{
    i32 i = global_index();
    if (i >= cols * rows) return;
    i32 r = i / cols, c = i % cols;
    out[i] = y[(i64)imin(r, height - 1) * pitch + imin(c, width - 1)];
}

/* One thread per chroma sample pair of the coded picture: out is (2, rows/2, cols/2). */
KERNEL pad_chroma(const u8 *uv, i32 pitch, i32 width, i32 height, u8 *out, i32 cols, i32 rows)
{
    i32 half_cols = cols / 2, half_rows = rows / 2;
    i32 i = global_index();
    if (i >= half_cols * half_rows) return;
    i32 r = imin(i / half_cols, height / 2 - 1), c = imin(i % half_cols, width / 2 - 1);
    const u8 *pair = uv + (i64)r * pitch + 2 * c;
    out[i] = pair[0];
    out[half_cols * half_rows + i] = pair[1];
}
