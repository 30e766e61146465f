/*
 * A client of the official NVENC API, used to test the emulator.
 *
 *   selftest LIB encode [options]   encode generated frames, write the Annex B stream
 *                                   and a JSON-lines report (one line per call);
 *                                   --cuda puts the pictures in CUDA device memory
 *   selftest LIB api                run the validation battery (expected status codes)
 *   selftest LIB version            report NvEncodeAPIGetMaxSupportedVersion/CreateInstance
 *
 * It loads LIB with dlopen exactly as a binding would (NvEncodeAPICreateInstance,
 * then the function list). Built with -DSELFTEST_LIBRARY it is a shared object
 * exporting selftest_run(), so a Python test can run it in-process against the
 * same emulator instance it controls (faults, settings).
 *
 * The generated pictures follow a formula that tests/nvenc_emulator/test_emulator.py
 * reproduces; keep the two in step (see pattern_* below).
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nvEncodeAPI.h"

#ifdef SELFTEST_LIBRARY
#define SELFTEST_API __attribute__((visibility("default")))
#else
#define SELFTEST_API
#endif

/* ------------------------------------------------------------- the pattern */

static int zero_block(int x, int y, int f)
{
    return ((x >> 4) + (y >> 4) + f) % 5 == 0;
}

static uint8_t pattern_y(int x, int y, int f)
{
    if (zero_block(x, y, f))
        return (uint8_t)(((x >> 2) & 1) ? 0 : (x & 3)); /* runs of 00 00 0x: emulation prevention */
    return (uint8_t)((x * 7 + y * 13 + ((x * y) >> 4) + f * 29) & 255);
}

static uint8_t pattern_u(int x, int y, int f) /* chroma coordinates */
{
    return zero_block(2 * x, 2 * y, f) ? 0 : (uint8_t)((x * 11 + y * 3 + f * 5 + 64) & 255);
}

static uint8_t pattern_v(int x, int y, int f)
{
    return zero_block(2 * x, 2 * y, f) ? 1 : (uint8_t)((x * 5 + y * 17 + f * 13 + 128) & 255);
}

static void pattern_rgba(int x, int y, int f, uint8_t *r, uint8_t *g, uint8_t *b, uint8_t *a)
{
    *r = (uint8_t)((x * 4 + f * 16) & 255);
    *g = (uint8_t)((y * 4 + f * 8) & 255);
    *b = (uint8_t)(((x + y) * 2 + f * 4) & 255);
    *a = (uint8_t)((x ^ y) & 255);
}

#define PAD_BYTE 0xEE /* row padding: reading with a wrong pitch shows up */

typedef struct {
    const char *name;
    NV_ENC_BUFFER_FORMAT fmt;
    int bpp;
} format_desc;

static const format_desc formats[] = {
    { "nv12", NV_ENC_BUFFER_FORMAT_NV12, 1 },
    { "iyuv", NV_ENC_BUFFER_FORMAT_IYUV, 1 },
    { "yv12", NV_ENC_BUFFER_FORMAT_YV12, 1 },
    { "argb", NV_ENC_BUFFER_FORMAT_ARGB, 4 },
    { "abgr", NV_ENC_BUFFER_FORMAT_ABGR, 4 },
};

static size_t surface_bytes(const format_desc *fd, uint32_t pitch, uint32_t h)
{
    return fd->bpp == 4 ? (size_t)pitch * h : (size_t)pitch * h * 3 / 2 + h;
}

static void fill_surface(const format_desc *fd, uint8_t *dst, uint32_t pitch, uint32_t w, uint32_t h, int f)
{
    memset(dst, PAD_BYTE, surface_bytes(fd, pitch, h));
    if (fd->bpp == 4) {
        int ri = fd->fmt == NV_ENC_BUFFER_FORMAT_ABGR ? 0 : 2, bi = 2 - ri;
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++) {
                uint8_t *px = dst + (size_t)y * pitch + 4 * x, r, g, b, a;
                pattern_rgba((int)x, (int)y, f, &r, &g, &b, &a);
                px[ri] = r;
                px[1] = g;
                px[bi] = b;
                px[3] = a;
            }
        return;
    }
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            dst[(size_t)y * pitch + x] = pattern_y((int)x, (int)y, f);
    uint8_t *c = dst + (size_t)pitch * h;
    if (fd->fmt == NV_ENC_BUFFER_FORMAT_NV12) {
        for (uint32_t y = 0; y < h / 2; y++)
            for (uint32_t x = 0; x < w / 2; x++) {
                c[(size_t)y * pitch + 2 * x] = pattern_u((int)x, (int)y, f);
                c[(size_t)y * pitch + 2 * x + 1] = pattern_v((int)x, (int)y, f);
            }
        return;
    }
    size_t cp = ((size_t)pitch + 1) / 2;
    uint8_t *first = c, *second = c + cp * (h / 2);
    uint8_t *pu = fd->fmt == NV_ENC_BUFFER_FORMAT_IYUV ? first : second;
    uint8_t *pv = fd->fmt == NV_ENC_BUFFER_FORMAT_IYUV ? second : first;
    for (uint32_t y = 0; y < h / 2; y++)
        for (uint32_t x = 0; x < w / 2; x++) {
            pu[(size_t)y * cp + x] = pattern_u((int)x, (int)y, f);
            pv[(size_t)y * cp + x] = pattern_v((int)x, (int)y, f);
        }
}

/* ------------------------------------------------- CUDA (--cuda, GPU only) */

/* The few libcuda entry points the self-test needs to put its pictures in
 * device memory, declared here (stable driver API) and loaded with dlopen. */
typedef struct {
    void *lib;
    void *ctx;
    int dev;
    int (*init)(unsigned);
    int (*device_get)(int *, int);
    int (*primary_retain)(void **, int);
    int (*primary_release)(int);
    int (*push)(void *);
    int (*pop)(void **);
    int (*alloc)(unsigned long long *, size_t);
    int (*free_)(unsigned long long);
    int (*htod)(unsigned long long, const void *, size_t);
    /* optional: --cuda-memory async / host */
    int (*alloc_async)(unsigned long long *, size_t, void *);
    int (*free_async)(unsigned long long, void *);
    int (*alloc_host)(void **, size_t);
    int (*free_host)(void *);
    int (*synchronize)(void);
} cuda_api;

static int cuda_open(cuda_api *cu)
{
    memset(cu, 0, sizeof *cu);
    cu->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!cu->lib) {
        fprintf(stderr, "selftest: --cuda: %s\n", dlerror());
        return -1;
    }
    *(void **)&cu->init = dlsym(cu->lib, "cuInit");
    *(void **)&cu->device_get = dlsym(cu->lib, "cuDeviceGet");
    *(void **)&cu->primary_retain = dlsym(cu->lib, "cuDevicePrimaryCtxRetain");
    *(void **)&cu->primary_release = dlsym(cu->lib, "cuDevicePrimaryCtxRelease_v2");
    *(void **)&cu->push = dlsym(cu->lib, "cuCtxPushCurrent_v2");
    *(void **)&cu->pop = dlsym(cu->lib, "cuCtxPopCurrent_v2");
    *(void **)&cu->alloc = dlsym(cu->lib, "cuMemAlloc_v2");
    *(void **)&cu->free_ = dlsym(cu->lib, "cuMemFree_v2");
    *(void **)&cu->htod = dlsym(cu->lib, "cuMemcpyHtoD_v2");
    *(void **)&cu->alloc_async = dlsym(cu->lib, "cuMemAllocAsync");
    *(void **)&cu->free_async = dlsym(cu->lib, "cuMemFreeAsync");
    *(void **)&cu->alloc_host = dlsym(cu->lib, "cuMemAllocHost_v2");
    *(void **)&cu->free_host = dlsym(cu->lib, "cuMemFreeHost");
    *(void **)&cu->synchronize = dlsym(cu->lib, "cuCtxSynchronize");
    if (!cu->init || !cu->device_get || !cu->primary_retain || !cu->primary_release || !cu->push ||
        !cu->pop || !cu->alloc || !cu->free_ || !cu->htod) {
        fprintf(stderr, "selftest: --cuda: libcuda lacks an entry point\n");
        return -1;
    }
    int rc;
    if ((rc = cu->init(0)) || (rc = cu->device_get(&cu->dev, 0)) || (rc = cu->primary_retain(&cu->ctx, cu->dev)) ||
        (rc = cu->push(cu->ctx))) {
        fprintf(stderr, "selftest: --cuda: CUDA initialisation failed with CUresult %d\n", rc);
        return -1;
    }
    return 0;
}

static void cuda_close(cuda_api *cu)
{
    if (!cu->lib)
        return;
    if (cu->ctx) {
        void *popped;
        cu->pop(&popped);
        cu->primary_release(cu->dev);
    }
    dlclose(cu->lib);
    cu->lib = NULL;
}

/* ------------------------------------------------------------------ client */

typedef struct {
    void *lib;
    NV_ENCODE_API_FUNCTION_LIST fl;
    void *enc;
    FILE *report;
    int (*emu_ledger)(int64_t *, int);
    const char *(*emu_ledger_names)(void);
    int (*emu_describe_pointer)(uint64_t, uint64_t, int, int, uint64_t, int, uint64_t);
    int (*emu_forget_pointer)(uint64_t);
} client;

static int client_load(client *c, const char *path, FILE *report)
{
    memset(c, 0, sizeof *c);
    c->report = report;
    c->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!c->lib) {
        fprintf(stderr, "selftest: dlopen(%s): %s\n", path, dlerror());
        return -1;
    }
    NVENCSTATUS (*create)(NV_ENCODE_API_FUNCTION_LIST *);
    *(void **)&create = dlsym(c->lib, "NvEncodeAPICreateInstance");
    *(void **)&c->emu_ledger = dlsym(c->lib, "emu_ledger");
    *(void **)&c->emu_ledger_names = dlsym(c->lib, "emu_ledger_names");
    *(void **)&c->emu_describe_pointer = dlsym(c->lib, "emu_describe_pointer");
    *(void **)&c->emu_forget_pointer = dlsym(c->lib, "emu_forget_pointer");
    if (!create) {
        fprintf(stderr, "selftest: %s has no NvEncodeAPICreateInstance\n", path);
        return -1;
    }
    c->fl.version = NV_ENCODE_API_FUNCTION_LIST_VER;
    NVENCSTATUS st = create(&c->fl);
    if (report)
        fprintf(report, "{\"call\":\"NvEncodeAPICreateInstance\",\"status\":%d}\n", st);
    return st == NV_ENC_SUCCESS ? 0 : -1;
}

static void client_unload(client *c)
{
    if (c->lib)
        dlclose(c->lib);
    c->lib = NULL;
}

static void report_ledger(client *c)
{
    if (!c->report || !c->emu_ledger)
        return;
    int64_t v[64];
    int n = c->emu_ledger(v, 64);
    char names[1024];
    snprintf(names, sizeof names, "%s", c->emu_ledger_names());
    fprintf(c->report, "{\"ledger\":{");
    char *save = NULL, *tok = strtok_r(names, ",", &save);
    for (int i = 0; tok && i < n && i < 64; i++, tok = strtok_r(NULL, ",", &save))
        fprintf(c->report, "%s\"%s\":%lld", i ? "," : "", tok, (long long)v[i]);
    fprintf(c->report, "}}\n");
}

