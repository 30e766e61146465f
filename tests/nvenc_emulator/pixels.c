/*
 * Input surfaces -> padded planar 4:2:0, the form the slice writer consumes.
 *
 * Layouts follow nvEncodeAPI.h and NVIDIA's samples for a surface of `pitch`
 * bytes per row and `surf_h` rows (the registered/allocated height):
 *   NV12: Y plane, then interleaved U,V rows at ptr + pitch * surf_h.
 *   IYUV: Y, then U then V planes of pitch (pitch+1)/2 and surf_h/2 rows.
 *   YV12: as IYUV with V before U.
 *   ARGB: 32-bit words A8R8G8B8 with B in the lowest byte: B,G,R,A in memory.
 *   ABGR: 32-bit words A8B8G8R8 with R in the lowest byte: R,G,B,A in memory.
 * RGB is converted with BT.601 (or BT.709) coefficients, limited (or full)
 * range; chroma is the rounded mean of the four pixels' chroma. Alpha is ignored.
 */
#include <string.h>

#include "emu.h"

int fmt_supported(NV_ENC_BUFFER_FORMAT fmt)
{
    return fmt_bytes_per_pixel(fmt) != 0;
}

int fmt_bytes_per_pixel(NV_ENC_BUFFER_FORMAT fmt)
{
    switch (fmt) {
    case NV_ENC_BUFFER_FORMAT_NV12:
    case NV_ENC_BUFFER_FORMAT_IYUV:
    case NV_ENC_BUFFER_FORMAT_YV12:
        return 1;
    case NV_ENC_BUFFER_FORMAT_ARGB:
    case NV_ENC_BUFFER_FORMAT_ABGR:
        return 4;
    default:
        return 0;
    }
}

const char *fmt_name(NV_ENC_BUFFER_FORMAT fmt)
{
    switch (fmt) {
    case NV_ENC_BUFFER_FORMAT_UNDEFINED: return "NV_ENC_BUFFER_FORMAT_UNDEFINED";
    case NV_ENC_BUFFER_FORMAT_NV12: return "NV_ENC_BUFFER_FORMAT_NV12";
    case NV_ENC_BUFFER_FORMAT_YV12: return "NV_ENC_BUFFER_FORMAT_YV12";
    case NV_ENC_BUFFER_FORMAT_IYUV: return "NV_ENC_BUFFER_FORMAT_IYUV";
    case NV_ENC_BUFFER_FORMAT_YUV444: return "NV_ENC_BUFFER_FORMAT_YUV444";
    case NV_ENC_BUFFER_FORMAT_YUV420_10BIT: return "NV_ENC_BUFFER_FORMAT_YUV420_10BIT";
    case NV_ENC_BUFFER_FORMAT_YUV444_10BIT: return "NV_ENC_BUFFER_FORMAT_YUV444_10BIT";
    case NV_ENC_BUFFER_FORMAT_ARGB: return "NV_ENC_BUFFER_FORMAT_ARGB";
    case NV_ENC_BUFFER_FORMAT_ARGB10: return "NV_ENC_BUFFER_FORMAT_ARGB10";
    case NV_ENC_BUFFER_FORMAT_AYUV: return "NV_ENC_BUFFER_FORMAT_AYUV";
    case NV_ENC_BUFFER_FORMAT_ABGR: return "NV_ENC_BUFFER_FORMAT_ABGR";
    case NV_ENC_BUFFER_FORMAT_ABGR10: return "NV_ENC_BUFFER_FORMAT_ABGR10";
    case NV_ENC_BUFFER_FORMAT_U8: return "NV_ENC_BUFFER_FORMAT_U8";
    default: return "(unknown NV_ENC_BUFFER_FORMAT)";
    }
}

