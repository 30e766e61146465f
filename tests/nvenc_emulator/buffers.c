/*
 * Buffers a session owns: output bitstream buffers (created, locked in
 * submission order, unlocked), input buffers (nvEncCreateInputBuffer, the
 * system-memory path) and registered CUDA resources with their mappings.
 *
 * Handles given to the client are the addresses of these objects; every call
 * looks a handle up in the session's lists before touching it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"

/* ------------------------------------------------------- bitstream buffers */

NVENCSTATUS NVENCAPI api_create_bitstream_buffer(void *encoder, NV_ENC_CREATE_BITSTREAM_BUFFER *p)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncCreateBitstreamBuffer", encoder, &s, &st))
        return api_leave(st);
    if (!p)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "createBitstreamBufferParams is NULL"));
    if ((st = check_version(s, p->version, EMU_CREATE_BITSTREAM_BUFFER)) ||
        (st = check_reserved(s, s->api_version, EMU_CREATE_BITSTREAM_BUFFER, p)))
        return api_leave(st);
    if (!s->initialized)
        return api_leave(api_fail(s, NV_ENC_ERR_ENCODER_NOT_INITIALIZED, "call nvEncInitializeEncoder successfully before this call"));
    emu_bitstream *b = calloc(1, sizeof *b);
    if (!b || pv_push(&s->bitstreams, b)) {
        free(b);
        return api_leave(api_fail(s, NV_ENC_ERR_OUT_OF_MEMORY, "cannot allocate a bitstream buffer"));
    }
    p->bitstreamBuffer = b;
    p->bitstreamBufferPtr = NULL; /* "[out]: Reserved and should not be used" */
    scribble(s->api_version, EMU_CREATE_BITSTREAM_BUFFER, p);
    return api_leave(NV_ENC_SUCCESS);
}

/* Forget `b` as the pending output of any input it was encoded from. */
static void release_inputs_of(emu_session *s, const emu_bitstream *b)
{
    for (int i = 0; i < s->registered.n; i++) {
        emu_resource *r = s->registered.items[i];
        if (r->in_flight == b)
            r->in_flight = NULL;
    }
    for (int i = 0; i < s->inbufs.n; i++) {
        emu_inbuf *ib = s->inbufs.items[i];
        if (ib->in_flight == b)
            ib->in_flight = NULL;
    }
}

NVENCSTATUS NVENCAPI api_destroy_bitstream_buffer(void *encoder, NV_ENC_OUTPUT_PTR buffer)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncDestroyBitstreamBuffer", encoder, &s, &st))
        return api_leave(st);
    if (!buffer)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "bitstreamBuffer is NULL"));
    int i = pv_find(&s->bitstreams, buffer);
    if (i < 0)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PARAM, "bitstreamBuffer %p was not created by this session (or is already destroyed)", buffer));
    release_inputs_of(s, buffer);
    pv_remove(&s->bitstreams, i);
    free_bitstream(buffer);
    return api_leave(NV_ENC_SUCCESS);
}

