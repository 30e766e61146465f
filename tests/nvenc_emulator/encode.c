/*
 * nvEncEncodePicture: picture type decision, reading the input surface, and
 * writing the access unit ([AUD] [SPS PPS] slice) into the output buffer.
 *
 * Encoding is synchronous: the picture is complete when the call returns, so
 * there is no NV_ENC_ERR_NEED_MORE_INPUT and nothing to flush at EOS.
 */
#include <stdio.h>
#include <string.h>

#include "emu.h"

/* ------------------------------------------------------------------ encode */

typedef struct {
    const uint8_t *ptr;
    uint32_t width, height, pitch;
    NV_ENC_BUFFER_FORMAT fmt;
    int is_device;
    emu_bitstream **in_flight;
    emu_resource *registration; /* NULL for nvEncCreateInputBuffer buffers */
} input_view;

static NVENCSTATUS resolve_input(emu_session *s, void *handle, input_view *v)
{
    emu_resource *r = resource_of_mapping(s, handle);
    if (r) {
        if (!r->mapped)
            return api_fail(s, NV_ENC_ERR_RESOURCE_NOT_MAPPED, "inputBuffer %p was unmapped; map the resource again before encoding", handle);
        *v = (input_view){ r->ptr, r->width, r->height, r->pitch, r->fmt, r->is_device, &r->in_flight, r };
        return NV_ENC_SUCCESS;
    }
    if (pv_find(&s->inbufs, handle) >= 0) {
        emu_inbuf *ib = handle;
        if (ib->locked)
            return api_fail(s, NV_ENC_ERR_INVALID_CALL, "inputBuffer %p is locked; nvEncUnlockInputBuffer it before encoding", handle);
        *v = (input_view){ ib->data, ib->width, ib->height, ib->pitch, ib->fmt, 0, &ib->in_flight, NULL };
        return NV_ENC_SUCCESS;
    }
    if (pv_find(&s->registered, handle) >= 0)
        return api_fail(s, NV_ENC_ERR_INVALID_PARAM,
                    "inputBuffer %p is a registered resource handle; pass the mappedResource from nvEncMapInputResource", handle);
    return api_fail(s, NV_ENC_ERR_INVALID_PARAM,
                "inputBuffer %p is neither a mapped resource nor an input buffer of this session", handle);
}

static NVENCSTATUS decide_picture(emu_session *s, const NV_ENC_PIC_PARAMS *p, emu_pic_kind *kind)
{
    const emu_config *c = &s->cfg;
    if (!c->init.enablePTD) {
        switch (p->pictureType) {
        case NV_ENC_PIC_TYPE_IDR: *kind = PIC_IDR; break;
        case NV_ENC_PIC_TYPE_I: *kind = PIC_I; break;
        case NV_ENC_PIC_TYPE_P: *kind = PIC_P; break;
        default:
            return api_fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM,
                        "pictureType %d with enablePTD = 0: the emulator encodes IDR (3), I (2) and P (0) pictures only",
                        (int)p->pictureType);
        }
        if (s->frames == 0 && *kind != PIC_IDR)
            return api_fail(s, NV_ENC_ERR_INVALID_PARAM, "the first picture must be NV_ENC_PIC_TYPE_IDR when enablePTD = 0");
        if (s->force_idr) /* a changed sequence can only start at an IDR */
            *kind = PIC_IDR;
        return NV_ENC_SUCCESS;
    }
    uint32_t flags = p->encodePicFlags;
    if (s->frames == 0 || s->force_idr || (flags & NV_ENC_PIC_FLAG_FORCEIDR) ||
        (c->idr_period != NVENC_INFINITE_GOPLENGTH && s->since_idr >= c->idr_period))
        *kind = PIC_IDR;
    else if ((flags & NV_ENC_PIC_FLAG_FORCEINTRA) || c->intra_only ||
             (c->gop_length != NVENC_INFINITE_GOPLENGTH && s->since_intra >= c->gop_length))
        *kind = PIC_I;
    else
        *kind = PIC_P;
    return NV_ENC_SUCCESS;
}

/* The engine reads registered CUDA memory with 16-byte accesses: a pitch that is a
 * multiple of 4 (all the header asks) but not of 16 faults inside the driver with
 * cudaErrorMisalignedAddress, a sticky error that leaves the CUDA context, and so
 * the session, unusable. */
static NVENCSTATUS pitch_fault(emu_session *s, const input_view *v)
{
    if (!v->registration || v->pitch % 16 == 0)
        return NV_ENC_SUCCESS;
    g_emu.totals.pitch_faults++;
    g_emu.totals.poisoned_sessions++;
    s->poisoned = 1;
    snprintf(s->poison, sizeof s->poison,
             "cudaErrorMisalignedAddress (716) reading the input surface: registered pitch %u is not a multiple of 16",
             v->pitch);
    return api_fail(s, NV_ENC_ERR_GENERIC, "%s; the CUDA context is lost", s->poison);
}