static NVENCSTATUS open_session(client *c, void *cuda_context)
{
    NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS p = { 0 };
    p.version = NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER;
    p.deviceType = NV_ENC_DEVICE_TYPE_CUDA;
    p.device = cuda_context; /* NULL without CUDA: the emulator accepts any context */
    p.apiVersion = NVENCAPI_VERSION;
    c->enc = NULL;
    return c->fl.nvEncOpenEncodeSessionEx(&p, &c->enc);
}

/* ------------------------------------------------------------ encode mode */

typedef struct {
    int frame;
    uint32_t w, h;
    uint32_t bitrate;
    int force_idr, reset;
} reconfig;

typedef struct {
    const char *out_path, *report_path, *headers_path;
    const format_desc *fd;
    uint32_t w, h, pitch, max_w, max_h;
    int frames, buffers;
    uint32_t gop, idr_period;
    int intra_only;
    const char *force_idr, *force_intra, *output_spspps, *idr_types;
    GUID profile;
    uint32_t level;
    int repeat_spspps, disable_spspps, aud, colour709, full_range, restriction, no_ptd;
    uint32_t fps_num, fps_den;
    int preset; /* 1..7 */
    NV_ENC_TUNING_INFO tuning;
    reconfig reconfigs[8];
    int nreconfigs;
    int input_buffers; /* nvEncCreateInputBuffer instead of registered memory */
    int cuda;          /* register CUDA device memory (needs a GPU) */
    cuda_api *cu;
    int eos;
    int keep_going;
    const char *describe;  /* describe each surface to the emulator: device, host, managed, mempool, device1, context */
    int replace_at, forget_at; /* frame at which slot 0's allocation is replaced / freed (-1: never) */
    const char *streams;   /* nvEncSetIOCudaStreams: "live" or "changed" (the pointed-to value changes) */
    int leak_failed_open;  /* do not destroy the handle of a failed open */
    uint32_t vbv;          /* rcParams.vbvBufferSize (0: the preset's) */
    int cuda_memory;       /* with --cuda: 0 cuMemAlloc, 1 cuMemAllocAsync (a pool), 2 cuMemAllocHost */
    int cuda_realloc_at;   /* frame at which slot 0's device memory is freed and allocated again (-1: never) */
} encode_opts;

static int in_list(const char *list, int i)
{
    if (!list)
        return 0;
    const char *p = list;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            return 0;
        if (v == i)
            return 1;
        p = *end == ',' ? end + 1 : end;
    }
    return 0;
}

static const GUID *preset_guid(int n)
{
    static const GUID *const presets[] = { &NV_ENC_PRESET_P1_GUID, &NV_ENC_PRESET_P2_GUID, &NV_ENC_PRESET_P3_GUID,
                                           &NV_ENC_PRESET_P4_GUID, &NV_ENC_PRESET_P5_GUID, &NV_ENC_PRESET_P6_GUID,
                                           &NV_ENC_PRESET_P7_GUID };
    return presets[(n >= 1 && n <= 7 ? n : 4) - 1];
}

typedef struct {
    uint8_t *mem;
    unsigned long long dptr; /* device copy of `mem` with --cuda */
    uint32_t w, h, pitch;
    NV_ENC_REGISTERED_PTR reg;
    NV_ENC_INPUT_PTR inbuf;     /* when using nvEncCreateInputBuffer */
    NV_ENC_INPUT_PTR mapped;
    NV_ENC_OUTPUT_PTR out;
    int submitted;
    int frame;
    double encode_us;
    uint64_t buffer_id;         /* with --describe */
} slot;

static uint64_t next_buffer_id;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Device memory of the kind --cuda-memory asks for; 0 or a CUresult (-1: no such entry point). */
static int cuda_alloc(const encode_opts *o, unsigned long long *dptr, size_t n)
{
    cuda_api *cu = o->cu;
    if (o->cuda_memory == 1) {
        if (!cu->alloc_async || !cu->synchronize)
            return -1;
        int rc = cu->alloc_async(dptr, n, NULL);
        return rc ? rc : cu->synchronize();
    }
    if (o->cuda_memory == 2) {
        void *host = NULL;
        if (!cu->alloc_host)
            return -1;
        int rc = cu->alloc_host(&host, n);
        *dptr = (unsigned long long)(uintptr_t)host;
        return rc;
    }
    return cu->alloc(dptr, n);
}

static void cuda_free(const encode_opts *o, unsigned long long dptr)
{
    cuda_api *cu = o->cu;
    if (o->cuda_memory == 1) {
        cu->free_async(dptr, NULL);
        cu->synchronize();
    } else if (o->cuda_memory == 2) {
        cu->free_host((void *)(uintptr_t)dptr);
    } else {
        cu->free_(dptr);
    }
}

static void release_surface(client *c, const encode_opts *o, slot *s)
{
    if (s->mapped && s->reg)
        c->fl.nvEncUnmapInputResource(c->enc, s->mapped);
    s->mapped = NULL;
    if (s->reg)
        c->fl.nvEncUnregisterResource(c->enc, s->reg);
    if (s->inbuf)
        c->fl.nvEncDestroyInputBuffer(c->enc, s->inbuf);
    s->reg = s->inbuf = NULL;
    if (s->dptr)
        cuda_free(o, s->dptr);
    s->dptr = 0;
    if (o->describe && c->emu_forget_pointer && s->mem)
        c->emu_forget_pointer((uint64_t)(uintptr_t)s->mem);
    free(s->mem);
    s->mem = NULL;
}

static NVENCSTATUS make_surface(client *c, const encode_opts *o, slot *s, uint32_t w, uint32_t h)
{
    release_surface(c, o, s);
    s->w = w;
    s->h = h;
    if (o->input_buffers) {
        NV_ENC_CREATE_INPUT_BUFFER p = { 0 };
        p.version = NV_ENC_CREATE_INPUT_BUFFER_VER;
        p.width = w;
        p.height = h;
        p.bufferFmt = o->fd->fmt;
        NVENCSTATUS st = c->fl.nvEncCreateInputBuffer(c->enc, &p);
        s->inbuf = p.inputBuffer;
        return st;
    }
    uint32_t pitch = o->pitch ? o->pitch : w * (uint32_t)o->fd->bpp;
    if (o->pitch && o->pitch < w * (uint32_t)o->fd->bpp) /* a pitch for the original size only */
        pitch = (w * (uint32_t)o->fd->bpp + 63u) & ~63u;
    s->pitch = pitch;
    s->mem = malloc(surface_bytes(o->fd, pitch, h));
    if (o->cuda && cuda_alloc(o, &s->dptr, surface_bytes(o->fd, pitch, h))) {
        fprintf(stderr, "selftest: allocating CUDA memory (--cuda-memory %d) failed\n", o->cuda_memory);
        return NV_ENC_ERR_OUT_OF_MEMORY;
    }
    if (o->describe && c->emu_describe_pointer) {
        const char *k = o->describe;
        int kind = !strcmp(k, "host") ? 1 : !strcmp(k, "managed") ? 2 : 0;
        int device = !strcmp(k, "device1") ? 1 : 0;
        uint64_t context = !strcmp(k, "context") ? 0xC0DE0000u : 0;
        s->buffer_id = ++next_buffer_id;
        c->emu_describe_pointer((uint64_t)(uintptr_t)s->mem, surface_bytes(o->fd, pitch, h), kind, device, context,
                                !strcmp(k, "mempool"), s->buffer_id);
    }
    NV_ENC_REGISTER_RESOURCE r = { 0 };
    r.version = NV_ENC_REGISTER_RESOURCE_VER;
    r.resourceType = NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR;
    r.width = w;
    r.height = h;
    r.pitch = pitch;
    r.resourceToRegister = o->cuda ? (void *)(uintptr_t)s->dptr : s->mem;
    r.bufferFormat = o->fd->fmt;
    r.bufferUsage = NV_ENC_INPUT_IMAGE;
    NVENCSTATUS st = c->fl.nvEncRegisterResource(c->enc, &r);
    s->reg = r.registeredResource;
    return st;
}

static NVENCSTATUS fill_and_map(client *c, const encode_opts *o, slot *s, int f)
{
    if (s->inbuf) {
        NV_ENC_LOCK_INPUT_BUFFER l = { 0 };
        l.version = NV_ENC_LOCK_INPUT_BUFFER_VER;
        l.inputBuffer = s->inbuf;
        NVENCSTATUS st = c->fl.nvEncLockInputBuffer(c->enc, &l);
        if (st)
            return st;
        fill_surface(o->fd, l.bufferDataPtr, l.pitch, s->w, s->h, f);
        s->mapped = s->inbuf;
        return c->fl.nvEncUnlockInputBuffer(c->enc, s->inbuf);
    }
    fill_surface(o->fd, s->mem, s->pitch, s->w, s->h, f);
    if (o->cuda && o->cuda_memory == 2) {
        memcpy((void *)(uintptr_t)s->dptr, s->mem, surface_bytes(o->fd, s->pitch, s->h));
    } else if (o->cuda && o->cu->htod(s->dptr, s->mem, surface_bytes(o->fd, s->pitch, s->h))) {
        fprintf(stderr, "selftest: cuMemcpyHtoD failed\n");
        return NV_ENC_ERR_GENERIC;
    }
    NV_ENC_MAP_INPUT_RESOURCE m = { 0 };
    m.version = NV_ENC_MAP_INPUT_RESOURCE_VER;
    m.registeredResource = s->reg;
    NVENCSTATUS st = c->fl.nvEncMapInputResource(c->enc, &m);
    s->mapped = m.mappedResource;
    if (st == NV_ENC_SUCCESS && m.mappedBufferFmt != o->fd->fmt)
        fprintf(stderr, "selftest: mappedBufferFmt 0x%x, expected 0x%x\n", m.mappedBufferFmt, o->fd->fmt);
    return st;
}

static void init_params(const encode_opts *o, NV_ENC_INITIALIZE_PARAMS *ip, NV_ENC_CONFIG *cfg)
{
    memset(ip, 0, sizeof *ip);
    ip->version = NV_ENC_INITIALIZE_PARAMS_VER;
    ip->encodeGUID = NV_ENC_CODEC_H264_GUID;
    ip->presetGUID = *preset_guid(o->preset);
    ip->tuningInfo = o->tuning;
    ip->encodeWidth = o->w;
    ip->encodeHeight = o->h;
    ip->maxEncodeWidth = o->max_w;
    ip->maxEncodeHeight = o->max_h;
    ip->frameRateNum = o->fps_num;
    ip->frameRateDen = o->fps_den;
    ip->enablePTD = !o->no_ptd;
    ip->encodeConfig = cfg;
    cfg->gopLength = o->gop ? o->gop : NVENC_INFINITE_GOPLENGTH;
    cfg->frameIntervalP = o->intra_only ? 0 : 1;
    cfg->profileGUID = o->profile;
    NV_ENC_CONFIG_H264 *h = &cfg->encodeCodecConfig.h264Config;
    h->idrPeriod = o->idr_period ? o->idr_period : cfg->gopLength;
    h->level = o->level;
    h->repeatSPSPPS = (uint32_t)o->repeat_spspps;
    h->disableSPSPPS = (uint32_t)o->disable_spspps;
    h->outputAUD = (uint32_t)o->aud;
    NV_ENC_CONFIG_H264_VUI_PARAMETERS *vui = &h->h264VUIParameters;
    if (o->colour709 || o->full_range) {
        vui->videoSignalTypePresentFlag = 1;
        vui->videoFormat = NV_ENC_VUI_VIDEO_FORMAT_UNSPECIFIED;
        vui->videoFullRangeFlag = (uint32_t)o->full_range;
    }
    if (o->colour709) {
        vui->colourDescriptionPresentFlag = 1;
        vui->colourPrimaries = NV_ENC_VUI_COLOR_PRIMARIES_BT709;
        vui->transferCharacteristics = NV_ENC_VUI_TRANSFER_CHARACTERISTIC_BT709;
        vui->colourMatrix = NV_ENC_VUI_MATRIX_COEFFS_BT709;
    }
    vui->bitstreamRestrictionFlag = (uint32_t)o->restriction;
    if (o->vbv) { /* a one-frame VBV, as low-latency clients ask when the cap allows it */
        cfg->rcParams.vbvBufferSize = o->vbv;
        cfg->rcParams.vbvInitialDelay = o->vbv;
    }
}

