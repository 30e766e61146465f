/*
 * A stand-in libnvjpeg for the tests of nvjpegffi and rfb's jpeg_gpu route.
 *
 * Compiled against NVIDIA's OFFICIAL nvjpeg.h (never our cffi declarations), so the C
 * compiler holds every function defined here to the official prototype. It implements
 * the encoder subset nvjpegffi calls, with the argument checks the nvJPEG
 * documentation states (quality 1..100, NV12 only through nvjpegEncode and only as
 * 4:2:0, nvjpegEncodeImage refusing NV12, a retrieve buffer too small refused, no
 * hardware engine), and keeps a ledger of live objects so that tests prove nothing
 * leaks.
 *
 * With no GPU, "device" pointers are host pointers: the emulator READS THE PIXELS
 * through the channel pointers and pitches it was given, and its "bitstream" is not a
 * JPEG but a 64-byte header (what it was asked to do) followed by the bytes it read:
 *
 *   0  "NVJEMU01"            8  u32 width      12 u32 height
 *   16 i32 input format      20 i32 input subsampling (-2: nvjpegEncodeImage)
 *   24 i32 params subsampling 28 i32 quality   32 i32 optimized Huffman
 *   36 i32 encoding          40 u64 stream     48 u64 pitch[0]   56 u64 pitch[1]
 *   64 RGBI/BGRI: height rows of 3*width bytes from channel[0]
 *      NV12: height rows of width bytes from channel[0], then (height+1)/2 rows of
 *      2*((width+1)/2) bytes from channel[1]
 *
 * so a test compares them with the frame it handed over, byte for byte.
 *
 * Test-only controls (emu_*): reset, ledger counters, the reported version, and fault
 * injection (the n-th next call of a named function returns a chosen status).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nvjpeg.h"

#define EXPORT __attribute__((visibility("default")))
#define MAGIC_HANDLE 0x4a48u
#define MAGIC_STATE 0x4a53u
#define MAGIC_PARAMS 0x4a50u
#define HEADER_BYTES 64

struct nvjpegHandle { unsigned magic; };
struct nvjpegEncoderState {
    unsigned magic;
    int backend;
    unsigned char *out;
    size_t out_len, out_cap;
    int has_output;
};
struct nvjpegEncoderParams {
    unsigned magic;
    int quality, subsampling, optimized, encoding;
};

static struct {
    long long handles, states, params;          /* live objects */
    long long encodes, retrieves, created;       /* calls that did their work */
    int major, minor, patch;
    char fault_function[64];
    int fault_status, fault_countdown;
} emu = {.major = 13, .minor = 0, .patch = 4};

/* ------------------------------------------------------------------ controls */

EXPORT void emu_reset(void) {
    emu.handles = emu.states = emu.params = 0;
    emu.encodes = emu.retrieves = emu.created = 0;
    emu.major = 13; emu.minor = 0; emu.patch = 4;
    emu.fault_function[0] = 0;
    emu.fault_countdown = 0;
}

EXPORT long long emu_count(const char *name) {
    if (!strcmp(name, "handles")) return emu.handles;
    if (!strcmp(name, "states")) return emu.states;
    if (!strcmp(name, "params")) return emu.params;
    if (!strcmp(name, "encodes")) return emu.encodes;
    if (!strcmp(name, "retrieves")) return emu.retrieves;
    if (!strcmp(name, "created")) return emu.created;
    return -1;
}

EXPORT void emu_set_version(int major, int minor, int patch) {
    emu.major = major; emu.minor = minor; emu.patch = patch;
}

/* The nth (1 = next) call of `function` returns `status` and does nothing else. */
EXPORT void emu_inject(const char *function, int status, int nth) {
    strncpy(emu.fault_function, function, sizeof emu.fault_function - 1);
    emu.fault_function[sizeof emu.fault_function - 1] = 0;
    emu.fault_status = status;
    emu.fault_countdown = nth;
}

static int faulted(const char *function, nvjpegStatus_t *status) {
    if (emu.fault_countdown <= 0 || strcmp(function, emu.fault_function)) return 0;
    if (--emu.fault_countdown) return 0;
    *status = (nvjpegStatus_t)emu.fault_status;
    return 1;
}

#define FAULT(name) do { nvjpegStatus_t st_; if (faulted(name, &st_)) return st_; } while (0)

/* ------------------------------------------------------------------ library */