size_t fmt_frame_span(NV_ENC_BUFFER_FORMAT fmt, uint32_t pitch, uint32_t width, uint32_t height)
{
    size_t p = pitch, h = height;
    switch (fmt) {
    case NV_ENC_BUFFER_FORMAT_NV12: /* last chroma row needs only `width` bytes */
        return p * h + p * (h / 2 - 1) + width;
    case NV_ENC_BUFFER_FORMAT_IYUV:
    case NV_ENC_BUFFER_FORMAT_YV12: {
        size_t cp = (p + 1) / 2;
        return p * h + cp * (h / 2) + cp * (h / 2 - 1) + width / 2;
    }
    case NV_ENC_BUFFER_FORMAT_ARGB:
    case NV_ENC_BUFFER_FORMAT_ABGR:
        return p * (h - 1) + (size_t)width * 4;
    default:
        return 0;
    }
}

/* Replicates the last of `n` samples of a row up to `padded` samples. */
static void row_pad(uint8_t *row, int n, int padded)
{
    if (padded > n)
        memset(row + n, row[n - 1], (size_t)(padded - n));
}

/* Copies `n` samples of a row, then pads. */
static void row_copy(uint8_t *dst, const uint8_t *src, int n, int padded)
{
    memcpy(dst, src, (size_t)n);
    row_pad(dst, n, padded);
}

/* Splits `n` interleaved U,V pairs (one loop with a constant stride, which the
 * compiler vectorises), then pads both rows. */
static void row_deinterleave(uint8_t *u, uint8_t *v, const uint8_t *uv, int n, int padded)
{
    for (int i = 0; i < n; i++) {
        u[i] = uv[2 * i];
        v[i] = uv[2 * i + 1];
    }
    row_pad(u, n, padded);
    row_pad(v, n, padded);
}

static void pad_rows(uint8_t *plane, int stride, int rows, int padded_rows)
{
    for (int r = rows; r < padded_rows; r++)
        memcpy(plane + (size_t)r * (size_t)stride, plane + (size_t)(rows - 1) * (size_t)stride, (size_t)stride);
}

/* Fixed-point (x 2^16) conversion coefficients. */
typedef struct {
    int yr, yg, yb, y_off;
    int ur, ug, ub;
    int vr, vg, vb;
} rgb_coeffs;

static rgb_coeffs make_coeffs(const emu_rgb_matrix *m)
{
    double kr = m->bt709 ? 0.2126 : 0.299, kb = m->bt709 ? 0.0722 : 0.114, kg = 1.0 - kr - kb;
    double ys = m->full_range ? 1.0 : 219.0 / 255.0, cs = m->full_range ? 1.0 : 224.0 / 255.0;
    rgb_coeffs c;
    double s = 65536.0;
    c.yr = (int)(kr * ys * s + 0.5);
    c.yg = (int)(kg * ys * s + 0.5);
    c.yb = (int)(kb * ys * s + 0.5);
    c.y_off = m->full_range ? 0 : 16;
    /* Cb = (B - Y') / (2 (1 - kb)), Cr = (R - Y') / (2 (1 - kr)) */
    double cb = cs / (2.0 * (1.0 - kb)), cr = cs / (2.0 * (1.0 - kr));
    c.ur = (int)(-kr * cb * s - 0.5);
    c.ug = (int)(-kg * cb * s - 0.5);
    c.ub = (int)((1.0 - kb) * cb * s + 0.5);
    c.vr = (int)((1.0 - kr) * cr * s + 0.5);
    c.vg = (int)(-kg * cr * s - 0.5);
    c.vb = (int)(-kb * cr * s - 0.5);
    return c;
}