static int run_encode(client *c, const encode_opts *o)
{
    FILE *out = o->out_path ? fopen(o->out_path, "wb") : NULL;
    int failures = 0;
    NVENCSTATUS st = open_session(c, o->cuda ? o->cu->ctx : NULL);
    fprintf(c->report, "{\"call\":\"nvEncOpenEncodeSessionEx\",\"status\":%d,\"handle\":%s}\n", st,
            c->enc ? "true" : "false");
    if (st) {
        /* the header: a failed open's session must still be destroyed */
        if (c->enc && !o->leak_failed_open) {
            NVENCSTATUS ds = c->fl.nvEncDestroyEncoder(c->enc);
            fprintf(c->report, "{\"call\":\"nvEncDestroyEncoder\",\"status\":%d}\n", ds);
        }
        c->enc = NULL;
        report_ledger(c);
        if (out)
            fclose(out);
        return 1;
    }
    void *streams[2] = { (void *)(uintptr_t)0x5100, (void *)(uintptr_t)0x5200 }; /* live as long as the session */
    if (o->streams) {
        NVENCSTATUS ss = c->fl.nvEncSetIOCudaStreams(c->enc, &streams[0], &streams[1]);
        fprintf(c->report, "{\"call\":\"nvEncSetIOCudaStreams\",\"status\":%d}\n", ss);
        if (!strcmp(o->streams, "changed"))
            streams[0] = (void *)(uintptr_t)0xBAD; /* what a reused temporary would hold */
    }
    NV_ENC_PRESET_CONFIG pc;
    memset(&pc, 0, sizeof pc);
    pc.version = NV_ENC_PRESET_CONFIG_VER;
    pc.presetCfg.version = NV_ENC_CONFIG_VER;
    st = c->fl.nvEncGetEncodePresetConfigEx(c->enc, NV_ENC_CODEC_H264_GUID, *preset_guid(o->preset), o->tuning, &pc);
    fprintf(c->report, "{\"call\":\"nvEncGetEncodePresetConfigEx\",\"status\":%d}\n", st);
    NV_ENC_CONFIG cfg = pc.presetCfg;
    NV_ENC_INITIALIZE_PARAMS ip;
    init_params(o, &ip, &cfg);
    st = c->fl.nvEncInitializeEncoder(c->enc, &ip);
    fprintf(c->report, "{\"call\":\"nvEncInitializeEncoder\",\"status\":%d}\n", st);
    failures += st != NV_ENC_SUCCESS;

    if (o->headers_path && !st) {
        uint8_t buf[NV_MAX_SEQ_HDR_LEN];
        uint32_t size = 0;
        NV_ENC_SEQUENCE_PARAM_PAYLOAD sp;
        memset(&sp, 0, sizeof sp);
        sp.version = NV_ENC_SEQUENCE_PARAM_PAYLOAD_VER;
        sp.inBufferSize = sizeof buf;
        sp.spsppsBuffer = buf;
        sp.outSPSPPSPayloadSize = &size;
        NVENCSTATUS hs = c->fl.nvEncGetSequenceParams(c->enc, &sp);
        fprintf(c->report, "{\"call\":\"nvEncGetSequenceParams\",\"status\":%d,\"size\":%u}\n", hs, size);
        FILE *hf = fopen(o->headers_path, "wb");
        if (hf) {
            fwrite(buf, 1, hs ? 0 : size, hf);
            fclose(hf);
        }
    }

    int nb = o->buffers > 0 ? o->buffers : 1;
    slot *slots = calloc((size_t)nb, sizeof *slots);
    uint32_t w = o->w, h = o->h;
    for (int i = 0; i < nb && !st; i++) {
        NV_ENC_CREATE_BITSTREAM_BUFFER bb = { 0 };
        bb.version = NV_ENC_CREATE_BITSTREAM_BUFFER_VER;
        st = c->fl.nvEncCreateBitstreamBuffer(c->enc, &bb);
        slots[i].out = bb.bitstreamBuffer;
        if (!st)
            st = make_surface(c, o, &slots[i], w, h);
        if (st)
            fprintf(c->report, "{\"call\":\"setup\",\"status\":%d}\n", st);
    }
    failures += st != NV_ENC_SUCCESS;

    int f = 0;
    while (!st && f < o->frames) {
        /* a batch of up to `nb` pictures in flight, then locked in submission order */
        int batch = 0;
        for (; batch < nb && f < o->frames; batch++, f++) {
            for (int r = 0; r < o->nreconfigs; r++) {
                const reconfig *rc = &o->reconfigs[r];
                if (rc->frame != f)
                    continue;
                NV_ENC_RECONFIGURE_PARAMS rp;
                memset(&rp, 0, sizeof rp);
                rp.version = NV_ENC_RECONFIGURE_PARAMS_VER;
                NV_ENC_CONFIG ncfg = cfg;
                encode_opts no = *o;
                no.w = rc->w;
                no.h = rc->h;
                init_params(&no, &rp.reInitEncodeParams, &ncfg);
                if (rc->bitrate)
                    ncfg.rcParams.averageBitRate = rc->bitrate;
                rp.forceIDR = (uint32_t)rc->force_idr;
                rp.resetEncoder = (uint32_t)rc->reset;
                NVENCSTATUS rs = c->fl.nvEncReconfigureEncoder(c->enc, &rp);
                fprintf(c->report, "{\"call\":\"nvEncReconfigureEncoder\",\"frame\":%d,\"status\":%d,\"width\":%u,\"height\":%u}\n",
                        f, rs, rc->w, rc->h);
                if (rs == NV_ENC_SUCCESS && (rc->w != w || rc->h != h)) {
                    w = rc->w;
                    h = rc->h;
                    cfg = ncfg;
                    /* all slots were locked and unmapped at the end of the previous batch */
                    for (int i = 0; i < nb; i++)
                        make_surface(c, o, &slots[i], w, h);
                } else if (rs == NV_ENC_SUCCESS) {
                    cfg = ncfg;
                }
                failures += rs != NV_ENC_SUCCESS;
            }
            slot *s = &slots[batch];
            s->frame = f;
            s->submitted = 0;
            if (f == o->replace_at && c->emu_describe_pointer && s->mem) /* freed and reallocated in place */
                c->emu_describe_pointer((uint64_t)(uintptr_t)s->mem, surface_bytes(o->fd, s->pitch, s->h), 0, 0, 0, 0,
                                        s->buffer_id + 1000);
            if (f == o->forget_at && c->emu_forget_pointer && s->mem)
                c->emu_forget_pointer((uint64_t)(uintptr_t)s->mem);
            if (f == o->cuda_realloc_at && s->dptr) { /* the registration now describes freed memory */
                unsigned long long old = s->dptr, fresh = 0;
                cuda_free(o, old);
                int rc = cuda_alloc(o, &fresh, surface_bytes(o->fd, s->pitch, s->h));
                s->dptr = rc ? 0 : fresh;
                fprintf(c->report, "{\"call\":\"realloc\",\"status\":%d,\"same_address\":%s}\n", rc,
                        fresh == old ? "true" : "false");
            }
            NVENCSTATUS ms = fill_and_map(c, o, s, f);
            if (ms) {
                fprintf(c->report, "{\"frame\":%d,\"call\":\"map\",\"status\":%d}\n", f, ms);
                failures++;
                continue;
            }
            NV_ENC_PIC_PARAMS pp;
            memset(&pp, 0, sizeof pp);
            pp.version = NV_ENC_PIC_PARAMS_VER;
            pp.inputWidth = w;
            pp.inputHeight = h;
            pp.inputPitch = s->pitch ? s->pitch : w;
            pp.inputBuffer = s->mapped;
            pp.outputBitstream = s->out;
            pp.bufferFmt = o->fd->fmt;
            pp.pictureStruct = NV_ENC_PIC_STRUCT_FRAME;
            pp.frameIdx = (uint32_t)f;
            pp.inputTimeStamp = (uint64_t)f * 1000 + 7;
            pp.inputDuration = 1000;
            if (in_list(o->force_idr, f))
                pp.encodePicFlags |= NV_ENC_PIC_FLAG_FORCEIDR;
            if (in_list(o->force_intra, f))
                pp.encodePicFlags |= NV_ENC_PIC_FLAG_FORCEINTRA;
            if (in_list(o->output_spspps, f))
                pp.encodePicFlags |= NV_ENC_PIC_FLAG_OUTPUT_SPSPPS;
            if (o->no_ptd)
                pp.pictureType = (f == 0 || in_list(o->idr_types, f)) ? NV_ENC_PIC_TYPE_IDR : NV_ENC_PIC_TYPE_P;
            double t0 = now_us();
            NVENCSTATUS es = c->fl.nvEncEncodePicture(c->enc, &pp);
            s->encode_us = now_us() - t0;
            if (es) {
                const char *msg = c->fl.nvEncGetLastErrorString(c->enc);
                fprintf(c->report, "{\"frame\":%d,\"call\":\"nvEncEncodePicture\",\"status\":%d,\"error_len\":%zu}\n",
                        f, es, strlen(msg));
                failures++;
                if (s->reg) {
                    NVENCSTATUS um = c->fl.nvEncUnmapInputResource(c->enc, s->mapped);
                    fprintf(c->report, "{\"frame\":%d,\"call\":\"unmap after failure\",\"status\":%d}\n", f, um);
                }
                s->mapped = NULL;
                if (!o->keep_going)
                    st = es;
                continue;
            }
            s->submitted = 1;
        }
        for (int i = 0; i < batch; i++) {
            slot *s = &slots[i];
            if (!s->submitted)
                continue;
            NV_ENC_LOCK_BITSTREAM lb;
            memset(&lb, 0, sizeof lb);
            lb.version = NV_ENC_LOCK_BITSTREAM_VER;
            lb.outputBitstream = s->out;
            NVENCSTATUS ls = c->fl.nvEncLockBitstream(c->enc, &lb);
            if (ls) {
                fprintf(c->report, "{\"frame\":%d,\"call\":\"nvEncLockBitstream\",\"status\":%d}\n", s->frame, ls);
                failures++;
            } else {
                if (out)
                    fwrite(lb.bitstreamBufferPtr, 1, lb.bitstreamSizeInBytes, out);
                fprintf(c->report,
                        "{\"frame\":%d,\"status\":0,\"type\":%d,\"size\":%u,\"frame_idx\":%u,\"ts\":%llu,"
                        "\"duration\":%llu,\"width\":%u,\"height\":%u,\"encode_us\":%.1f}\n",
                        s->frame, lb.pictureType, lb.bitstreamSizeInBytes, lb.frameIdx,
                        (unsigned long long)lb.outputTimeStamp, (unsigned long long)lb.outputDuration,
                        s->w, s->h, s->encode_us);
                NVENCSTATUS us = c->fl.nvEncUnlockBitstream(c->enc, s->out);
                failures += us != NV_ENC_SUCCESS;
            }
            if (s->reg) {
                NVENCSTATUS um = c->fl.nvEncUnmapInputResource(c->enc, s->mapped);
                failures += um != NV_ENC_SUCCESS;
            }
            s->mapped = NULL;
        }
    }
    if (o->eos && c->enc) {
        NV_ENC_PIC_PARAMS pp;
        memset(&pp, 0, sizeof pp);
        pp.version = NV_ENC_PIC_PARAMS_VER;
        pp.encodePicFlags = NV_ENC_PIC_FLAG_EOS;
        NVENCSTATUS es = c->fl.nvEncEncodePicture(c->enc, &pp);
        fprintf(c->report, "{\"call\":\"eos\",\"status\":%d}\n", es);
        failures += es != NV_ENC_SUCCESS;
    }
    for (int i = 0; i < nb; i++) {
        release_surface(c, o, &slots[i]);
        if (slots[i].out)
            c->fl.nvEncDestroyBitstreamBuffer(c->enc, slots[i].out);
    }
    free(slots);
    NVENCSTATUS ds = c->fl.nvEncDestroyEncoder(c->enc);
    fprintf(c->report, "{\"call\":\"nvEncDestroyEncoder\",\"status\":%d}\n", ds);
    report_ledger(c);
    if (out)
        fclose(out);
    return failures ? 1 : 0;
}