nvjpegStatus_t nvjpegGetProperty(libraryPropertyType type, int *value) {
    FAULT("nvjpegGetProperty");
    if (!value) return NVJPEG_STATUS_INVALID_PARAMETER;
    switch (type) {
    case MAJOR_VERSION: *value = emu.major; return NVJPEG_STATUS_SUCCESS;
    case MINOR_VERSION: *value = emu.minor; return NVJPEG_STATUS_SUCCESS;
    case PATCH_LEVEL: *value = emu.patch; return NVJPEG_STATUS_SUCCESS;
    }
    return NVJPEG_STATUS_INVALID_PARAMETER;
}

nvjpegStatus_t nvjpegGetCudartProperty(libraryPropertyType type, int *value) {
    return nvjpegGetProperty(type, value);
}

nvjpegStatus_t nvjpegCreateSimple(nvjpegHandle_t *handle) {
    FAULT("nvjpegCreateSimple");
    if (!handle) return NVJPEG_STATUS_INVALID_PARAMETER;
    struct nvjpegHandle *h = calloc(1, sizeof *h);
    if (!h) return NVJPEG_STATUS_ALLOCATOR_FAILURE;
    h->magic = MAGIC_HANDLE;
    *handle = h;
    emu.handles++;
    emu.created++;
    return NVJPEG_STATUS_SUCCESS;
}

nvjpegStatus_t nvjpegDestroy(nvjpegHandle_t handle) {
    FAULT("nvjpegDestroy");
    if (!handle || handle->magic != MAGIC_HANDLE) return NVJPEG_STATUS_INVALID_PARAMETER;
    handle->magic = 0;
    free(handle);
    emu.handles--;
    return NVJPEG_STATUS_SUCCESS;
}

/* ------------------------------------------------------------------ state, params */

static nvjpegStatus_t state_create(nvjpegHandle_t handle, nvjpegEncoderState_t *out, int backend) {
    if (!handle || handle->magic != MAGIC_HANDLE || !out) return NVJPEG_STATUS_INVALID_PARAMETER;
    if (backend == NVJPEG_ENC_BACKEND_HARDWARE) return NVJPEG_STATUS_ARCH_MISMATCH;  /* no JPEG engine here */
    struct nvjpegEncoderState *s = calloc(1, sizeof *s);
    if (!s) return NVJPEG_STATUS_ALLOCATOR_FAILURE;
    s->magic = MAGIC_STATE;
    s->backend = backend;
    *out = s;
    emu.states++;
    return NVJPEG_STATUS_SUCCESS;
}

nvjpegStatus_t nvjpegEncoderStateCreate(nvjpegHandle_t handle, nvjpegEncoderState_t *encoder_state, cudaStream_t stream) {
    (void)stream;
    FAULT("nvjpegEncoderStateCreate");
    return state_create(handle, encoder_state, NVJPEG_ENC_BACKEND_DEFAULT);
}

nvjpegStatus_t nvjpegEncoderStateCreateWithBackend(nvjpegHandle_t handle, nvjpegEncoderState_t *encoder_state,
                                                   nvjpegEncBackend_t backend, cudaStream_t stream) {
    (void)stream;
    FAULT("nvjpegEncoderStateCreateWithBackend");
    if (backend < NVJPEG_ENC_BACKEND_DEFAULT || backend > NVJPEG_ENC_BACKEND_HARDWARE) return NVJPEG_STATUS_INVALID_PARAMETER;
    return state_create(handle, encoder_state, backend);
}

nvjpegStatus_t nvjpegEncoderStateDestroy(nvjpegEncoderState_t encoder_state) {
    FAULT("nvjpegEncoderStateDestroy");
    if (!encoder_state || encoder_state->magic != MAGIC_STATE) return NVJPEG_STATUS_INVALID_PARAMETER;
    encoder_state->magic = 0;
    free(encoder_state->out);
    free(encoder_state);
    emu.states--;
    return NVJPEG_STATUS_SUCCESS;
}

nvjpegStatus_t nvjpegEncoderParamsCreate(nvjpegHandle_t handle, nvjpegEncoderParams_t *encoder_params, cudaStream_t stream) {
    (void)stream;
    FAULT("nvjpegEncoderParamsCreate");
    if (!handle || handle->magic != MAGIC_HANDLE || !encoder_params) return NVJPEG_STATUS_INVALID_PARAMETER;
    struct nvjpegEncoderParams *p = calloc(1, sizeof *p);
    if (!p) return NVJPEG_STATUS_ALLOCATOR_FAILURE;
    p->magic = MAGIC_PARAMS;
    p->quality = 70;  /* the documented defaults */
    p->subsampling = NVJPEG_CSS_444;
    p->encoding = NVJPEG_ENCODING_BASELINE_DCT;
    *encoder_params = p;
    emu.params++;
    return NVJPEG_STATUS_SUCCESS;
}