static uint8_t clamp8(int v)
{
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static void rgb_to_planes(const uint8_t *src, uint32_t pitch, int ri, int gi, int bi,
                          int width, int height, const emu_rgb_matrix *m,
                          uint8_t *y, uint8_t *u, uint8_t *v, int ys, int cs)
{
    rgb_coeffs c = make_coeffs(m);
    for (int r = 0; r < height; r++) {
        const uint8_t *px = src + (size_t)r * pitch;
        uint8_t *yo = y + (size_t)r * (size_t)ys;
        for (int x = 0; x < width; x++, px += 4)
            yo[x] = clamp8(((c.yr * px[ri] + c.yg * px[gi] + c.yb * px[bi] + 32768) >> 16) + c.y_off);
    }
    for (int r = 0; r < height / 2; r++) {
        const uint8_t *p0 = src + (size_t)(2 * r) * pitch, *p1 = p0 + pitch;
        uint8_t *uo = u + (size_t)r * (size_t)cs, *vo = v + (size_t)r * (size_t)cs;
        for (int x = 0; x < width / 2; x++) {
            const uint8_t *a = p0 + 8 * x, *b = p1 + 8 * x;
            int R = a[ri] + a[4 + ri] + b[ri] + b[4 + ri];
            int G = a[gi] + a[4 + gi] + b[gi] + b[4 + gi];
            int B = a[bi] + a[4 + bi] + b[bi] + b[4 + bi];
            /* sums of four pixels: divide by 4 inside the rounding shift */
            uo[x] = clamp8(((c.ur * R + c.ug * G + c.ub * B + (1 << 17)) >> 18) + 128);
            vo[x] = clamp8(((c.vr * R + c.vg * G + c.vb * B + (1 << 17)) >> 18) + 128);
        }
    }
}

void pixels_to_planes(NV_ENC_BUFFER_FORMAT fmt, const uint8_t *src, uint32_t pitch,
                      uint32_t surf_h, uint32_t width, uint32_t height,
                      const emu_rgb_matrix *m, uint8_t *y, uint8_t *u, uint8_t *v,
                      int mb_w, int mb_h)
{
    const int ys = mb_w * 16, cs = mb_w * 8;
    const int w = (int)width, h = (int)height, cw = w / 2, ch = h / 2;
    switch (fmt) {
    case NV_ENC_BUFFER_FORMAT_NV12: {
        for (int r = 0; r < h; r++)
            row_copy(y + (size_t)r * (size_t)ys, src + (size_t)r * pitch, w, ys);
        const uint8_t *uv = src + (size_t)pitch * surf_h;
        for (int r = 0; r < ch; r++)
            row_deinterleave(u + (size_t)r * (size_t)cs, v + (size_t)r * (size_t)cs, uv + (size_t)r * pitch, cw, cs);
        break;
    }
    case NV_ENC_BUFFER_FORMAT_IYUV:
    case NV_ENC_BUFFER_FORMAT_YV12: {
        for (int r = 0; r < h; r++)
            row_copy(y + (size_t)r * (size_t)ys, src + (size_t)r * pitch, w, ys);
        size_t cp = ((size_t)pitch + 1) / 2;
        const uint8_t *first = src + (size_t)pitch * surf_h, *second = first + cp * (surf_h / 2);
        const uint8_t *pu = fmt == NV_ENC_BUFFER_FORMAT_IYUV ? first : second;
        const uint8_t *pv = fmt == NV_ENC_BUFFER_FORMAT_IYUV ? second : first;
        for (int r = 0; r < ch; r++) {
            row_copy(u + (size_t)r * (size_t)cs, pu + (size_t)r * cp, cw, cs);
            row_copy(v + (size_t)r * (size_t)cs, pv + (size_t)r * cp, cw, cs);
        }
        break;
    }
    case NV_ENC_BUFFER_FORMAT_ARGB: /* B,G,R,A in memory */
    case NV_ENC_BUFFER_FORMAT_ABGR: /* R,G,B,A in memory */
        if (fmt == NV_ENC_BUFFER_FORMAT_ARGB)
            rgb_to_planes(src, pitch, 2, 1, 0, w, h, m, y, u, v, ys, cs);
        else
            rgb_to_planes(src, pitch, 0, 1, 2, w, h, m, y, u, v, ys, cs);
        for (int r = 0; r < h; r++)
            row_pad(y + (size_t)r * (size_t)ys, w, ys);
        for (int r = 0; r < ch; r++) {
            row_pad(u + (size_t)r * (size_t)cs, cw, cs);
            row_pad(v + (size_t)r * (size_t)cs, cw, cs);
        }
        break;
    default:
        return;
    }
    pad_rows(y, ys, h, mb_h * 16);
    pad_rows(u, cs, ch, mb_h * 8);
    pad_rows(v, cs, ch, mb_h * 8);
}