static const format_desc *find_format(const char *name)
{
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (strcmp(formats[i].name, name) == 0)
            return &formats[i];
    return NULL;
}

static int parse_profile(const char *name, GUID *out)
{
    static const struct { const char *name; const GUID *guid; } profiles[] = {
        { "auto", &NV_ENC_CODEC_PROFILE_AUTOSELECT_GUID },
        { "baseline", &NV_ENC_H264_PROFILE_BASELINE_GUID },
        { "main", &NV_ENC_H264_PROFILE_MAIN_GUID },
        { "high", &NV_ENC_H264_PROFILE_HIGH_GUID },
        { "high444", &NV_ENC_H264_PROFILE_HIGH_444_GUID },
        { "progressive-high", &NV_ENC_H264_PROFILE_PROGRESSIVE_HIGH_GUID },
        { "constrained-high", &NV_ENC_H264_PROFILE_CONSTRAINED_HIGH_GUID },
        { "hevc-main", &NV_ENC_HEVC_PROFILE_MAIN_GUID },
    };
    for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; i++)
        if (strcmp(profiles[i].name, name) == 0) {
            *out = *profiles[i].guid;
            return 0;
        }
    return -1;
}

static int parse_encode(int argc, char **argv, encode_opts *o)
{
    memset(o, 0, sizeof *o);
    o->fd = &formats[0];
    o->w = 320;
    o->h = 240;
    o->replace_at = o->forget_at = o->cuda_realloc_at = -1;
    o->frames = 1;
    o->buffers = 1;
    o->preset = 4;
    o->tuning = NV_ENC_TUNING_INFO_LOW_LATENCY;
    o->profile = NV_ENC_CODEC_PROFILE_AUTOSELECT_GUID;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define VAL() (v ? (i++, v) : (fprintf(stderr, "selftest: %s needs a value\n", a), (const char *)NULL))
        if (!strcmp(a, "--out")) { if (!(o->out_path = VAL())) return -1; }
        else if (!strcmp(a, "--report")) { if (!(o->report_path = VAL())) return -1; }
        else if (!strcmp(a, "--headers")) { if (!(o->headers_path = VAL())) return -1; }
        else if (!strcmp(a, "--fmt")) { const char *n = VAL(); if (!n || !(o->fd = find_format(n))) return -1; }
        else if (!strcmp(a, "--size")) { const char *n = VAL(); if (!n || sscanf(n, "%ux%u", &o->w, &o->h) != 2) return -1; }
        else if (!strcmp(a, "--max")) { const char *n = VAL(); if (!n || sscanf(n, "%ux%u", &o->max_w, &o->max_h) != 2) return -1; }
        else if (!strcmp(a, "--pitch")) { const char *n = VAL(); if (!n) return -1; o->pitch = (uint32_t)atoi(n); }
        else if (!strcmp(a, "--frames")) { const char *n = VAL(); if (!n) return -1; o->frames = atoi(n); }
        else if (!strcmp(a, "--buffers")) { const char *n = VAL(); if (!n) return -1; o->buffers = atoi(n); }
        else if (!strcmp(a, "--gop")) { const char *n = VAL(); if (!n) return -1; o->gop = (uint32_t)atoi(n); }
        else if (!strcmp(a, "--idr-period")) { const char *n = VAL(); if (!n) return -1; o->idr_period = (uint32_t)atoi(n); }
        else if (!strcmp(a, "--force-idr")) { if (!(o->force_idr = VAL())) return -1; }
        else if (!strcmp(a, "--force-intra")) { if (!(o->force_intra = VAL())) return -1; }
        else if (!strcmp(a, "--output-spspps")) { if (!(o->output_spspps = VAL())) return -1; }
        else if (!strcmp(a, "--idr-types")) { if (!(o->idr_types = VAL())) return -1; } /* with --no-ptd */
        else if (!strcmp(a, "--profile")) { const char *n = VAL(); if (!n || parse_profile(n, &o->profile)) return -1; }
        else if (!strcmp(a, "--level")) { const char *n = VAL(); if (!n) return -1; o->level = (uint32_t)atoi(n); }
        else if (!strcmp(a, "--fps")) { const char *n = VAL(); if (!n || sscanf(n, "%u/%u", &o->fps_num, &o->fps_den) != 2) return -1; }
        else if (!strcmp(a, "--preset")) { const char *n = VAL(); if (!n) return -1; o->preset = atoi(n); }
        else if (!strcmp(a, "--tuning")) { const char *n = VAL(); if (!n) return -1; o->tuning = (NV_ENC_TUNING_INFO)atoi(n); }
        else if (!strcmp(a, "--reconfigure")) {
            /* FRAME:WxH[:BITRATE[:FLAGS]]  flags: i = forceIDR, r = resetEncoder */
            const char *n = VAL();
            if (!n || o->nreconfigs == 8)
                return -1;
            reconfig *r = &o->reconfigs[o->nreconfigs++];
            char flags[8] = "";
            int k = sscanf(n, "%d:%ux%u:%u:%7s", &r->frame, &r->w, &r->h, &r->bitrate, flags);
            if (k < 3)
                return -1;
            r->force_idr = strchr(flags, 'i') != NULL;
            r->reset = strchr(flags, 'r') != NULL;
        }
        else if (!strcmp(a, "--repeat-spspps")) o->repeat_spspps = 1;
        else if (!strcmp(a, "--disable-spspps")) o->disable_spspps = 1;
        else if (!strcmp(a, "--aud")) o->aud = 1;
        else if (!strcmp(a, "--bt709")) o->colour709 = 1;
        else if (!strcmp(a, "--full-range")) o->full_range = 1;
        else if (!strcmp(a, "--bitstream-restriction")) o->restriction = 1;
        else if (!strcmp(a, "--no-ptd")) o->no_ptd = 1;
        else if (!strcmp(a, "--intra-only")) o->intra_only = 1;
        else if (!strcmp(a, "--input-buffers")) o->input_buffers = 1;
        else if (!strcmp(a, "--cuda")) o->cuda = 1;
        else if (!strcmp(a, "--eos")) o->eos = 1;
        else if (!strcmp(a, "--keep-going")) o->keep_going = 1;
        else if (!strcmp(a, "--describe")) { if (!(o->describe = VAL())) return -1; }
        else if (!strcmp(a, "--replace-at")) { const char *n = VAL(); if (!n) return -1; o->replace_at = atoi(n); }
        else if (!strcmp(a, "--forget-at")) { const char *n = VAL(); if (!n) return -1; o->forget_at = atoi(n); }
        else if (!strcmp(a, "--streams")) { if (!(o->streams = VAL())) return -1; }
        else if (!strcmp(a, "--leak-failed-open")) o->leak_failed_open = 1;
        else if (!strcmp(a, "--vbv")) { const char *n = VAL(); if (!n) return -1; o->vbv = (uint32_t)atoi(n); }
        else if (!strcmp(a, "--cuda-memory")) {
            const char *n = VAL();
            if (!n)
                return -1;
            o->cuda_memory = !strcmp(n, "async") ? 1 : !strcmp(n, "host") ? 2 : !strcmp(n, "alloc") ? 0 : -1;
            if (o->cuda_memory < 0)
                return -1;
        }
        else if (!strcmp(a, "--cuda-realloc-at")) { const char *n = VAL(); if (!n) return -1; o->cuda_realloc_at = atoi(n); }
        else {
            fprintf(stderr, "selftest: unknown option %s\n", a);
            return -1;
        }
#undef VAL
    }
    return 0;
}

/* --------------------------------------------------------------- api mode */

typedef struct {
    client *c;
    int checks, failures;
} battery;

static void expect(battery *b, const char *what, NVENCSTATUS got, NVENCSTATUS want)
{
    b->checks++;
    if (got == want) {
        fprintf(b->c->report, "{\"check\":\"%s\",\"ok\":true}\n", what);
        return;
    }
    b->failures++;
    const char *msg = b->c->enc ? b->c->fl.nvEncGetLastErrorString(b->c->enc) : "";
    fprintf(b->c->report, "{\"check\":\"%s\",\"ok\":false,\"got\":%d,\"want\":%d}\n", what, got, want);
    fprintf(stderr, "selftest: %s: got %d, want %d (%s)\n", what, got, want, msg);
}

static void expect_true(battery *b, const char *what, int cond)
{
    expect(b, what, cond ? NV_ENC_SUCCESS : NV_ENC_ERR_GENERIC, NV_ENC_SUCCESS);
}

static void expect_error_mentions(battery *b, const char *what, const char *needle)
{
    const char *msg = b->c->fl.nvEncGetLastErrorString(b->c->enc);
    expect_true(b, what, msg && strstr(msg, needle) != NULL);
}

static int64_t ledger_value(client *c, const char *key)
{
    if (!c->emu_ledger)
        return -1;
    int64_t v[64];
    int n = c->emu_ledger(v, 64);
    char names[1024];
    snprintf(names, sizeof names, "%s", c->emu_ledger_names());
    char *save = NULL, *tok = strtok_r(names, ",", &save);
    for (int i = 0; tok && i < n; i++, tok = strtok_r(NULL, ",", &save))
        if (!strcmp(tok, key))
            return v[i];
    return -1;
}