nvjpegStatus_t nvjpegEncoderParamsDestroy(nvjpegEncoderParams_t encoder_params) {
    FAULT("nvjpegEncoderParamsDestroy");
    if (!encoder_params || encoder_params->magic != MAGIC_PARAMS) return NVJPEG_STATUS_INVALID_PARAMETER;
    encoder_params->magic = 0;
    free(encoder_params);
    emu.params--;
    return NVJPEG_STATUS_SUCCESS;
}

static int params_ok(const struct nvjpegEncoderParams *p) { return p && p->magic == MAGIC_PARAMS; }

nvjpegStatus_t nvjpegEncoderParamsSetQuality(nvjpegEncoderParams_t encoder_params, const int quality, cudaStream_t stream) {
    (void)stream;
    FAULT("nvjpegEncoderParamsSetQuality");
    if (!params_ok(encoder_params) || quality < 1 || quality > 100) return NVJPEG_STATUS_INVALID_PARAMETER;
    encoder_params->quality = quality;
    return NVJPEG_STATUS_SUCCESS;
}

nvjpegStatus_t nvjpegEncoderParamsSetEncoding(nvjpegEncoderParams_t encoder_params, nvjpegJpegEncoding_t etype, cudaStream_t stream) {
    (void)stream;
    FAULT("nvjpegEncoderParamsSetEncoding");
    if (!params_ok(encoder_params)) return NVJPEG_STATUS_INVALID_PARAMETER;
    if (etype != NVJPEG_ENCODING_BASELINE_DCT && etype != NVJPEG_ENCODING_PROGRESSIVE_DCT_HUFFMAN)
        return NVJPEG_STATUS_INVALID_PARAMETER;
    encoder_params->encoding = etype;
    return NVJPEG_STATUS_SUCCESS;
}

nvjpegStatus_t nvjpegEncoderParamsSetOptimizedHuffman(nvjpegEncoderParams_t encoder_params, const int optimized, cudaStream_t stream) {
    (void)stream;
    FAULT("nvjpegEncoderParamsSetOptimizedHuffman");
    if (!params_ok(encoder_params)) return NVJPEG_STATUS_INVALID_PARAMETER;
    encoder_params->optimized = optimized != 0;
    return NVJPEG_STATUS_SUCCESS;
}

nvjpegStatus_t nvjpegEncoderParamsSetSamplingFactors(nvjpegEncoderParams_t encoder_params,
                                                     const nvjpegChromaSubsampling_t chroma_subsampling, cudaStream_t stream) {
    (void)stream;
    FAULT("nvjpegEncoderParamsSetSamplingFactors");
    if (!params_ok(encoder_params) || chroma_subsampling < NVJPEG_CSS_444 || chroma_subsampling > NVJPEG_CSS_410V)
        return NVJPEG_STATUS_INVALID_PARAMETER;
    encoder_params->subsampling = chroma_subsampling;
    return NVJPEG_STATUS_SUCCESS;
}

/* The bound grows a little with the quality, so that tests can see the binding follow
 * the bound when the quality changes (real nvJPEG's bound depends on the parameters). */
static size_t bound(const struct nvjpegEncoderParams *p, int width, int height) {
    return HEADER_BYTES + (size_t)width * (size_t)height * 3 + 16 * (size_t)p->quality;
}

nvjpegStatus_t nvjpegEncodeGetBufferSize(nvjpegHandle_t handle, const nvjpegEncoderParams_t encoder_params,
                                         int image_width, int image_height, size_t *max_stream_length) {
    FAULT("nvjpegEncodeGetBufferSize");
    if (!handle || handle->magic != MAGIC_HANDLE || !params_ok(encoder_params) || !max_stream_length ||
        image_width <= 0 || image_height <= 0)
        return NVJPEG_STATUS_INVALID_PARAMETER;
    *max_stream_length = bound(encoder_params, image_width, image_height);
    return NVJPEG_STATUS_SUCCESS;
}

/* ------------------------------------------------------------------ encoding */

static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