NVENCSTATUS NVENCAPI api_lock_bitstream(void *encoder, NV_ENC_LOCK_BITSTREAM *lp)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncLockBitstream", encoder, &s, &st))
        return api_leave(st);
    if (!lp)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "lockBitstreamBufferParams is NULL"));
    if ((st = check_version(s, lp->version, EMU_LOCK_BITSTREAM)) ||
        (st = check_reserved(s, s->api_version, EMU_LOCK_BITSTREAM, lp)))
        return api_leave(st);
    if (!s->initialized)
        return api_leave(api_fail(s, NV_ENC_ERR_ENCODER_NOT_INITIALIZED, "call nvEncInitializeEncoder successfully before this call"));
    if (!lp->outputBitstream)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "NV_ENC_LOCK_BITSTREAM.outputBitstream is NULL"));
    if (pv_find(&s->bitstreams, lp->outputBitstream) < 0)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PARAM, "outputBitstream %p was not created by this session (or is already destroyed)",
                          lp->outputBitstream));
    emu_bitstream *b = lp->outputBitstream;
    if (b->state == BS_LOCKED)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_CALL, "outputBitstream %p is already locked (unlock it first)", (void *)b));
    if (b->state == BS_IDLE)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_CALL,
                          "outputBitstream %p holds no encoded picture (lock only after nvEncEncodePicture returned NV_ENC_SUCCESS for it)",
                          (void *)b));
    for (int i = 0; i < s->bitstreams.n; i++) {
        emu_bitstream *o = s->bitstreams.items[i];
        if (o->state == BS_PENDING && o->seq < b->seq)
            return api_leave(api_fail(s, NV_ENC_ERR_INVALID_CALL,
                              "outputs must be locked in submission order: %p (frameIdx %u) was submitted before %p (frameIdx %u)",
                              (void *)o, o->frame_idx, (void *)b, b->frame_idx));
    }
    b->state = BS_LOCKED;
    release_inputs_of(s, b);
    lp->bitstreamBufferPtr = b->data;
    lp->bitstreamSizeInBytes = (uint32_t)b->size;
    lp->frameIdx = b->frame_idx;
    lp->frameIdxDisplay = b->frame_idx;
    lp->outputTimeStamp = b->timestamp;
    lp->outputDuration = b->duration;
    lp->pictureType = b->pic_type;
    lp->pictureStruct = NV_ENC_PIC_STRUCT_FRAME;
    lp->hwEncodeStatus = 0;
    lp->frameAvgQP = 0;
    lp->frameSatd = 0;
    lp->ltrFrame = 0;
    lp->ltrFrameIdx = 0;
    lp->ltrFrameBitmap = 0;
    lp->temporalId = 0;
    lp->intraMBCount = b->mbs;
    lp->interMBCount = 0;
    lp->averageMVX = lp->averageMVY = 0;
    lp->alphaLayerSizeInBytes = 0;
    if (s->cfg.init.reportSliceOffsets) {
        lp->numSlices = 1;
        if (lp->sliceOffsets)
            lp->sliceOffsets[0] = 0;
    }
    scribble(s->api_version, EMU_LOCK_BITSTREAM, lp);
    return api_leave(NV_ENC_SUCCESS);
}

NVENCSTATUS NVENCAPI api_unlock_bitstream(void *encoder, NV_ENC_OUTPUT_PTR buffer)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncUnlockBitstream", encoder, &s, &st))
        return api_leave(st);
    if (!buffer)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "bitstreamBuffer is NULL"));
    if (pv_find(&s->bitstreams, buffer) < 0)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PARAM, "bitstreamBuffer %p was not created by this session (or is already destroyed)", buffer));
    emu_bitstream *b = buffer;
    if (b->state != BS_LOCKED)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_CALL, "bitstreamBuffer %p is not locked", buffer));
    b->state = BS_IDLE;
    return api_leave(NV_ENC_SUCCESS);
}

/* ----------------------------------------------------------- input buffers */

static NVENCSTATUS check_surface(emu_session *s, NV_ENC_BUFFER_FORMAT fmt, uint32_t w, uint32_t h)
{
    if (!fmt_supported(fmt))
        return api_fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM,
                    "buffer format %s (0x%08X) is not supported; see nvEncGetInputFormats (NV12, YV12, IYUV, ARGB, ABGR)",
                    fmt_name(fmt), (unsigned)fmt);
    if (w == 0 || h == 0 || w > EMU_MAX_WIDTH || h > EMU_MAX_HEIGHT || ((w | h) & 1))
        return api_fail(s, NV_ENC_ERR_INVALID_PARAM, "surface size %ux%u: expected even sizes from 2x2 to %dx%d",
                    w, h, EMU_MAX_WIDTH, EMU_MAX_HEIGHT);
    return NV_ENC_SUCCESS;
}

NVENCSTATUS NVENCAPI api_create_input_buffer(void *encoder, NV_ENC_CREATE_INPUT_BUFFER *p)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncCreateInputBuffer", encoder, &s, &st))
        return api_leave(st);
    if (!p)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "createInputBufferParams is NULL"));
    if ((st = check_version(s, p->version, EMU_CREATE_INPUT_BUFFER)) ||
        (st = check_reserved(s, s->api_version, EMU_CREATE_INPUT_BUFFER, p)))
        return api_leave(st);
    if (!s->initialized)
        return api_leave(api_fail(s, NV_ENC_ERR_ENCODER_NOT_INITIALIZED, "call nvEncInitializeEncoder successfully before this call"));
    if ((st = check_surface(s, p->bufferFmt, p->width, p->height)))
        return api_leave(st);
    emu_inbuf *ib = calloc(1, sizeof *ib);
    if (!ib)
        return api_leave(api_fail(s, NV_ENC_ERR_OUT_OF_MEMORY, "cannot allocate an input buffer"));
    ib->width = p->width;
    ib->height = p->height;
    ib->fmt = p->bufferFmt;
    ib->pitch = ((p->width * (uint32_t)fmt_bytes_per_pixel(p->bufferFmt)) + 63u) & ~63u;
    size_t bytes = fmt_bytes_per_pixel(p->bufferFmt) == 4 ? (size_t)ib->pitch * ib->height
                                                          : (size_t)ib->pitch * ib->height * 3 / 2 + ib->height;
    ib->data = calloc(1, bytes);
    if (!ib->data || pv_push(&s->inbufs, ib)) {
        free(ib->data);
        free(ib);
        return api_leave(api_fail(s, NV_ENC_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes for an input buffer", bytes));
    }
    p->inputBuffer = ib;
    return api_leave(NV_ENC_SUCCESS);
}

NVENCSTATUS NVENCAPI api_destroy_input_buffer(void *encoder, NV_ENC_INPUT_PTR buffer)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncDestroyInputBuffer", encoder, &s, &st))
        return api_leave(st);
    if (!buffer)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "inputBuffer is NULL"));
    int i = pv_find(&s->inbufs, buffer);
    if (i < 0)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PARAM, "inputBuffer %p was not created by this session (or is already destroyed)", buffer));
    emu_inbuf *ib = buffer;
    pv_remove(&s->inbufs, i);
    free(ib->data);
    free(ib);
    return api_leave(NV_ENC_SUCCESS);
}