static NV_ENC_INITIALIZE_PARAMS default_init(NV_ENC_CONFIG *cfg, uint32_t w, uint32_t h)
{
    NV_ENC_INITIALIZE_PARAMS ip;
    memset(&ip, 0, sizeof ip);
    memset(cfg, 0, sizeof *cfg);
    cfg->version = NV_ENC_CONFIG_VER;
    cfg->profileGUID = NV_ENC_H264_PROFILE_HIGH_GUID;
    cfg->gopLength = NVENC_INFINITE_GOPLENGTH;
    cfg->frameIntervalP = 1;
    cfg->rcParams.rateControlMode = NV_ENC_PARAMS_RC_CBR;
    cfg->rcParams.averageBitRate = 4000000;
    cfg->encodeCodecConfig.h264Config.idrPeriod = NVENC_INFINITE_GOPLENGTH;
    cfg->encodeCodecConfig.h264Config.chromaFormatIDC = 1;
    ip.version = NV_ENC_INITIALIZE_PARAMS_VER;
    ip.encodeGUID = NV_ENC_CODEC_H264_GUID;
    ip.presetGUID = NV_ENC_PRESET_P1_GUID;
    ip.tuningInfo = NV_ENC_TUNING_INFO_ULTRA_LOW_LATENCY;
    ip.encodeWidth = w;
    ip.encodeHeight = h;
    ip.maxEncodeWidth = 640;
    ip.maxEncodeHeight = 480;
    ip.frameRateNum = 60;
    ip.frameRateDen = 1;
    ip.enablePTD = 1;
    ip.encodeConfig = cfg;
    return ip;
}