static nvjpegStatus_t encode(nvjpegHandle_t handle, nvjpegEncoderState_t state, const nvjpegEncoderParams_t params,
                             const nvjpegImage_t *source, int input_subsampling, nvjpegInputFormat_t format,
                             int width, int height, cudaStream_t stream) {
    if (!handle || handle->magic != MAGIC_HANDLE || !state || state->magic != MAGIC_STATE || !params_ok(params) ||
        !source || width <= 0 || height <= 0)
        return NVJPEG_STATUS_INVALID_PARAMETER;
    size_t rows[2] = {(size_t)height, 0}, row_bytes[2] = {0, 0};
    int planes;
    if (format == NVJPEG_INPUT_RGBI || format == NVJPEG_INPUT_BGRI) {
        planes = 1;
        row_bytes[0] = (size_t)width * 3;
    } else if (format == NVJPEG_INPUT_NV12) {
        if (input_subsampling != NVJPEG_CSS_420 || params->subsampling != NVJPEG_CSS_420)
            return NVJPEG_STATUS_INVALID_PARAMETER;  /* the documented rule for NV12 */
        planes = 2;
        row_bytes[0] = (size_t)width;
        rows[1] = (size_t)(height + 1) / 2;
        row_bytes[1] = 2 * (size_t)((width + 1) / 2);
    } else {
        return NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED;  /* planar input: not emulated */
    }
    for (int c = 0; c < planes; c++)
        if (!source->channel[c] || source->pitch[c] < row_bytes[c]) return NVJPEG_STATUS_INVALID_PARAMETER;
    size_t total = HEADER_BYTES + rows[0] * row_bytes[0] + rows[1] * row_bytes[1];
    if (total > state->out_cap) {
        unsigned char *grown = realloc(state->out, total);
        if (!grown) return NVJPEG_STATUS_ALLOCATOR_FAILURE;
        state->out = grown;
        state->out_cap = total;
    }
    unsigned char *o = state->out;
    memset(o, 0, HEADER_BYTES);
    memcpy(o, "NVJEMU01", 8);
    put32(o + 8, (uint32_t)width);
    put32(o + 12, (uint32_t)height);
    put32(o + 16, (uint32_t)format);
    put32(o + 20, (uint32_t)input_subsampling);
    put32(o + 24, (uint32_t)params->subsampling);
    put32(o + 28, (uint32_t)params->quality);
    put32(o + 32, (uint32_t)params->optimized);
    put32(o + 36, (uint32_t)params->encoding);
    put64(o + 40, (uint64_t)(uintptr_t)stream);
    put64(o + 48, (uint64_t)source->pitch[0]);
    put64(o + 56, planes > 1 ? (uint64_t)source->pitch[1] : 0);
    unsigned char *w = o + HEADER_BYTES;
    for (int c = 0; c < planes; c++)
        for (size_t y = 0; y < rows[c]; y++, w += row_bytes[c])
            memcpy(w, source->channel[c] + y * source->pitch[c], row_bytes[c]);
    state->out_len = total;
    state->has_output = 1;
    emu.encodes++;
    return NVJPEG_STATUS_SUCCESS;
}

nvjpegStatus_t nvjpegEncodeImage(nvjpegHandle_t handle, nvjpegEncoderState_t encoder_state,
                                 const nvjpegEncoderParams_t encoder_params, const nvjpegImage_t *source,
                                 nvjpegInputFormat_t input_format, int image_width, int image_height, cudaStream_t stream) {
    FAULT("nvjpegEncodeImage");
    if (input_format == NVJPEG_INPUT_NV12) return NVJPEG_STATUS_INVALID_PARAMETER;  /* "nvjpegEncode() must be used" */
    return encode(handle, encoder_state, encoder_params, source, -2, input_format, image_width, image_height, stream);
}

nvjpegStatus_t nvjpegEncode(nvjpegHandle_t handle, nvjpegEncoderState_t encoder_state,
                            const nvjpegEncoderParams_t encoder_params, const nvjpegImage_t *source,
                            nvjpegChromaSubsampling_t input_subsampling, nvjpegInputFormat_t input_format,
                            int image_width, int image_height, cudaStream_t stream) {
    FAULT("nvjpegEncode");
    return encode(handle, encoder_state, encoder_params, source, input_subsampling, input_format,
                  image_width, image_height, stream);
}

nvjpegStatus_t nvjpegEncodeRetrieveBitstream(nvjpegHandle_t handle, nvjpegEncoderState_t encoder_state,
                                             unsigned char *data, size_t *length, cudaStream_t stream) {
    (void)stream;
    FAULT("nvjpegEncodeRetrieveBitstream");
    if (!handle || handle->magic != MAGIC_HANDLE || !encoder_state || encoder_state->magic != MAGIC_STATE || !length ||
        !encoder_state->has_output)
        return NVJPEG_STATUS_INVALID_PARAMETER;
    if (!data) {
        *length = encoder_state->out_len;
        return NVJPEG_STATUS_SUCCESS;
    }
    if (*length < encoder_state->out_len) return NVJPEG_STATUS_INVALID_PARAMETER;
    memcpy(data, encoder_state->out, encoder_state->out_len);
    *length = encoder_state->out_len;
    emu.retrieves++;
    return NVJPEG_STATUS_SUCCESS;
}