/* Whether the CUstreams given to nvEncSetIOCudaStreams still hold what they held
 * then: a changed value means the client passed the address of a temporary. */
static void check_streams(emu_session *s)
{
    if (s->dead_stream_counted)
        return;
    int dead = (s->in_stream && *(void *const *)s->in_stream != s->in_stream_value) ||
               (s->out_stream && *(void *const *)s->out_stream != s->out_stream_value);
    if (dead) {
        s->dead_stream_counted = 1;
        g_emu.totals.dead_stream_pointers++;
    }
}

/* Reads the input (device memory through a staging copy) into padded planes. */
static NVENCSTATUS load_planes(emu_session *s, const input_view *v, uint8_t **y, uint8_t **u, uint8_t **vv)
{
    const h264_seq *q = &s->cfg.seq;
    size_t ysz = (size_t)q->mb_w * 16 * (size_t)q->mb_h * 16, csz = ysz / 4;
    if (buf_grow(&s->planes, &s->planes_cap, ysz + 2 * csz))
        return api_fail(s, NV_ENC_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes of picture planes", ysz + 2 * csz);
    *y = s->planes;
    *u = s->planes + ysz;
    *vv = s->planes + ysz + csz;
    const uint8_t *src = v->ptr;
    if (v->is_device) {
        size_t span = fmt_frame_span(v->fmt, v->pitch, v->width, v->height);
        if (buf_grow(&s->staging, &s->staging_cap, span))
            return api_fail(s, NV_ENC_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes of staging memory", span);
        char err[256];
        if (cuda_copy_to_host(s->device, s->staging, v->ptr, span, err, sizeof err))
            return api_fail(s, NV_ENC_ERR_GENERIC, "reading the input surface failed: %s", err);
        src = s->staging;
    }
    pixels_to_planes(v->fmt, src, v->pitch, v->height, (uint32_t)q->width, (uint32_t)q->height,
                     &s->cfg.matrix, *y, *u, *vv, q->mb_w, q->mb_h);
    return NV_ENC_SUCCESS;
}

NVENCSTATUS NVENCAPI api_encode_picture(void *encoder, NV_ENC_PIC_PARAMS *p)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncEncodePicture", encoder, &s, &st))
        return api_leave(st);
    if (!p)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "encodePicParams is NULL"));
    if ((st = check_version(s, p->version, EMU_PIC_PARAMS)))
        return api_leave(st);
    if (!s->initialized)
        return api_leave(api_fail(s, NV_ENC_ERR_ENCODER_NOT_INITIALIZED, "call nvEncInitializeEncoder successfully before this call"));
    if ((st = check_reserved(s, s->api_version, EMU_PIC_PARAMS, p)))
        return api_leave(st);
    if ((p->encodePicFlags & NV_ENC_PIC_FLAG_EOS) && !p->inputBuffer && !p->outputBitstream) {
        /* End of stream: nothing is buffered (no B-frames), so nothing to flush. */
        g_emu.totals.eos++;
        s->unflushed = 0;
        return api_leave(NV_ENC_SUCCESS);
    }
    if (!p->outputBitstream)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "NV_ENC_PIC_PARAMS.outputBitstream is NULL"));
    if (pv_find(&s->bitstreams, p->outputBitstream) < 0)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PARAM, "outputBitstream %p was not created by this session (or is already destroyed)",
                          p->outputBitstream));
    emu_bitstream *b = p->outputBitstream;
    if (b->state == BS_LOCKED)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_CALL, "outputBitstream %p is locked; nvEncUnlockBitstream it before reuse", (void *)b));
    if (b->state == BS_PENDING)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_CALL,
                          "outputBitstream %p still holds frameIdx %u that was never locked; lock and unlock it before reuse",
                          (void *)b, b->frame_idx));
    if (!p->inputBuffer)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "NV_ENC_PIC_PARAMS.inputBuffer is NULL"));
    input_view in = { 0 };
    if ((st = resolve_input(s, p->inputBuffer, &in)))
        return api_leave(st);
    if (p->bufferFmt != in.fmt)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PARAM, "bufferFmt %s does not match the input's format %s",
                          fmt_name(p->bufferFmt), fmt_name(in.fmt)));
    const h264_seq *q = &s->cfg.seq;
    /* FFmpeg's h264_nvenc sends 0x0 for mapped CUDA frames, and drivers accept it: the
     * registered surface's size is used (below it must cover the encode size anyway). */
    int registered_size = p->inputWidth == 0 && p->inputHeight == 0 && resource_of_mapping(s, p->inputBuffer);
    if (!registered_size && (p->inputWidth != (uint32_t)q->width || p->inputHeight != (uint32_t)q->height))
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PARAM,
                          "inputWidth x inputHeight %ux%u differs from the encode size %dx%d (nvEncReconfigureEncoder changes it)",
                          p->inputWidth, p->inputHeight, q->width, q->height));
    if (in.width < (uint32_t)q->width || in.height < (uint32_t)q->height)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PARAM, "the input surface %ux%u is smaller than the encode size %dx%d",
                          in.width, in.height, q->width, q->height));
    if (p->pictureStruct != 0 && p->pictureStruct != NV_ENC_PIC_STRUCT_FRAME)
        return api_leave(api_fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM, "pictureStruct %d: only NV_ENC_PIC_STRUCT_FRAME is supported",
                          (int)p->pictureStruct));
    emu_pic_kind kind = PIC_IDR;
    if ((st = decide_picture(s, p, &kind)))
        return api_leave(st);
    if ((st = pitch_fault(s, &in)))
        return api_leave(st);
    if (in.registration)
        pointer_check_stale(in.registration);
    check_streams(s);

    int no_pixels = g_emu.no_pixel_work;
    uint8_t *y = NULL, *u = NULL, *v = NULL;
    if (!no_pixels && (st = load_planes(s, &in, &y, &u, &v)))
        return api_leave(st);

    uint32_t mbs = (uint32_t)q->mb_w * (uint32_t)q->mb_h;
    size_t rbsp_need = no_pixels ? 64 + (size_t)mbs + 16 : h264_slice_rbsp_bound(q);
    size_t out_need = 16 + 2 * NV_MAX_SEQ_HDR_LEN + nal_bound(rbsp_need);
    if (buf_grow(&s->rbsp, &s->rbsp_cap, rbsp_need) || buf_grow(&b->data, &b->cap, out_need))
        return api_leave(api_fail(s, NV_ENC_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes of bitstream memory", out_need + rbsp_need));

    const NV_ENC_CONFIG_H264 *h = &s->cfg.config.encodeCodecConfig.h264Config;
    size_t n = 0;
    if (h->outputAUD)
        n += h264_write_aud(kind == PIC_P ? 1 : 0, b->data + n, b->cap - n);
    int headers = (p->encodePicFlags & NV_ENC_PIC_FLAG_OUTPUT_SPSPPS) ||
                  (kind == PIC_IDR && !h->disableSPSPPS && (!s->headers_sent || h->repeatSPSPPS || s->headers_due));
    if (headers) {
        size_t m = h264_write_headers(q, b->data + n, b->cap - n);
        if (!m)
            return api_leave(api_fail(s, NV_ENC_ERR_GENERIC, "writing the sequence headers failed"));
        n += m;
        s->headers_sent = 1;
    }
    h264_pic pic = { kind, kind == PIC_IDR ? 0 : s->frame_num, s->idr_count & 0xFFFF };
    size_t m = no_pixels ? h264_write_flat_slice(q, &pic, s->rbsp, s->rbsp_cap, b->data + n, b->cap - n)
                         : h264_write_pcm_slice(q, &pic, y, u, v, s->rbsp, s->rbsp_cap, b->data + n, b->cap - n);
    if (!m)
        return api_leave(api_fail(s, NV_ENC_ERR_GENERIC, "writing the slice failed (buffer bound violated)"));
    n += m;

    /* state after the picture */
    uint32_t max_frame_num = 1u << q->log2_max_frame_num;
    if (kind == PIC_IDR) {
        s->idr_count++;
        s->since_idr = 0;
        s->headers_due = 0;
        s->force_idr = 0;
        g_emu.totals.idr_frames++;
    }
    if (kind != PIC_P)
        s->since_intra = 0;
    s->since_idr++;
    s->since_intra++;
    s->frame_num = (pic.frame_num + 1) % max_frame_num;
    s->frames++;
    g_emu.totals.encodes++;
    s->unflushed = !(p->encodePicFlags & NV_ENC_PIC_FLAG_EOS);
    if (p->encodePicFlags & NV_ENC_PIC_FLAG_EOS)
        g_emu.totals.eos++;

    b->size = n;
    b->state = BS_PENDING;
    b->seq = ++s->submit_seq;
    b->frame_idx = p->frameIdx;
    b->timestamp = p->inputTimeStamp;
    b->duration = p->inputDuration;
    b->pic_type = kind == PIC_IDR ? NV_ENC_PIC_TYPE_IDR : kind == PIC_I ? NV_ENC_PIC_TYPE_I : NV_ENC_PIC_TYPE_P;
    b->mbs = mbs;
    *in.in_flight = b;
    return api_leave(NV_ENC_SUCCESS);
}