static int run_api(client *c)
{
    battery b = { c, 0, 0 };
    char what[128];
    NVENCSTATUS st;
    void *enc = NULL;
    uint32_t n = 0;

    /* ---- session open */
    NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS op;
    memset(&op, 0, sizeof op);
    op.version = NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER + 1;
    op.deviceType = NV_ENC_DEVICE_TYPE_CUDA;
    op.apiVersion = NVENCAPI_VERSION;
    expect(&b, "open: wrong struct version", c->fl.nvEncOpenEncodeSessionEx(&op, &enc), NV_ENC_ERR_INVALID_VERSION);
    /* the header: a failed open's session must be destroyed; it holds the failure text */
    expect_true(&b, "failed open: a handle to destroy", enc != NULL && ledger_value(c, "failed_open_leaks") == 1 &&
                                                         ledger_value(c, "sessions") == 0);
    const char *why = c->fl.nvEncGetLastErrorString(enc);
    expect_true(&b, "failed open: its last error says why", why && strstr(why, "NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS.version"));
    expect(&b, "failed open: no other call", c->fl.nvEncGetEncodeGUIDCount(enc, &n), NV_ENC_ERR_INVALID_CALL);
    expect(&b, "failed open: destroy", c->fl.nvEncDestroyEncoder(enc), NV_ENC_SUCCESS);
    expect_true(&b, "failed open: nothing left", ledger_value(c, "failed_open_leaks") == 0);
    op.version = NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER;
    expect(&b, "open: NULL params", c->fl.nvEncOpenEncodeSessionEx(NULL, &enc), NV_ENC_ERR_INVALID_PTR);
    expect_true(&b, "open: NULL params gives no handle", enc == NULL);
    expect(&b, "open: NULL encoder out", c->fl.nvEncOpenEncodeSessionEx(&op, NULL), NV_ENC_ERR_INVALID_PTR);
    op.apiVersion = NVENCAPI_MAJOR_VERSION | (2u << 24);
    expect(&b, "open: apiVersion other than 12.1", c->fl.nvEncOpenEncodeSessionEx(&op, &enc), NV_ENC_ERR_INVALID_VERSION);
    expect(&b, "open: destroy after apiVersion", c->fl.nvEncDestroyEncoder(enc), NV_ENC_SUCCESS);
    op.apiVersion = 14;
    expect(&b, "open: apiVersion newer than max", c->fl.nvEncOpenEncodeSessionEx(&op, &enc), NV_ENC_ERR_INVALID_VERSION);
    expect(&b, "open: destroy after newer apiVersion", c->fl.nvEncDestroyEncoder(enc), NV_ENC_SUCCESS);
    op.apiVersion = NVENCAPI_VERSION;
    op.reserved1[7] = 1;
    expect(&b, "open: reserved1 not zero", c->fl.nvEncOpenEncodeSessionEx(&op, &enc), NV_ENC_ERR_INVALID_PARAM);
    why = c->fl.nvEncGetLastErrorString(enc);
    expect_true(&b, "open: reserved error names the field", why && strstr(why, "NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS.reserved1[7]"));
    expect(&b, "open: destroy after reserved", c->fl.nvEncDestroyEncoder(enc), NV_ENC_SUCCESS);
    op.reserved1[7] = 0;
    op.deviceType = NV_ENC_DEVICE_TYPE_DIRECTX;
    expect(&b, "open: DirectX device type", c->fl.nvEncOpenEncodeSessionEx(&op, &enc), NV_ENC_ERR_UNSUPPORTED_DEVICE);
    expect(&b, "open: destroy after DirectX", c->fl.nvEncDestroyEncoder(enc), NV_ENC_SUCCESS);
    expect_true(&b, "open: every failed handle destroyed", ledger_value(c, "failed_open_leaks") == 0);
    op.deviceType = NV_ENC_DEVICE_TYPE_CUDA;
    expect(&b, "open: ok", c->fl.nvEncOpenEncodeSessionEx(&op, &enc), NV_ENC_SUCCESS);
    c->enc = enc;
    expect_true(&b, "ledger: one session", ledger_value(c, "sessions") == 1);

    /* ---- unimplemented, and stale handles */
    expect(&b, "nvEncGetEncodeStats unimplemented", c->fl.nvEncGetEncodeStats(enc, NULL), NV_ENC_ERR_UNIMPLEMENTED);
    expect(&b, "nvEncRestoreEncoderState unimplemented", c->fl.nvEncRestoreEncoderState(enc, NULL), NV_ENC_ERR_UNIMPLEMENTED);
    expect(&b, "nvEncLookaheadPicture unimplemented", c->fl.nvEncLookaheadPicture(enc, NULL), NV_ENC_ERR_UNIMPLEMENTED);
    expect(&b, "nvEncInvalidateRefFrames unimplemented", c->fl.nvEncInvalidateRefFrames(enc, 0), NV_ENC_ERR_UNIMPLEMENTED);
    expect(&b, "nvEncCreateMVBuffer unimplemented", c->fl.nvEncCreateMVBuffer(enc, NULL), NV_ENC_ERR_UNIMPLEMENTED);
    expect(&b, "nvEncRegisterAsyncEvent unimplemented", c->fl.nvEncRegisterAsyncEvent(enc, NULL), NV_ENC_ERR_UNIMPLEMENTED);
    expect_error_mentions(&b, "last error names the function", "nvEncRegisterAsyncEvent");
    int bogus;
    expect(&b, "bogus encoder handle", c->fl.nvEncGetEncodeGUIDCount(&bogus, (uint32_t *)&bogus), NV_ENC_ERR_INVALID_ENCODERDEVICE);
    int64_t null_calls = ledger_value(c, "null_session_calls");
    expect(&b, "NULL encoder handle", c->fl.nvEncGetEncodeGUIDCount(NULL, (uint32_t *)&bogus), NV_ENC_ERR_INVALID_PTR);
    expect_true(&b, "NULL encoder handle: a last error string still", c->fl.nvEncGetLastErrorString(NULL) != NULL);
    expect_true(&b, "ledger: two NULL-session calls", ledger_value(c, "null_session_calls") - null_calls == 2);

    /* ---- queries */
    n = 0;
    expect(&b, "GUID count", c->fl.nvEncGetEncodeGUIDCount(enc, &n), NV_ENC_SUCCESS);
    expect_true(&b, "one codec", n == 1);
    GUID guids[16];
    expect(&b, "GUIDs", c->fl.nvEncGetEncodeGUIDs(enc, guids, 16, &n), NV_ENC_SUCCESS);
    expect_true(&b, "codec is H.264", n == 1 && !memcmp(&guids[0], &NV_ENC_CODEC_H264_GUID, sizeof(GUID)));
    expect(&b, "GUIDs: NULL count", c->fl.nvEncGetEncodeGUIDs(enc, guids, 16, NULL), NV_ENC_ERR_INVALID_PTR);
    expect(&b, "profile count", c->fl.nvEncGetEncodeProfileGUIDCount(enc, NV_ENC_CODEC_H264_GUID, &n), NV_ENC_SUCCESS);
    expect_true(&b, "profiles >= 4", n >= 4);
    expect(&b, "profiles", c->fl.nvEncGetEncodeProfileGUIDs(enc, NV_ENC_CODEC_H264_GUID, guids, 16, &n), NV_ENC_SUCCESS);
    int has_high = 0;
    for (uint32_t i = 0; i < n; i++)
        has_high |= !memcmp(&guids[i], &NV_ENC_H264_PROFILE_HIGH_GUID, sizeof(GUID));
    expect_true(&b, "profiles include High", has_high);
    expect(&b, "profiles of HEVC", c->fl.nvEncGetEncodeProfileGUIDs(enc, NV_ENC_CODEC_HEVC_GUID, guids, 16, &n), NV_ENC_ERR_UNSUPPORTED_PARAM);
    expect(&b, "input format count", c->fl.nvEncGetInputFormatCount(enc, NV_ENC_CODEC_H264_GUID, &n), NV_ENC_SUCCESS);
    NV_ENC_BUFFER_FORMAT fmts[16];
    expect(&b, "input formats", c->fl.nvEncGetInputFormats(enc, NV_ENC_CODEC_H264_GUID, fmts, 16, &n), NV_ENC_SUCCESS);
    int has_nv12 = 0, has_abgr = 0;
    for (uint32_t i = 0; i < n; i++) {
        has_nv12 |= fmts[i] == NV_ENC_BUFFER_FORMAT_NV12;
        has_abgr |= fmts[i] == NV_ENC_BUFFER_FORMAT_ABGR;
    }
    expect_true(&b, "formats include NV12 and ABGR", has_nv12 && has_abgr);
    expect(&b, "preset count", c->fl.nvEncGetEncodePresetCount(enc, NV_ENC_CODEC_H264_GUID, &n), NV_ENC_SUCCESS);
    expect_true(&b, "seven presets", n == 7);
    expect(&b, "preset GUIDs", c->fl.nvEncGetEncodePresetGUIDs(enc, NV_ENC_CODEC_H264_GUID, guids, 16, &n), NV_ENC_SUCCESS);
    expect_true(&b, "P1 first", !memcmp(&guids[0], &NV_ENC_PRESET_P1_GUID, sizeof(GUID)));

    struct { NV_ENC_CAPS cap; int want; } caps[] = {
        { NV_ENC_CAPS_WIDTH_MAX, 4096 }, { NV_ENC_CAPS_HEIGHT_MAX, 4096 },
        { NV_ENC_CAPS_WIDTH_MIN, 145 }, { NV_ENC_CAPS_HEIGHT_MIN, 49 },
        { NV_ENC_CAPS_SUPPORT_CUSTOM_VBV_BUF_SIZE, 1 },
        { NV_ENC_CAPS_SUPPORT_DYN_RES_CHANGE, 1 }, { NV_ENC_CAPS_SUPPORT_DYN_BITRATE_CHANGE, 1 },
        { NV_ENC_CAPS_NUM_MAX_BFRAMES, 0 }, { NV_ENC_CAPS_ASYNC_ENCODE_SUPPORT, 0 },
    };
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        NV_ENC_CAPS_PARAM cp;
        memset(&cp, 0, sizeof cp);
        cp.version = NV_ENC_CAPS_PARAM_VER;
        cp.capsToQuery = caps[i].cap;
        int v = -1;
        snprintf(what, sizeof what, "caps %d", (int)caps[i].cap);
        expect(&b, what, c->fl.nvEncGetEncodeCaps(enc, NV_ENC_CODEC_H264_GUID, &cp, &v), NV_ENC_SUCCESS);
        snprintf(what, sizeof what, "caps %d value %d", (int)caps[i].cap, caps[i].want);
        expect_true(&b, what, v == caps[i].want);
    }
    NV_ENC_CAPS_PARAM cp;
    memset(&cp, 0, sizeof cp);
    cp.version = NV_ENC_CAPS_PARAM_VER;
    cp.capsToQuery = NV_ENC_CAPS_WIDTH_MIN;
    cp.reserved[3] = 9;
    int v;
    expect(&b, "caps: reserved not zero", c->fl.nvEncGetEncodeCaps(enc, NV_ENC_CODEC_H264_GUID, &cp, &v), NV_ENC_ERR_INVALID_PARAM);
    expect_error_mentions(&b, "caps: reserved error names the field", "NV_ENC_CAPS_PARAM.reserved[3] is 0x9");
    cp.reserved[3] = 0;
    cp.capsToQuery = NV_ENC_CAPS_EXPOSED_COUNT;
    expect(&b, "caps: out of range", c->fl.nvEncGetEncodeCaps(enc, NV_ENC_CODEC_H264_GUID, &cp, &v), NV_ENC_ERR_INVALID_PARAM);
    cp.version = 0;
    expect(&b, "caps: wrong version", c->fl.nvEncGetEncodeCaps(enc, NV_ENC_CODEC_H264_GUID, &cp, &v), NV_ENC_ERR_INVALID_VERSION);
    expect_error_mentions(&b, "version error names the struct", "NV_ENC_CAPS_PARAM");

    NV_ENC_PRESET_CONFIG *pc = calloc(1, sizeof *pc);
    pc->version = NV_ENC_PRESET_CONFIG_VER;
    pc->presetCfg.version = NV_ENC_CONFIG_VER;
    const GUID *presets[] = { &NV_ENC_PRESET_P1_GUID, &NV_ENC_PRESET_P2_GUID, &NV_ENC_PRESET_P3_GUID, &NV_ENC_PRESET_P4_GUID,
                              &NV_ENC_PRESET_P5_GUID, &NV_ENC_PRESET_P6_GUID, &NV_ENC_PRESET_P7_GUID };
    for (int p = 0; p < 7; p++)
        for (int t = 1; t <= 4; t++) {
            snprintf(what, sizeof what, "preset P%d tuning %d", p + 1, t);
            expect(&b, what, c->fl.nvEncGetEncodePresetConfigEx(enc, NV_ENC_CODEC_H264_GUID, *presets[p], (NV_ENC_TUNING_INFO)t, pc), NV_ENC_SUCCESS);
            snprintf(what, sizeof what, "preset P%d tuning %d is sane", p + 1, t);
            expect_true(&b, what, pc->presetCfg.version == NV_ENC_CONFIG_VER && pc->presetCfg.gopLength > 0 &&
                                      pc->presetCfg.frameIntervalP == 1 &&
                                      pc->presetCfg.encodeCodecConfig.h264Config.chromaFormatIDC == 1 &&
                                      (t != NV_ENC_TUNING_INFO_LOW_LATENCY || pc->presetCfg.rcParams.rateControlMode == NV_ENC_PARAMS_RC_CBR));
        }
    expect(&b, "preset: undefined tuning", c->fl.nvEncGetEncodePresetConfigEx(enc, NV_ENC_CODEC_H264_GUID, NV_ENC_PRESET_P4_GUID, NV_ENC_TUNING_INFO_UNDEFINED, pc), NV_ENC_ERR_INVALID_PARAM);
    expect(&b, "preset: unknown preset", c->fl.nvEncGetEncodePresetConfigEx(enc, NV_ENC_CODEC_H264_GUID, NV_ENC_CODEC_H264_GUID, NV_ENC_TUNING_INFO_LOW_LATENCY, pc), NV_ENC_ERR_UNSUPPORTED_PARAM);
    pc->presetCfg.version = 0;
    expect(&b, "preset: wrong NV_ENC_CONFIG version", c->fl.nvEncGetEncodePresetConfigEx(enc, NV_ENC_CODEC_H264_GUID, NV_ENC_PRESET_P4_GUID, NV_ENC_TUNING_INFO_LOW_LATENCY, pc), NV_ENC_ERR_INVALID_VERSION);
    pc->presetCfg.version = NV_ENC_CONFIG_VER;
    pc->version = 0;
    expect(&b, "preset: wrong NV_ENC_PRESET_CONFIG version", c->fl.nvEncGetEncodePresetConfigEx(enc, NV_ENC_CODEC_H264_GUID, NV_ENC_PRESET_P4_GUID, NV_ENC_TUNING_INFO_LOW_LATENCY, pc), NV_ENC_ERR_INVALID_VERSION);
    free(pc);

    /* ---- calls before initialize */
    NV_ENC_CREATE_BITSTREAM_BUFFER bb;
    memset(&bb, 0, sizeof bb);
    bb.version = NV_ENC_CREATE_BITSTREAM_BUFFER_VER;
    expect(&b, "bitstream buffer before init", c->fl.nvEncCreateBitstreamBuffer(enc, &bb), NV_ENC_ERR_ENCODER_NOT_INITIALIZED);
    uint8_t *mem = calloc(1, 256 * 256 * 4);
    NV_ENC_REGISTER_RESOURCE rr;
    memset(&rr, 0, sizeof rr);
    rr.version = NV_ENC_REGISTER_RESOURCE_VER;
    rr.resourceType = NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR;
    rr.width = 320;
    rr.height = 240;
    rr.pitch = 320;
    rr.resourceToRegister = mem;
    rr.bufferFormat = NV_ENC_BUFFER_FORMAT_NV12;
    rr.bufferUsage = NV_ENC_INPUT_IMAGE;
    expect(&b, "register before init", c->fl.nvEncRegisterResource(enc, &rr), NV_ENC_ERR_ENCODER_NOT_INITIALIZED);
    NV_ENC_PIC_PARAMS pp;
    memset(&pp, 0, sizeof pp);
    pp.version = NV_ENC_PIC_PARAMS_VER;
    expect(&b, "encode before init", c->fl.nvEncEncodePicture(enc, &pp), NV_ENC_ERR_ENCODER_NOT_INITIALIZED);
    uint8_t hdr[NV_MAX_SEQ_HDR_LEN];
    uint32_t hdr_size = 0;
    NV_ENC_SEQUENCE_PARAM_PAYLOAD sp;
    memset(&sp, 0, sizeof sp);
    sp.version = NV_ENC_SEQUENCE_PARAM_PAYLOAD_VER;
    sp.inBufferSize = sizeof hdr;
    sp.spsppsBuffer = hdr;
    sp.outSPSPPSPayloadSize = &hdr_size;
    expect(&b, "sequence params before init", c->fl.nvEncGetSequenceParams(enc, &sp), NV_ENC_ERR_ENCODER_NOT_INITIALIZED);

    /* ---- initialize validation */
    NV_ENC_CONFIG cfg;
    NV_ENC_INITIALIZE_PARAMS ip = default_init(&cfg, 320, 240);
    expect(&b, "sequence param ex before init", c->fl.nvEncGetSequenceParamEx(enc, &ip, &sp), NV_ENC_SUCCESS);
    expect_true(&b, "sequence param ex wrote SPS+PPS", hdr_size > 8 && hdr[4] == 0x67);
    ip.version = 0;
    expect(&b, "init: wrong version", c->fl.nvEncInitializeEncoder(enc, &ip), NV_ENC_ERR_INVALID_VERSION);
    ip = default_init(&cfg, 320, 240);
    cfg.version = 0;
    expect(&b, "init: wrong NV_ENC_CONFIG version", c->fl.nvEncInitializeEncoder(enc, &ip), NV_ENC_ERR_INVALID_VERSION);
    ip = default_init(&cfg, 320, 240);
    ip.encodeGUID = NV_ENC_CODEC_HEVC_GUID;
    expect(&b, "init: HEVC", c->fl.nvEncInitializeEncoder(enc, &ip), NV_ENC_ERR_UNSUPPORTED_PARAM);
    ip = default_init(&cfg, 8192, 240);
    ip.maxEncodeWidth = ip.maxEncodeHeight = 0;
    expect(&b, "init: too wide", c->fl.nvEncInitializeEncoder(enc, &ip), NV_ENC_ERR_INVALID_PARAM);
    ip = default_init(&cfg, 144, 240);
    expect(&b, "init: narrower than NV_ENC_CAPS_WIDTH_MIN", c->fl.nvEncInitializeEncoder(enc, &ip), NV_ENC_ERR_INVALID_PARAM);
    expect_error_mentions(&b, "init: the driver's words for it", "Frame Dimension less than the minimum supported value");
    ip = default_init(&cfg, 320, 48);
    expect(&b, "init: lower than NV_ENC_CAPS_HEIGHT_MIN", c->fl.nvEncInitializeEncoder(enc, &ip), NV_ENC_ERR_INVALID_PARAM);
    ip = default_init(&cfg, 321, 240);
    expect(&b, "init: odd width", c->fl.nvEncInitializeEncoder(enc, &ip), NV_ENC_ERR_INVALID_PARAM);
    ip = default_init(&cfg, 320, 240);
    ip.reserved[100] = 1;
    expect(&b, "init: reserved not zero", c->fl.nvEncInitializeEncoder(enc, &ip), NV_ENC_ERR_INVALID_PARAM);
    expect_error_mentions(&b, "init: reserved error names the field", "NV_ENC_INITIALIZE_PARAMS.reserved[100]");
    ip = default_init(&cfg, 320, 240);
    cfg.encodeCodecConfig.h264Config.reserved1[0] = 1;
    expect(&b, "init: H.264 config reserved not zero", c->fl.nvEncInitializeEncoder(enc, &ip), NV_ENC_ERR_INVALID_PARAM);
    expect_error_mentions(&b, "init: config reserved error names the field", "NV_ENC_CONFIG_H264.reserved1[0]");
    ip = default_init(&cfg, 320, 240);
    cfg.frameIntervalP = 3;
    expect(&b, "init: B-frames", c->fl.nvEncInitializeEncoder(enc, &ip), NV_ENC_ERR_UNSUPPORTED_PARAM);
    expect_error_mentions(&b, "B-frame error names NV_ENC_CAPS_NUM_MAX_BFRAMES", "NUM_MAX_BFRAMES");
    ip = default_init(&cfg, 320, 240);
    ip.enableEncodeAsync = 1;
    expect(&b, "init: async", c->fl.nvEncInitializeEncoder(enc, &ip), NV_ENC_ERR_UNSUPPORTED_PARAM);
    ip = default_init(&cfg, 320, 240);
    ip.maxEncodeWidth = 160;
    expect(&b, "init: max smaller than size", c->fl.nvEncInitializeEncoder(enc, &ip), NV_ENC_ERR_INVALID_PARAM);
    expect(&b, "init: NULL", c->fl.nvEncInitializeEncoder(enc, NULL), NV_ENC_ERR_INVALID_PTR);
    ip = default_init(&cfg, 320, 240);
    expect(&b, "init: ok", c->fl.nvEncInitializeEncoder(enc, &ip), NV_ENC_SUCCESS);
    expect(&b, "init: twice", c->fl.nvEncInitializeEncoder(enc, &ip), NV_ENC_ERR_INVALID_CALL);
    static void *io_streams[2] = { (void *)0x10, (void *)0x20 }; /* the CUstreams, living as long as the session */
    expect(&b, "set IO CUDA streams", c->fl.nvEncSetIOCudaStreams(enc, &io_streams[0], &io_streams[1]), NV_ENC_SUCCESS);

    /* ---- sequence params */
    sp.inBufferSize = 4;
    expect(&b, "sequence params: small buffer", c->fl.nvEncGetSequenceParams(enc, &sp), NV_ENC_ERR_NOT_ENOUGH_BUFFER);
    sp.inBufferSize = sizeof hdr;
    sp.version = 1;
    expect(&b, "sequence params: wrong version", c->fl.nvEncGetSequenceParams(enc, &sp), NV_ENC_ERR_INVALID_VERSION);
    sp.version = NV_ENC_SEQUENCE_PARAM_PAYLOAD_VER;
    sp.outSPSPPSPayloadSize = NULL;
    expect(&b, "sequence params: NULL size", c->fl.nvEncGetSequenceParams(enc, &sp), NV_ENC_ERR_INVALID_PTR);
    sp.outSPSPPSPayloadSize = &hdr_size;
    expect(&b, "sequence params", c->fl.nvEncGetSequenceParams(enc, &sp), NV_ENC_SUCCESS);
    expect_true(&b, "sequence params start with an SPS", hdr_size > 8 && !memcmp(hdr, "\0\0\0\1\x67", 5));

    /* ---- resources */
    rr.pitch = 322;
    expect(&b, "register: pitch not a multiple of 4", c->fl.nvEncRegisterResource(enc, &rr), NV_ENC_ERR_INVALID_PARAM);
    rr.pitch = 316;
    expect(&b, "register: pitch below a row", c->fl.nvEncRegisterResource(enc, &rr), NV_ENC_ERR_INVALID_PARAM);
    rr.pitch = 320;
    rr.reserved2[60] = &bogus;
    expect(&b, "register: reserved2 not NULL", c->fl.nvEncRegisterResource(enc, &rr), NV_ENC_ERR_INVALID_PARAM);
    expect_error_mentions(&b, "register: reserved error names the field", "NV_ENC_REGISTER_RESOURCE.reserved2[60]");
    rr.reserved2[60] = NULL;
    rr.bufferFormat = NV_ENC_BUFFER_FORMAT_YUV444_10BIT;
    expect(&b, "register: unsupported format", c->fl.nvEncRegisterResource(enc, &rr), NV_ENC_ERR_UNSUPPORTED_PARAM);
    rr.bufferFormat = NV_ENC_BUFFER_FORMAT_NV12;
    rr.resourceToRegister = NULL;
    expect(&b, "register: NULL resource", c->fl.nvEncRegisterResource(enc, &rr), NV_ENC_ERR_INVALID_PTR);
    rr.resourceToRegister = mem;
    rr.resourceType = NV_ENC_INPUT_RESOURCE_TYPE_OPENGL_TEX;
    expect(&b, "register: OpenGL texture", c->fl.nvEncRegisterResource(enc, &rr), NV_ENC_ERR_UNSUPPORTED_PARAM);
    rr.resourceType = NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR;
    rr.version = NV_ENC_REGISTER_RESOURCE_VER - (1u << 16);
    expect(&b, "register: previous struct version", c->fl.nvEncRegisterResource(enc, &rr), NV_ENC_ERR_INVALID_VERSION);
    rr.version = NV_ENC_REGISTER_RESOURCE_VER;
    expect(&b, "register: ok", c->fl.nvEncRegisterResource(enc, &rr), NV_ENC_SUCCESS);
    NV_ENC_REGISTERED_PTR reg = rr.registeredResource;
    expect_true(&b, "ledger: registered 1", ledger_value(c, "registered") == 1);

    NV_ENC_MAP_INPUT_RESOURCE mp;
    memset(&mp, 0, sizeof mp);
    mp.version = NV_ENC_MAP_INPUT_RESOURCE_VER;
    mp.registeredResource = &bogus;
    expect(&b, "map: not registered", c->fl.nvEncMapInputResource(enc, &mp), NV_ENC_ERR_RESOURCE_NOT_REGISTERED);
    mp.registeredResource = reg;
    mp.version = 0;
    expect(&b, "map: wrong version", c->fl.nvEncMapInputResource(enc, &mp), NV_ENC_ERR_INVALID_VERSION);
    mp.version = NV_ENC_MAP_INPUT_RESOURCE_VER;
    expect(&b, "map: ok", c->fl.nvEncMapInputResource(enc, &mp), NV_ENC_SUCCESS);
    NV_ENC_INPUT_PTR mapped = mp.mappedResource;
    expect_true(&b, "map: format reported", mp.mappedBufferFmt == NV_ENC_BUFFER_FORMAT_NV12);
    expect(&b, "map: twice", c->fl.nvEncMapInputResource(enc, &mp), NV_ENC_ERR_MAP_FAILED);
    expect(&b, "unregister while mapped", c->fl.nvEncUnregisterResource(enc, reg), NV_ENC_ERR_INVALID_CALL);
    expect_true(&b, "ledger: mapped 1", ledger_value(c, "mapped") == 1);

    memset(&bb, 0, sizeof bb);
    bb.version = NV_ENC_CREATE_BITSTREAM_BUFFER_VER;
    expect(&b, "bitstream buffer", c->fl.nvEncCreateBitstreamBuffer(enc, &bb), NV_ENC_SUCCESS);
    NV_ENC_OUTPUT_PTR out1 = bb.bitstreamBuffer;
    expect_true(&b, "bitstream buffer: bitstreamBufferPtr is junk, it should not be used", bb.bitstreamBufferPtr != NULL);
    expect(&b, "second bitstream buffer", c->fl.nvEncCreateBitstreamBuffer(enc, &bb), NV_ENC_SUCCESS);
    NV_ENC_OUTPUT_PTR out2 = bb.bitstreamBuffer;

    NV_ENC_LOCK_BITSTREAM lb;
    memset(&lb, 0, sizeof lb);
    lb.version = NV_ENC_LOCK_BITSTREAM_VER;
    lb.outputBitstream = out1;
    expect(&b, "lock: nothing pending", c->fl.nvEncLockBitstream(enc, &lb), NV_ENC_ERR_INVALID_CALL);
    expect(&b, "unlock: not locked", c->fl.nvEncUnlockBitstream(enc, out1), NV_ENC_ERR_INVALID_CALL);

    memset(&pp, 0, sizeof pp);
    pp.version = NV_ENC_PIC_PARAMS_VER;
    pp.inputWidth = 320;
    pp.inputHeight = 240;
    pp.inputBuffer = mapped;
    pp.outputBitstream = out1;
    pp.bufferFmt = NV_ENC_BUFFER_FORMAT_ABGR;
    pp.pictureStruct = NV_ENC_PIC_STRUCT_FRAME;
    expect(&b, "encode: format differs from registration", c->fl.nvEncEncodePicture(enc, &pp), NV_ENC_ERR_INVALID_PARAM);
    expect_error_mentions(&b, "format error names both formats", "NV_ENC_BUFFER_FORMAT_NV12");
    pp.bufferFmt = NV_ENC_BUFFER_FORMAT_NV12;
    pp.inputBuffer = reg;
    expect(&b, "encode: registered (not mapped) handle", c->fl.nvEncEncodePicture(enc, &pp), NV_ENC_ERR_INVALID_PARAM);
    pp.inputBuffer = mapped;
    pp.inputWidth = 160;
    expect(&b, "encode: size differs from encode size", c->fl.nvEncEncodePicture(enc, &pp), NV_ENC_ERR_INVALID_PARAM);
    pp.inputWidth = 320;
    pp.codecPicParams.h264PicParams.reserved[5] = 1;
    expect(&b, "encode: H.264 pic params reserved not zero", c->fl.nvEncEncodePicture(enc, &pp), NV_ENC_ERR_INVALID_PARAM);
    expect_error_mentions(&b, "encode: reserved error names the field", "NV_ENC_PIC_PARAMS_H264.reserved[5]");
    pp.codecPicParams.h264PicParams.reserved[5] = 0;
    pp.version = NV_ENC_PIC_PARAMS_VER ^ (1u << 31);
    expect(&b, "encode: wrong version", c->fl.nvEncEncodePicture(enc, &pp), NV_ENC_ERR_INVALID_VERSION);
    pp.version = NV_ENC_PIC_PARAMS_VER;
    pp.outputBitstream = NULL;
    expect(&b, "encode: NULL output", c->fl.nvEncEncodePicture(enc, &pp), NV_ENC_ERR_INVALID_PTR);
    pp.outputBitstream = out1;
    pp.frameIdx = 1;
    expect(&b, "encode: ok", c->fl.nvEncEncodePicture(enc, &pp), NV_ENC_SUCCESS);
    expect(&b, "encode: into a pending output", c->fl.nvEncEncodePicture(enc, &pp), NV_ENC_ERR_INVALID_CALL);
    expect(&b, "unmap before the output is locked", c->fl.nvEncUnmapInputResource(enc, mapped), NV_ENC_ERR_INVALID_CALL);
    pp.outputBitstream = out2;
    pp.frameIdx = 2;
    pp.inputWidth = pp.inputHeight = 0; /* what FFmpeg sends for a mapped CUDA frame */
    expect(&b, "encode: second picture, 0x0 input size of a mapped resource", c->fl.nvEncEncodePicture(enc, &pp), NV_ENC_SUCCESS);
    pp.inputWidth = 320;
    pp.inputHeight = 240;
    lb.outputBitstream = out2;
    expect(&b, "lock: out of order", c->fl.nvEncLockBitstream(enc, &lb), NV_ENC_ERR_INVALID_CALL);
    expect_error_mentions(&b, "order error says so", "submission order");
    lb.outputBitstream = out1;
    lb.version = 1;
    expect(&b, "lock: wrong version", c->fl.nvEncLockBitstream(enc, &lb), NV_ENC_ERR_INVALID_VERSION);
    lb.version = NV_ENC_LOCK_BITSTREAM_VER;
    expect(&b, "lock: ok", c->fl.nvEncLockBitstream(enc, &lb), NV_ENC_SUCCESS);
    expect_true(&b, "lock: IDR first", lb.pictureType == NV_ENC_PIC_TYPE_IDR && lb.frameIdx == 1 && lb.bitstreamSizeInBytes > 0);
    /* the driver wrote into the structure's internal words: reusing it unzeroed is refused */
    expect(&b, "lock: the same structure again, not zeroed", c->fl.nvEncLockBitstream(enc, &lb), NV_ENC_ERR_INVALID_PARAM);
    expect_error_mentions(&b, "lock: reuse error names reservedInternal", "NV_ENC_LOCK_BITSTREAM.reservedInternal[0]");
    memset(&lb, 0, sizeof lb);
    lb.version = NV_ENC_LOCK_BITSTREAM_VER;
    lb.outputBitstream = out1;
    expect(&b, "lock: twice", c->fl.nvEncLockBitstream(enc, &lb), NV_ENC_ERR_INVALID_CALL);
    expect(&b, "encode: into a locked output", c->fl.nvEncEncodePicture(enc, &pp), NV_ENC_ERR_INVALID_CALL);
    expect(&b, "unlock", c->fl.nvEncUnlockBitstream(enc, out1), NV_ENC_SUCCESS);
    memset(&lb, 0, sizeof lb);
    lb.version = NV_ENC_LOCK_BITSTREAM_VER;
    lb.outputBitstream = out2;
    expect(&b, "lock second", c->fl.nvEncLockBitstream(enc, &lb), NV_ENC_SUCCESS);
    expect_true(&b, "second is P", lb.pictureType == NV_ENC_PIC_TYPE_P && lb.frameIdx == 2);
    expect(&b, "unlock second", c->fl.nvEncUnlockBitstream(enc, out2), NV_ENC_SUCCESS);

    /* ---- reconfigure */
    NV_ENC_RECONFIGURE_PARAMS *rp = calloc(1, sizeof *rp);
    rp->version = NV_ENC_RECONFIGURE_PARAMS_VER;
    NV_ENC_CONFIG rcfg;
    rp->reInitEncodeParams = default_init(&rcfg, 1280, 240);
    expect(&b, "reconfigure: beyond max size", c->fl.nvEncReconfigureEncoder(enc, rp), NV_ENC_ERR_INVALID_PARAM);
    expect_error_mentions(&b, "size error names maxEncodeWidth", "maxEncodeWidth");
    rp->reInitEncodeParams = default_init(&rcfg, 320, 240);
    rcfg.gopLength = 30;
    expect(&b, "reconfigure: GOP change", c->fl.nvEncReconfigureEncoder(enc, rp), NV_ENC_ERR_UNSUPPORTED_PARAM);
    rp->reInitEncodeParams = default_init(&rcfg, 320, 240);
    rp->reInitEncodeParams.enablePTD = 0;
    expect(&b, "reconfigure: PTD change", c->fl.nvEncReconfigureEncoder(enc, rp), NV_ENC_ERR_UNSUPPORTED_PARAM);
    rp->version = 0;
    expect(&b, "reconfigure: wrong version", c->fl.nvEncReconfigureEncoder(enc, rp), NV_ENC_ERR_INVALID_VERSION);
    rp->version = NV_ENC_RECONFIGURE_PARAMS_VER;
    rp->reInitEncodeParams = default_init(&rcfg, 320, 240);
    rcfg.rcParams.averageBitRate = 8000000;
    expect(&b, "reconfigure: bitrate", c->fl.nvEncReconfigureEncoder(enc, rp), NV_ENC_SUCCESS);
    expect_true(&b, "ledger: one reconfigure", ledger_value(c, "reconfigures") == 1);
    pp.outputBitstream = out1;
    pp.frameIdx = 3;
    expect(&b, "encode after bitrate change", c->fl.nvEncEncodePicture(enc, &pp), NV_ENC_SUCCESS);
    memset(&lb, 0, sizeof lb);
    lb.version = NV_ENC_LOCK_BITSTREAM_VER;
    lb.outputBitstream = out1;
    expect(&b, "lock after bitrate change", c->fl.nvEncLockBitstream(enc, &lb), NV_ENC_SUCCESS);
    expect_true(&b, "bitrate change keeps P", lb.pictureType == NV_ENC_PIC_TYPE_P);
    expect(&b, "unlock", c->fl.nvEncUnlockBitstream(enc, out1), NV_ENC_SUCCESS);
    rp->reInitEncodeParams = default_init(&rcfg, 320, 240);
    rp->forceIDR = 1;
    expect(&b, "reconfigure: forceIDR", c->fl.nvEncReconfigureEncoder(enc, rp), NV_ENC_SUCCESS);
    pp.frameIdx = 4;
    expect(&b, "encode after forceIDR", c->fl.nvEncEncodePicture(enc, &pp), NV_ENC_SUCCESS);
    memset(&lb, 0, sizeof lb);
    lb.version = NV_ENC_LOCK_BITSTREAM_VER;
    lb.outputBitstream = out1;
    expect(&b, "lock after forceIDR", c->fl.nvEncLockBitstream(enc, &lb), NV_ENC_SUCCESS);
    expect_true(&b, "forceIDR gives an IDR", lb.pictureType == NV_ENC_PIC_TYPE_IDR);
    expect(&b, "unlock", c->fl.nvEncUnlockBitstream(enc, out1), NV_ENC_SUCCESS);
    free(rp);

    /* ---- EOS, unmap, and teardown with leaks */
    memset(&pp, 0, sizeof pp);
    pp.version = NV_ENC_PIC_PARAMS_VER;
    pp.encodePicFlags = NV_ENC_PIC_FLAG_EOS;
    expect(&b, "EOS", c->fl.nvEncEncodePicture(enc, &pp), NV_ENC_SUCCESS);
    expect(&b, "unmap", c->fl.nvEncUnmapInputResource(enc, mapped), NV_ENC_SUCCESS);
    expect(&b, "unmap twice", c->fl.nvEncUnmapInputResource(enc, mapped), NV_ENC_ERR_RESOURCE_NOT_MAPPED);
    pp.encodePicFlags = 0;
    pp.inputWidth = 320;
    pp.inputHeight = 240;
    pp.inputBuffer = mapped;
    pp.outputBitstream = out1;
    pp.bufferFmt = NV_ENC_BUFFER_FORMAT_NV12;
    expect(&b, "encode: unmapped input", c->fl.nvEncEncodePicture(enc, &pp), NV_ENC_ERR_RESOURCE_NOT_MAPPED);
    expect(&b, "destroy bitstream buffer", c->fl.nvEncDestroyBitstreamBuffer(enc, out2), NV_ENC_SUCCESS);
    expect(&b, "destroy bitstream buffer twice", c->fl.nvEncDestroyBitstreamBuffer(enc, out2), NV_ENC_ERR_INVALID_PARAM);

    NV_ENC_CREATE_INPUT_BUFFER ib;
    memset(&ib, 0, sizeof ib);
    ib.version = NV_ENC_CREATE_INPUT_BUFFER_VER;
    ib.width = 320;
    ib.height = 240;
    ib.bufferFmt = NV_ENC_BUFFER_FORMAT_NV12;
    expect(&b, "create input buffer", c->fl.nvEncCreateInputBuffer(enc, &ib), NV_ENC_SUCCESS);
    NV_ENC_LOCK_INPUT_BUFFER li;
    memset(&li, 0, sizeof li);
    li.version = NV_ENC_LOCK_INPUT_BUFFER_VER;
    li.inputBuffer = ib.inputBuffer;
    expect(&b, "lock input buffer", c->fl.nvEncLockInputBuffer(enc, &li), NV_ENC_SUCCESS);
    expect_true(&b, "input buffer pitch", li.pitch >= 320 && li.pitch % 4 == 0 && li.bufferDataPtr != NULL);
    pp.inputBuffer = ib.inputBuffer;
    expect(&b, "encode: locked input buffer", c->fl.nvEncEncodePicture(enc, &pp), NV_ENC_ERR_INVALID_CALL);
    expect(&b, "unlock input buffer", c->fl.nvEncUnlockInputBuffer(enc, ib.inputBuffer), NV_ENC_SUCCESS);
    expect(&b, "unlock input buffer twice", c->fl.nvEncUnlockInputBuffer(enc, ib.inputBuffer), NV_ENC_ERR_INVALID_CALL);

    /* leave: one registration, one bitstream buffer, one input buffer */
    int64_t leaked_before = ledger_value(c, "leaked");
    expect(&b, "destroy with outstanding resources", c->fl.nvEncDestroyEncoder(enc), NV_ENC_SUCCESS);
    expect_true(&b, "ledger: three leaks counted", ledger_value(c, "leaked") - leaked_before == 3);
    expect_true(&b, "ledger: no live objects", ledger_value(c, "sessions") == 0 && ledger_value(c, "registered") == 0 &&
                                                  ledger_value(c, "bitstream_buffers") == 0 && ledger_value(c, "input_buffers") == 0);
    c->enc = NULL;
    st = c->fl.nvEncGetEncodeGUIDCount(enc, &n);
    expect(&b, "destroyed handle", st, NV_ENC_ERR_INVALID_ENCODERDEVICE);
    free(mem);

    report_ledger(c);
    fprintf(c->report, "{\"checks\":%d,\"failures\":%d}\n", b.checks, b.failures);
    return b.failures ? 1 : 0;
}

