/*
 * Bit writing and Annex B NAL packaging.
 *
 * The slice writer emits mostly byte-aligned PCM samples, so the writer keeps
 * fewer than 8 pending bits between calls and `bw_bytes` is a plain memcpy.
 * Emulation prevention is a separate pass over the finished RBSP that copies
 * zero-free runs with memcpy (found with memchr), which keeps a 1080p I_PCM
 * picture (about 3 MB) at memory-bandwidth speed.
 */
#include <string.h>

#include "emu.h"

void bw_init(bitwriter *bw, uint8_t *buf, size_t cap)
{
    bw->buf = buf;
    bw->cap = cap;
    bw->pos = 0;
    bw->acc = 0;
    bw->nbits = 0;
    bw->overflow = 0;
}

static void put_byte(bitwriter *bw, uint8_t b)
{
    if (bw->pos < bw->cap)
        bw->buf[bw->pos++] = b;
    else
        bw->overflow = 1;
}

void bw_u(bitwriter *bw, uint32_t value, int n)
{
    /* Split wide fields so the 32-bit accumulator never holds more than 31 bits. */
    if (n > 16) {
        bw_u(bw, value >> 16, n - 16);
        n = 16;
    }
    if (n <= 0)
        return;
    bw->acc = (bw->acc << n) | (value & ((1u << n) - 1u));
    bw->nbits += n;
    while (bw->nbits >= 8) {
        bw->nbits -= 8;
        put_byte(bw, (uint8_t)(bw->acc >> bw->nbits));
    }
    bw->acc &= (1u << bw->nbits) - 1u;
}

void bw_ue(bitwriter *bw, uint32_t value)
{
    uint64_t v = (uint64_t)value + 1;
    int len = 0;
    while ((v >> len) > 1)
        len++;
    bw_u(bw, 0, len);
    /* the value itself: len+1 bits, top bit 1 */
    if (len + 1 > 32) {
        bw_u(bw, (uint32_t)(v >> 32), len + 1 - 32);
        bw_u(bw, (uint32_t)v, 32);
    } else {
        bw_u(bw, (uint32_t)v, len + 1);
    }
}

void bw_se(bitwriter *bw, int32_t value)
{
    uint32_t code = value > 0 ? (uint32_t)value * 2u - 1u : (uint32_t)(-(int64_t)value) * 2u;
    bw_ue(bw, code);
}

int bw_is_aligned(const bitwriter *bw)
{
    return bw->nbits == 0;
}

void bw_align_zero(bitwriter *bw)
{
    if (bw->nbits)
        bw_u(bw, 0, 8 - bw->nbits);
}

void bw_trailing_bits(bitwriter *bw)
{
    bw_u(bw, 1, 1);
    bw_align_zero(bw);
}

void bw_bytes(bitwriter *bw, const uint8_t *src, size_t n)
{
    if (bw->pos + n > bw->cap) {
        bw->overflow = 1;
        return;
    }
    memcpy(bw->buf + bw->pos, src, n);
    bw->pos += n;
}

size_t bw_size(const bitwriter *bw)
{
    return bw->pos;
}

size_t nal_bound(size_t rbsp_len)
{
    /* start code + header + at most one 0x03 per two input bytes */
    return 4 + 1 + rbsp_len + rbsp_len / 2 + 1;
}

size_t nal_write(uint8_t *dst, size_t cap, int nal_ref_idc, int nal_unit_type,
                 const uint8_t *rbsp, size_t rbsp_len)
{
    if (cap < nal_bound(rbsp_len))
        return 0;
    uint8_t *out = dst;
    *out++ = 0;
    *out++ = 0;
    *out++ = 0;
    *out++ = 1;
    *out++ = (uint8_t)(((nal_ref_idc & 3) << 5) | (nal_unit_type & 31));

    /* `zeros` counts the zero bytes just written to the escaped payload. */
    int zeros = 0;
    size_t i = 0;
    while (i < rbsp_len) {
        if (zeros < 2) {
            /* Copy up to and including the next zero byte in one go. */
            const uint8_t *z = memchr(rbsp + i, 0, rbsp_len - i);
            size_t run = z ? (size_t)(z - (rbsp + i)) : rbsp_len - i;
            if (run) {
                memcpy(out, rbsp + i, run);
                out += run;
                i += run;
                zeros = 0;
                continue;
            }
            *out++ = 0;
            i++;
            zeros++;
            continue;
        }
        /* Two zeros written: a following byte <= 3 needs an emulation prevention byte. */
        if (rbsp[i] <= 3) {
            *out++ = 3;
            zeros = 0;
        }
        if (rbsp[i] == 0) {
            *out++ = 0;
            zeros = 1;
        } else {
            *out++ = rbsp[i];
            zeros = 0;
        }
        i++;
    }
    return (size_t)(out - dst);
}