NVENCSTATUS NVENCAPI api_lock_input_buffer(void *encoder, NV_ENC_LOCK_INPUT_BUFFER *lp)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncLockInputBuffer", encoder, &s, &st))
        return api_leave(st);
    if (!lp)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "lockInputBufferParams is NULL"));
    if ((st = check_version(s, lp->version, EMU_LOCK_INPUT_BUFFER)) ||
        (st = check_reserved(s, s->api_version, EMU_LOCK_INPUT_BUFFER, lp)))
        return api_leave(st);
    if (!lp->inputBuffer)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "NV_ENC_LOCK_INPUT_BUFFER.inputBuffer is NULL"));
    if (pv_find(&s->inbufs, lp->inputBuffer) < 0)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PARAM, "inputBuffer %p was not created by nvEncCreateInputBuffer in this session", lp->inputBuffer));
    emu_inbuf *ib = lp->inputBuffer;
    if (ib->locked)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_CALL, "inputBuffer %p is already locked", lp->inputBuffer));
    ib->locked = 1;
    lp->bufferDataPtr = ib->data;
    lp->pitch = ib->pitch;
    return api_leave(NV_ENC_SUCCESS);
}

NVENCSTATUS NVENCAPI api_unlock_input_buffer(void *encoder, NV_ENC_INPUT_PTR buffer)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncUnlockInputBuffer", encoder, &s, &st))
        return api_leave(st);
    if (!buffer)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "inputBuffer is NULL"));
    if (pv_find(&s->inbufs, buffer) < 0)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PARAM, "inputBuffer %p was not created by nvEncCreateInputBuffer in this session", buffer));
    emu_inbuf *ib = buffer;
    if (!ib->locked)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_CALL, "inputBuffer %p is not locked", buffer));
    ib->locked = 0;
    return api_leave(NV_ENC_SUCCESS);
}

/* ---------------------------------------------------- registered resources */

NVENCSTATUS NVENCAPI api_register_resource(void *encoder, NV_ENC_REGISTER_RESOURCE *p)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncRegisterResource", encoder, &s, &st))
        return api_leave(st);
    if (!p)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "registerResParams is NULL"));
    if ((st = check_version(s, p->version, EMU_REGISTER_RESOURCE)) ||
        (st = check_reserved(s, s->api_version, EMU_REGISTER_RESOURCE, p)))
        return api_leave(st);
    if (!s->initialized)
        return api_leave(api_fail(s, NV_ENC_ERR_ENCODER_NOT_INITIALIZED, "call nvEncInitializeEncoder successfully before this call"));
    if (p->resourceType != NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR)
        return api_leave(api_fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM,
                          "resourceType %d: the emulator registers NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR (1) only",
                          (int)p->resourceType));
    if (p->bufferUsage != NV_ENC_INPUT_IMAGE)
        return api_leave(api_fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM, "bufferUsage %d: only NV_ENC_INPUT_IMAGE (0) is supported",
                          (int)p->bufferUsage));
    if (!p->resourceToRegister)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "resourceToRegister is NULL"));
    if ((st = check_surface(s, p->bufferFormat, p->width, p->height)))
        return api_leave(st);
    if (p->pitch % 4) /* the header: "must be a multiple of 4"; 16 is checked when the engine reads (encode.c) */
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PARAM, "pitch %u is not a multiple of 4", p->pitch));
    uint64_t row = (uint64_t)p->width * (uint64_t)fmt_bytes_per_pixel(p->bufferFormat);
    if (p->pitch < row)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PARAM, "pitch %u is smaller than a row of %u %s pixels (%llu bytes)",
                          p->pitch, p->width, fmt_name(p->bufferFormat), (unsigned long long)row));
    emu_resource *r = calloc(1, sizeof *r);
    if (!r)
        return api_leave(api_fail(s, NV_ENC_ERR_OUT_OF_MEMORY, "cannot allocate a registration"));
    r->type = p->resourceType;
    r->ptr = p->resourceToRegister;
    r->width = p->width;
    r->height = p->height;
    r->pitch = p->pitch;
    r->fmt = p->bufferFormat;
    if ((st = pointer_check_registration(s, r))) {
        free(r);
        return api_leave(st);
    }
    if (pv_push(&s->registered, r)) {
        free(r);
        return api_leave(api_fail(s, NV_ENC_ERR_OUT_OF_MEMORY, "cannot allocate a registration"));
    }
    r->is_device = cuda_is_device_pointer(p->resourceToRegister);
    p->registeredResource = r;
    return api_leave(NV_ENC_SUCCESS);
}