/* ---------------------------------------------------------------- version */

static int run_version(const char *path, FILE *report)
{
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "selftest: dlopen(%s): %s\n", path, dlerror());
        return 2;
    }
    NVENCSTATUS (*get_max)(uint32_t *);
    NVENCSTATUS (*create)(NV_ENCODE_API_FUNCTION_LIST *);
    *(void **)&get_max = dlsym(lib, "NvEncodeAPIGetMaxSupportedVersion");
    *(void **)&create = dlsym(lib, "NvEncodeAPICreateInstance");
    uint32_t version = 0;
    NVENCSTATUS gs = get_max(&version);
    NV_ENCODE_API_FUNCTION_LIST *fl = calloc(1, sizeof *fl);
    fl->version = NV_ENCODE_API_FUNCTION_LIST_VER;
    NVENCSTATUS cs = create(fl);
    int complete = 1;
    /* every slot up to nvEncLookaheadPicture is filled (reserved1 excepted) */
    void **slots = (void **)&fl->nvEncOpenEncodeSession;
    void **last = (void **)&fl->nvEncLookaheadPicture;
    for (void **p = slots; p <= last; p++)
        if (p != &fl->reserved1 && *p == NULL)
            complete = 0;
    fl->version = NV_ENCODE_API_FUNCTION_LIST_VER - (1u << 16);
    NVENCSTATUS old = create(fl);
    NVENCSTATUS null = create(NULL);
    fprintf(report, "{\"get_max_status\":%d,\"max_version\":%u,\"create_status\":%d,\"complete\":%s,"
            "\"create_old_struct\":%d,\"create_null\":%d}\n",
            gs, version, cs, complete ? "true" : "false", old, null);
    free(fl);
    dlclose(lib);
    return 0;
}

/* -------------------------------------------------------------------- main */

SELFTEST_API int selftest_run(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: selftest LIB encode|api|version [options]\n");
        return 2;
    }
    const char *lib = argv[1], *mode = argv[2];
    const char *report_path = NULL;
    for (int i = 3; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--report"))
            report_path = argv[i + 1];
    FILE *report = report_path ? fopen(report_path, "w") : stdout;
    if (!report) {
        fprintf(stderr, "selftest: cannot write %s\n", report_path);
        return 2;
    }
    int rc = 2;
    if (!strcmp(mode, "version")) {
        rc = run_version(lib, report);
    } else {
        client c;
        if (client_load(&c, lib, report) == 0) {
            if (!strcmp(mode, "api")) {
                rc = run_api(&c);
            } else if (!strcmp(mode, "encode")) {
                encode_opts o;
                cuda_api cu = { 0 };
                rc = 2;
                if (parse_encode(argc - 3, argv + 3, &o) == 0) {
                    o.cu = &cu;
                    if (!o.cuda || cuda_open(&cu) == 0)
                        rc = run_encode(&c, &o);
                    cuda_close(&cu);
                }
            } else {
                fprintf(stderr, "selftest: unknown mode %s\n", mode);
            }
        }
        client_unload(&c);
    }
    if (report != stdout)
        fclose(report);
    else
        fflush(stdout);
    return rc;
}

#ifndef SELFTEST_LIBRARY
int main(int argc, char **argv)
{
    return selftest_run(argc, argv);
}
#endif