NVENCSTATUS NVENCAPI api_unregister_resource(void *encoder, NV_ENC_REGISTERED_PTR res)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncUnregisterResource", encoder, &s, &st))
        return api_leave(st);
    if (!res)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "registeredResource is NULL"));
    int i = pv_find(&s->registered, res);
    if (i < 0)
        return api_leave(api_fail(s, NV_ENC_ERR_RESOURCE_NOT_REGISTERED, "%p is not a resource registered with this session", res));
    emu_resource *r = res;
    if (r->mapped)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_CALL, "resource %p is still mapped; nvEncUnmapInputResource it first", res));
    pv_remove(&s->registered, i);
    free(r);
    return api_leave(NV_ENC_SUCCESS);
}

NVENCSTATUS NVENCAPI api_map_input_resource(void *encoder, NV_ENC_MAP_INPUT_RESOURCE *mp)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncMapInputResource", encoder, &s, &st))
        return api_leave(st);
    if (!mp)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "mapInputResParams is NULL"));
    if ((st = check_version(s, mp->version, EMU_MAP_INPUT_RESOURCE)) ||
        (st = check_reserved(s, s->api_version, EMU_MAP_INPUT_RESOURCE, mp)))
        return api_leave(st);
    if (!s->initialized)
        return api_leave(api_fail(s, NV_ENC_ERR_ENCODER_NOT_INITIALIZED, "call nvEncInitializeEncoder successfully before this call"));
    if (!mp->registeredResource)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "NV_ENC_MAP_INPUT_RESOURCE.registeredResource is NULL"));
    if (pv_find(&s->registered, mp->registeredResource) < 0)
        return api_leave(api_fail(s, NV_ENC_ERR_RESOURCE_NOT_REGISTERED, "%p is not a resource registered with this session",
                          mp->registeredResource));
    emu_resource *r = mp->registeredResource;
    if (r->mapped)
        return api_leave(api_fail(s, NV_ENC_ERR_MAP_FAILED, "resource %p is already mapped (unmap before mapping it again)",
                          mp->registeredResource));
    r->mapped = 1;
    mp->mappedResource = &r->map_token;
    mp->mappedBufferFmt = r->fmt;
    return api_leave(NV_ENC_SUCCESS);
}

/* The registration whose mapping handle is `handle`, or NULL. */
emu_resource *resource_of_mapping(emu_session *s, const void *handle)
{
    for (int i = 0; i < s->registered.n; i++) {
        emu_resource *r = s->registered.items[i];
        if ((const void *)&r->map_token == handle)
            return r;
    }
    return NULL;
}

NVENCSTATUS NVENCAPI api_unmap_input_resource(void *encoder, NV_ENC_INPUT_PTR mapped)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncUnmapInputResource", encoder, &s, &st))
        return api_leave(st);
    if (!mapped)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "mappedInputBuffer is NULL"));
    emu_resource *r = resource_of_mapping(s, mapped);
    if (!r || !r->mapped)
        return api_leave(api_fail(s, NV_ENC_ERR_RESOURCE_NOT_MAPPED, "%p is not a currently mapped input of this session", mapped));
    if (r->in_flight)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_CALL,
                          "input %p was encoded into bitstream %p that is not locked yet; unmap after nvEncLockBitstream",
                          mapped, (void *)r->in_flight));
    r->mapped = 0;
    return api_leave(NV_ENC_SUCCESS);
}
