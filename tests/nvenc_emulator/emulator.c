/*
 * The emulated libnvidia-encode: NvEncodeAPICreateInstance, the function list,
 * sessions, capability/preset queries, initialize/reconfigure and sequence
 * headers. Buffers live in buffers.c, nvEncEncodePicture in encode.c.
 *
 * Every entry point takes one process-wide lock, looks up its session (handles
 * are checked against the live lists, never dereferenced blindly), checks for
 * an injected fault, validates its arguments the way nvEncodeAPI.h documents,
 * and on failure records a specific message for nvEncGetLastErrorString.
 * Encoding is synchronous: a picture is complete when nvEncEncodePicture
 * returns, so there is never NV_ENC_ERR_NEED_MORE_INPUT or LOCK_BUSY.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"

emu_state g_emu = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .max_major = 13,
    .max_minor = 0,
    .caps = EMU_DEFAULT_CAPS,
};

const char *const emu_api_names[] = {
    "NvEncodeAPICreateInstance", "NvEncodeAPIGetMaxSupportedVersion",
    "nvEncOpenEncodeSession", "nvEncGetEncodeGUIDCount", "nvEncGetEncodeProfileGUIDCount",
    "nvEncGetEncodeProfileGUIDs", "nvEncGetEncodeGUIDs", "nvEncGetInputFormatCount",
    "nvEncGetInputFormats", "nvEncGetEncodeCaps", "nvEncGetEncodePresetCount",
    "nvEncGetEncodePresetGUIDs", "nvEncGetEncodePresetConfig", "nvEncInitializeEncoder",
    "nvEncCreateInputBuffer", "nvEncDestroyInputBuffer", "nvEncCreateBitstreamBuffer",
    "nvEncDestroyBitstreamBuffer", "nvEncEncodePicture", "nvEncLockBitstream",
    "nvEncUnlockBitstream", "nvEncLockInputBuffer", "nvEncUnlockInputBuffer",
    "nvEncGetEncodeStats", "nvEncGetSequenceParams", "nvEncRegisterAsyncEvent",
    "nvEncUnregisterAsyncEvent", "nvEncMapInputResource", "nvEncUnmapInputResource",
    "nvEncDestroyEncoder", "nvEncInvalidateRefFrames", "nvEncOpenEncodeSessionEx",
    "nvEncRegisterResource", "nvEncUnregisterResource", "nvEncReconfigureEncoder",
    "nvEncCreateMVBuffer", "nvEncDestroyMVBuffer", "nvEncRunMotionEstimationOnly",
    "nvEncSetIOCudaStreams", "nvEncGetEncodePresetConfigEx", "nvEncGetSequenceParamEx",
    "nvEncRestoreEncoderState", "nvEncLookaheadPicture",
};
const int emu_api_name_count = (int)(sizeof emu_api_names / sizeof emu_api_names[0]);

/* ------------------------------------------------------------------ helpers */

int pv_push(ptrvec *v, void *item)
{
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 8;
        void **items = realloc(v->items, (size_t)cap * sizeof *items);
        if (!items)
            return -1;
        v->items = items;
        v->cap = cap;
    }
    v->items[v->n++] = item;
    return 0;
}

int pv_find(const ptrvec *v, const void *item)
{
    for (int i = 0; i < v->n; i++)
        if (v->items[i] == item)
            return i;
    return -1;
}

void pv_remove(ptrvec *v, int index)
{
    v->items[index] = v->items[--v->n];
}

void pv_free(ptrvec *v)
{
    free(v->items);
    v->items = NULL;
    v->n = v->cap = 0;
}

static const char *status_name(NVENCSTATUS st)
{
    static const char *const names[] = {
        "NV_ENC_SUCCESS", "NV_ENC_ERR_NO_ENCODE_DEVICE", "NV_ENC_ERR_UNSUPPORTED_DEVICE",
        "NV_ENC_ERR_INVALID_ENCODERDEVICE", "NV_ENC_ERR_INVALID_DEVICE", "NV_ENC_ERR_DEVICE_NOT_EXIST",
        "NV_ENC_ERR_INVALID_PTR", "NV_ENC_ERR_INVALID_EVENT", "NV_ENC_ERR_INVALID_PARAM",
        "NV_ENC_ERR_INVALID_CALL", "NV_ENC_ERR_OUT_OF_MEMORY", "NV_ENC_ERR_ENCODER_NOT_INITIALIZED",
        "NV_ENC_ERR_UNSUPPORTED_PARAM", "NV_ENC_ERR_LOCK_BUSY", "NV_ENC_ERR_NOT_ENOUGH_BUFFER",
        "NV_ENC_ERR_INVALID_VERSION", "NV_ENC_ERR_MAP_FAILED", "NV_ENC_ERR_NEED_MORE_INPUT",
        "NV_ENC_ERR_ENCODER_BUSY", "NV_ENC_ERR_EVENT_NOT_REGISTERD", "NV_ENC_ERR_GENERIC",
        "NV_ENC_ERR_INCOMPATIBLE_CLIENT_KEY", "NV_ENC_ERR_UNIMPLEMENTED", "NV_ENC_ERR_RESOURCE_REGISTER_FAILED",
        "NV_ENC_ERR_RESOURCE_NOT_REGISTERED", "NV_ENC_ERR_RESOURCE_NOT_MAPPED", "NV_ENC_ERR_NEED_MORE_OUTPUT",
    };
    if ((unsigned)st < sizeof names / sizeof names[0])
        return names[st];
    return "(unknown NVENCSTATUS)";
}

NVENCSTATUS api_fail(emu_session *s, NVENCSTATUS st, const char *fmt, ...)
{
    char msg[EMU_ERR_LEN - 128]; /* leaves room for the "function: status (n): " prefix */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(g_emu.last_error, sizeof g_emu.last_error, "%s: %s (%d): %s",
             g_emu.fn ? g_emu.fn : "?", status_name(st), (int)st, msg);
    if (s)
        memcpy(s->last_error, g_emu.last_error, sizeof s->last_error);
    g_emu.totals.errors++;
    return st;
}

static emu_session *find_session(const void *handle)
{
    for (emu_session *s = g_emu.sessions; s; s = s->next)
        if (s == handle)
            return s;
    return NULL;
}

/* The calls that still release their object on a poisoned session (and then report the
 * poison), so that a client can tear down without the ledger counting leaks. */
static int release_call(const char *fn)
{
    static const char *const names[] = {
        "nvEncDestroyEncoder", "nvEncUnmapInputResource", "nvEncUnregisterResource",
        "nvEncDestroyBitstreamBuffer", "nvEncDestroyInputBuffer", "nvEncUnlockBitstream",
        "nvEncUnlockInputBuffer",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(fn, names[i]))
            return 1;
    return 0;
}

int api_enter(const char *fn, void *encoder, emu_session **out, NVENCSTATUS *st)
{
    pthread_mutex_lock(&g_emu.lock);
    g_emu.fn = fn;
    emu_session *s = find_session(encoder);
    *out = s;
    if (!encoder)
        g_emu.totals.null_session_calls++;
    NVENCSTATUS injected;
    if (fault_fires(fn, &injected)) {
        *st = api_fail(s, injected, "injected fault (emu_inject_fault)");
        return 0;
    }
    if (!encoder) {
        *st = api_fail(NULL, NV_ENC_ERR_INVALID_PTR, "encoder is NULL");
        return 0;
    }
    if (!s) {
        *st = api_fail(NULL, NV_ENC_ERR_INVALID_ENCODERDEVICE,
                   "encoder %p is not an open encode session (destroyed, reset, or never opened)", encoder);
        return 0;
    }
    if (s->open_failed && strcmp(fn, "nvEncDestroyEncoder") != 0) {
        /* the session keeps the open's failure text for nvEncGetLastErrorString */
        *st = api_fail(NULL, NV_ENC_ERR_INVALID_CALL,
                       "encoder %p is the handle of a failed nvEncOpenEncodeSessionEx; only nvEncDestroyEncoder may use it",
                       encoder);
        return 0;
    }
    if (s->poisoned && !release_call(fn)) {
        *st = api_fail(s, NV_ENC_ERR_GENERIC, "the session is unusable after an earlier fault (%s); destroy it",
                       s->poison);
        return 0;
    }
    if (s->poisoned && strcmp(fn, "nvEncDestroyEncoder") != 0)
        g_emu.poisoned_release = s; /* api_leave turns its success into the poison's failure */
    return 1;
}

NVENCSTATUS api_leave(NVENCSTATUS st)
{
    emu_session *poisoned = g_emu.poisoned_release;
    g_emu.poisoned_release = NULL;
    if (poisoned && st == NV_ENC_SUCCESS)
        st = api_fail(poisoned, NV_ENC_ERR_GENERIC,
                      "released, but the session is unusable after an earlier fault (%s); destroy it", poisoned->poison);
    g_emu.fn = NULL;
    pthread_mutex_unlock(&g_emu.lock);
    return st;
}

int buf_grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (*cap >= need)
        return 0;
    uint8_t *p = realloc(*buf, need);
    if (!p)
        return -1;
    *buf = p;
    *cap = need;
    return 0;
}

static NVENCSTATUS check_codec(emu_session *s, const GUID *codec)
{
    if (guid_eq(codec, &NV_ENC_CODEC_H264_GUID))
        return NV_ENC_SUCCESS;
    char g[48];
    guid_str(codec, g, sizeof g);
    return api_fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM, "encodeGUID %s is not NV_ENC_CODEC_H264_GUID (the emulator encodes H.264 only)", g);
}

/* Copies up to `size` entries of `src` and reports how many were written. */
static NVENCSTATUS copy_guids(emu_session *s, GUID *dst, uint32_t size, uint32_t *count,
                              const GUID *const *src, int n)
{
    CHECK_PTR(s, dst, "the GUID array");
    CHECK_PTR(s, count, "the GUID count pointer");
    uint32_t k = size < (uint32_t)n ? size : (uint32_t)n;
    for (uint32_t i = 0; i < k; i++)
        dst[i] = *src[i];
    *count = k;
    return NV_ENC_SUCCESS;
}

/* ------------------------------------------------------ client API versions */

/* A 13.0 client's struct version: NVENCAPI_STRUCT_VERSION(n) of nv-codec-headers 13.0,
 * with bit 31 for the structures the header marks that way. */
#define V13(n, ext) (EMU_API_13_0 | ((uint32_t)(n) << 16) | (0x7u << 28) | ((ext) ? (1u << 31) : 0u))

static const struct {
    const char *name;
    uint32_t v12_1, v13_0;
} struct_versions[EMU_STRUCT_COUNT] = {
    [EMU_OPEN_ENCODE_SESSION_EX_PARAMS] = { "NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS", NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER, V13(1, 0) },
    [EMU_CAPS_PARAM] = { "NV_ENC_CAPS_PARAM", NV_ENC_CAPS_PARAM_VER, V13(1, 0) },
    [EMU_CREATE_INPUT_BUFFER] = { "NV_ENC_CREATE_INPUT_BUFFER", NV_ENC_CREATE_INPUT_BUFFER_VER, V13(2, 0) },
    [EMU_CREATE_BITSTREAM_BUFFER] = { "NV_ENC_CREATE_BITSTREAM_BUFFER", NV_ENC_CREATE_BITSTREAM_BUFFER_VER, V13(1, 0) },
    [EMU_RC_PARAMS] = { "NV_ENC_RC_PARAMS", NV_ENC_RC_PARAMS_VER, V13(1, 0) },
    [EMU_CONFIG] = { "NV_ENC_CONFIG", NV_ENC_CONFIG_VER, V13(9, 1) },
    [EMU_INITIALIZE_PARAMS] = { "NV_ENC_INITIALIZE_PARAMS", NV_ENC_INITIALIZE_PARAMS_VER, V13(7, 1) },
    [EMU_RECONFIGURE_PARAMS] = { "NV_ENC_RECONFIGURE_PARAMS", NV_ENC_RECONFIGURE_PARAMS_VER, V13(2, 1) },
    [EMU_PRESET_CONFIG] = { "NV_ENC_PRESET_CONFIG", NV_ENC_PRESET_CONFIG_VER, V13(5, 1) },
    [EMU_PIC_PARAMS] = { "NV_ENC_PIC_PARAMS", NV_ENC_PIC_PARAMS_VER, V13(7, 1) },
    [EMU_LOCK_BITSTREAM] = { "NV_ENC_LOCK_BITSTREAM", NV_ENC_LOCK_BITSTREAM_VER, V13(2, 1) },
    [EMU_LOCK_INPUT_BUFFER] = { "NV_ENC_LOCK_INPUT_BUFFER", NV_ENC_LOCK_INPUT_BUFFER_VER, V13(1, 0) },
    [EMU_MAP_INPUT_RESOURCE] = { "NV_ENC_MAP_INPUT_RESOURCE", NV_ENC_MAP_INPUT_RESOURCE_VER, V13(4, 0) },
    [EMU_REGISTER_RESOURCE] = { "NV_ENC_REGISTER_RESOURCE", NV_ENC_REGISTER_RESOURCE_VER, V13(5, 0) },
    [EMU_SEQUENCE_PARAM_PAYLOAD] = { "NV_ENC_SEQUENCE_PARAM_PAYLOAD", NV_ENC_SEQUENCE_PARAM_PAYLOAD_VER, V13(1, 0) },
};

/* The function list keeps struct number 2 in 13.0. */
#define FUNCTION_LIST_VER_13_0 V13(2, 0)

int api_supported(uint32_t api_version)
{
    return api_version == NVENCAPI_VERSION || api_version == EMU_API_13_0;
}

uint32_t struct_version(uint32_t api_version, emu_struct which)
{
    return api_version == EMU_API_13_0 ? struct_versions[which].v13_0 : struct_versions[which].v12_1;
}

const char *struct_name(emu_struct which)
{
    return struct_versions[which].name;
}

NVENCSTATUS check_version(emu_session *s, uint32_t got, emu_struct which)
{
    uint32_t api = s ? s->api_version : NVENCAPI_VERSION;
    uint32_t want = struct_version(api, which);
    if (got == want)
        return NV_ENC_SUCCESS;
    return api_fail(s, NV_ENC_ERR_INVALID_VERSION, "%s.version is 0x%08X, expected %s_VER 0x%08X (API %u.%u)",
                    struct_name(which), (unsigned)got, struct_name(which), (unsigned)want,
                    (unsigned)(api & 0xFFFFu), (unsigned)(api >> 24));
}

/* --------------------------------------------------------- session lifetime */

void free_bitstream(emu_bitstream *b)
{
    free(b->data);
    free(b);
}

void session_free(emu_session *s, int count_leaks)
{
    if (count_leaks) {
        for (int i = 0; i < s->registered.n; i++)
            g_emu.totals.leaked_mapped += ((emu_resource *)s->registered.items[i])->mapped != 0;
        g_emu.totals.leaked_registered += s->registered.n;
        g_emu.totals.leaked_bitstream_buffers += s->bitstreams.n;
        g_emu.totals.leaked_input_buffers += s->inbufs.n;
    }
    for (int i = 0; i < s->registered.n; i++)
        free(s->registered.items[i]);
    for (int i = 0; i < s->bitstreams.n; i++)
        free_bitstream(s->bitstreams.items[i]);
    for (int i = 0; i < s->inbufs.n; i++) {
        emu_inbuf *ib = s->inbufs.items[i];
        free(ib->data);
        free(ib);
    }
    pv_free(&s->registered);
    pv_free(&s->bitstreams);
    pv_free(&s->inbufs);
    free(s->planes);
    free(s->rbsp);
    free(s->staging);
    free(s);
}

static void unlink_session(emu_session *s)
{
    for (emu_session **pp = &g_emu.sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            return;
        }
    }
}

/* What nvEncOpenEncodeSessionEx checks once both of its pointers are valid. */
static NVENCSTATUS open_checks(const NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS *p)
{
    unsigned major = p->apiVersion & 0xFFFFu, minor = (p->apiVersion >> 24) & 0xFFu;
    /* The params' own version tells the client's API too; it must agree with apiVersion. */
    uint32_t want = struct_version(api_supported(p->apiVersion) ? p->apiVersion : NVENCAPI_VERSION,
                                   EMU_OPEN_ENCODE_SESSION_EX_PARAMS);
    if (p->version != want)
        return api_fail(NULL, NV_ENC_ERR_INVALID_VERSION,
                        "NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS.version is 0x%08X, expected "
                        "NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER 0x%08X (API %u.%u)",
                        p->version, want, major, minor);
    if (major > (unsigned)g_emu.max_major || (major == (unsigned)g_emu.max_major && minor > (unsigned)g_emu.max_minor))
        return api_fail(NULL, NV_ENC_ERR_INVALID_VERSION,
                        "apiVersion %u.%u is newer than the driver supports (%d.%d, see NvEncodeAPIGetMaxSupportedVersion)",
                        major, minor, g_emu.max_major, g_emu.max_minor);
    if (!api_supported(p->apiVersion))
        return api_fail(NULL, NV_ENC_ERR_INVALID_VERSION,
                        "apiVersion is %u.%u (0x%08X); the emulator implements the %d.%d and 13.0 structures only",
                        major, minor, p->apiVersion, NVENCAPI_MAJOR_VERSION, NVENCAPI_MINOR_VERSION);
    NVENCSTATUS st = check_reserved(NULL, p->apiVersion, EMU_OPEN_ENCODE_SESSION_EX_PARAMS, p);
    if (st)
        return st;
    if (p->deviceType != NV_ENC_DEVICE_TYPE_CUDA)
        return api_fail(NULL, NV_ENC_ERR_UNSUPPORTED_DEVICE,
                        "deviceType %d: the emulator supports NV_ENC_DEVICE_TYPE_CUDA (1) only", (int)p->deviceType);
    if (g_emu.unsupported_device)
        return api_fail(NULL, NV_ENC_ERR_UNSUPPORTED_DEVICE,
                        "this GPU has no NVENC engine (emulating an H100/H200: emu_set_unsupported_device)");
    return NV_ENC_SUCCESS;
}

static NVENCSTATUS NVENCAPI api_open_encode_session_ex(NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS *p, void **encoder)
{
    pthread_mutex_lock(&g_emu.lock);
    g_emu.fn = "nvEncOpenEncodeSessionEx";
    NVENCSTATUS st;
    if (encoder)
        *encoder = NULL;
    if (fault_fires(g_emu.fn, &st))
        return api_leave(api_fail(NULL, st, "injected fault (emu_inject_fault)"));
    if (!p)
        return api_leave(api_fail(NULL, NV_ENC_ERR_INVALID_PTR, "openSessionExParams is NULL"));
    if (!encoder)
        return api_leave(api_fail(NULL, NV_ENC_ERR_INVALID_PTR, "encoder (the output pointer) is NULL"));
    emu_session *s = calloc(1, sizeof *s);
    if (!s)
        return api_leave(api_fail(NULL, NV_ENC_ERR_OUT_OF_MEMORY, "cannot allocate a session"));
    s->device = p->device;
    s->api_version = api_supported(p->apiVersion) ? p->apiVersion : NVENCAPI_VERSION;
    s->next = g_emu.sessions;
    g_emu.sessions = s;
    /* The header: "If the creation of encoder session fails, the client must call
     * NvEncDestroyEncoder API before exiting." So a failed open still hands out a handle,
     * which holds the failure text and must be destroyed. */
    if ((st = open_checks(p))) {
        s->open_failed = 1;
        memcpy(s->last_error, g_emu.last_error, sizeof s->last_error);
        *encoder = s;
        return api_leave(st);
    }
    g_emu.totals.sessions_opened++;
    *encoder = s;
    return api_leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_destroy_encoder(void *encoder)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncDestroyEncoder", encoder, &s, &st))
        return api_leave(st);
    if (s->unflushed) /* the header: flush (EOS) before freeing the encoder's resources */
        g_emu.totals.unflushed_destroys++;
    unlink_session(s);
    session_free(s, !s->open_failed);
    return api_leave(NV_ENC_SUCCESS);
}

/* ----------------------------------------------------------------- queries */

static NVENCSTATUS NVENCAPI api_get_encode_guid_count(void *encoder, uint32_t *count)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncGetEncodeGUIDCount", encoder, &s, &st))
        return api_leave(st);
    if (!count)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "encodeGUIDCount is NULL"));
    *count = (uint32_t)emu_codec_guid_count;
    return api_leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_get_encode_guids(void *encoder, GUID *guids, uint32_t size, uint32_t *count)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncGetEncodeGUIDs", encoder, &s, &st))
        return api_leave(st);
    return api_leave(copy_guids(s, guids, size, count, emu_codec_guids, emu_codec_guid_count));
}

static NVENCSTATUS NVENCAPI api_get_profile_guid_count(void *encoder, GUID codec, uint32_t *count)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncGetEncodeProfileGUIDCount", encoder, &s, &st))
        return api_leave(st);
    if (!count)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "encodeProfileGUIDCount is NULL"));
    if ((st = check_codec(s, &codec)))
        return api_leave(st);
    *count = (uint32_t)emu_profile_guid_count;
    return api_leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_get_profile_guids(void *encoder, GUID codec, GUID *guids, uint32_t size, uint32_t *count)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncGetEncodeProfileGUIDs", encoder, &s, &st))
        return api_leave(st);
    if ((st = check_codec(s, &codec)))
        return api_leave(st);
    return api_leave(copy_guids(s, guids, size, count, emu_profile_guids, emu_profile_guid_count));
}

static NVENCSTATUS NVENCAPI api_get_input_format_count(void *encoder, GUID codec, uint32_t *count)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncGetInputFormatCount", encoder, &s, &st))
        return api_leave(st);
    if (!count)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "inputFmtCount is NULL"));
    if ((st = check_codec(s, &codec)))
        return api_leave(st);
    *count = (uint32_t)emu_input_format_count;
    return api_leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_get_input_formats(void *encoder, GUID codec, NV_ENC_BUFFER_FORMAT *fmts,
                                                  uint32_t size, uint32_t *count)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncGetInputFormats", encoder, &s, &st))
        return api_leave(st);
    if (!fmts || !count)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "inputFmts or inputFmtCount is NULL"));
    if ((st = check_codec(s, &codec)))
        return api_leave(st);
    uint32_t k = size < (uint32_t)emu_input_format_count ? size : (uint32_t)emu_input_format_count;
    for (uint32_t i = 0; i < k; i++)
        fmts[i] = emu_input_formats[i];
    *count = k;
    return api_leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_get_encode_caps(void *encoder, GUID codec, NV_ENC_CAPS_PARAM *cp, int *value)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncGetEncodeCaps", encoder, &s, &st))
        return api_leave(st);
    if (!cp || !value)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "capsParam or capsVal is NULL"));
    if ((st = check_version(s, cp->version, EMU_CAPS_PARAM)))
        return api_leave(st);
    if ((st = check_reserved(s, s->api_version, EMU_CAPS_PARAM, cp)))
        return api_leave(st);
    if ((st = check_codec(s, &codec)))
        return api_leave(st);
    if (!caps_query((int)cp->capsToQuery, value)) {
        /* Caps that API 13.0 added (FFmpeg 8 asks for several): features the emulator lacks. */
        if (s->api_version == EMU_API_13_0 && (int)cp->capsToQuery >= NV_ENC_CAPS_EXPOSED_COUNT) {
            *value = 0;
            return api_leave(NV_ENC_SUCCESS);
        }
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PARAM, "capsToQuery %d is not a NV_ENC_CAPS value (0..%d)",
                          (int)cp->capsToQuery, NV_ENC_CAPS_EXPOSED_COUNT - 1));
    }
    return api_leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_get_preset_count(void *encoder, GUID codec, uint32_t *count)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncGetEncodePresetCount", encoder, &s, &st))
        return api_leave(st);
    if (!count)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "encodePresetGUIDCount is NULL"));
    if ((st = check_codec(s, &codec)))
        return api_leave(st);
    *count = (uint32_t)emu_preset_guid_count;
    return api_leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_get_preset_guids(void *encoder, GUID codec, GUID *guids, uint32_t size, uint32_t *count)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncGetEncodePresetGUIDs", encoder, &s, &st))
        return api_leave(st);
    if ((st = check_codec(s, &codec)))
        return api_leave(st);
    return api_leave(copy_guids(s, guids, size, count, emu_preset_guids, emu_preset_guid_count));
}

static NVENCSTATUS preset_config_common(emu_session *s, const GUID *codec, const GUID *preset,
                                        NV_ENC_TUNING_INFO tuning, NV_ENC_PRESET_CONFIG *pc)
{
    CHECK_PTR(s, pc, "presetConfig");
    NVENCSTATUS st = check_version(s, pc->version, EMU_PRESET_CONFIG);
    if (st)
        return st;
    if ((st = check_version(s, pc->presetCfg.version, EMU_CONFIG)))
        return st;
    if ((st = check_reserved(s, s->api_version, EMU_PRESET_CONFIG, pc)))
        return st;
    if ((st = check_codec(s, codec)))
        return st;
    if (tuning == NV_ENC_TUNING_INFO_UNDEFINED || (int)tuning < 0 || tuning >= NV_ENC_TUNING_INFO_COUNT)
        return api_fail(s, NV_ENC_ERR_INVALID_PARAM, "tuningInfo %d is not a NV_ENC_TUNING_INFO value (1..%d)",
                    (int)tuning, NV_ENC_TUNING_INFO_COUNT - 1);
    char err[EMU_ERR_LEN];
    if ((st = preset_config(s->api_version, preset, tuning, &pc->presetCfg, err, sizeof err)))
        return api_fail(s, st, "%s", err);
    return NV_ENC_SUCCESS;
}

static NVENCSTATUS NVENCAPI api_get_preset_config(void *encoder, GUID codec, GUID preset, NV_ENC_PRESET_CONFIG *pc)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncGetEncodePresetConfig", encoder, &s, &st))
        return api_leave(st);
    return api_leave(preset_config_common(s, &codec, &preset, NV_ENC_TUNING_INFO_HIGH_QUALITY, pc));
}

static NVENCSTATUS NVENCAPI api_get_preset_config_ex(void *encoder, GUID codec, GUID preset,
                                                     NV_ENC_TUNING_INFO tuning, NV_ENC_PRESET_CONFIG *pc)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncGetEncodePresetConfigEx", encoder, &s, &st))
        return api_leave(st);
    return api_leave(preset_config_common(s, &codec, &preset, tuning, pc));
}

/* ------------------------------------------------- initialize / reconfigure */

static NVENCSTATUS NVENCAPI api_initialize_encoder(void *encoder, NV_ENC_INITIALIZE_PARAMS *ip)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncInitializeEncoder", encoder, &s, &st))
        return api_leave(st);
    if (!ip)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "createEncodeParams is NULL"));
    if (s->initialized)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_CALL, "the encoder is already initialized (use nvEncReconfigureEncoder)"));
    char err[EMU_ERR_LEN];
    emu_config cfg;
    if ((st = derive_config(s->api_version, ip, &cfg, err, sizeof err)))
        return api_leave(api_fail(s, st, "%s", err));
    if ((st = check_reserved(s, s->api_version, EMU_INITIALIZE_PARAMS, ip)))
        return api_leave(st);
    s->cfg = cfg;
    s->max_width = ip->maxEncodeWidth;
    s->max_height = ip->maxEncodeHeight;
    s->initialized = 1;
    s->force_idr = 1;
    return api_leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_reconfigure_encoder(void *encoder, NV_ENC_RECONFIGURE_PARAMS *rp)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncReconfigureEncoder", encoder, &s, &st))
        return api_leave(st);
    if (!rp)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "reInitEncodeParams is NULL"));
    if ((st = check_version(s, rp->version, EMU_RECONFIGURE_PARAMS)))
        return api_leave(st);
    if (!s->initialized)
        return api_leave(api_fail(s, NV_ENC_ERR_ENCODER_NOT_INITIALIZED, "call nvEncInitializeEncoder successfully before this call"));

    if ((st = check_reserved(s, s->api_version, EMU_RECONFIGURE_PARAMS, rp)))
        return api_leave(st);
    NV_ENC_INITIALIZE_PARAMS ni = rp->reInitEncodeParams;
    NV_ENC_CONFIG keep = s->cfg.config;
    /* No config and the same preset: keep the current configuration. */
    if (!ni.encodeConfig && guid_eq(&ni.presetGUID, &s->cfg.init.presetGUID))
        ni.encodeConfig = &keep;
    char err[EMU_ERR_LEN];
    emu_config nc;
    if ((st = derive_config(s->api_version, &ni, &nc, err, sizeof err)))
        return api_leave(api_fail(s, st, "reInitEncodeParams: %s", err));
    const emu_config *oc = &s->cfg;
    if (nc.init.enablePTD != oc->init.enablePTD)
        return api_leave(api_fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM, "changing enablePTD (%u -> %u) is not supported",
                          oc->init.enablePTD, nc.init.enablePTD));
    if ((ni.maxEncodeWidth || ni.maxEncodeHeight) &&
        (ni.maxEncodeWidth != s->max_width || ni.maxEncodeHeight != s->max_height))
        return api_leave(api_fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM,
                          "changing maxEncodeWidth x maxEncodeHeight (%ux%u -> %ux%u) is not supported",
                          s->max_width, s->max_height, ni.maxEncodeWidth, ni.maxEncodeHeight));
    uint32_t w = ni.encodeWidth, h = ni.encodeHeight;
    if (w != oc->init.encodeWidth || h != oc->init.encodeHeight) {
        if (!g_emu.caps.dyn_res_change)
            return api_leave(api_fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM,
                              "resolution change %ux%u -> %ux%u: NV_ENC_CAPS_SUPPORT_DYN_RES_CHANGE is 0 on this GPU; "
                              "destroy the session and open a new one",
                              oc->init.encodeWidth, oc->init.encodeHeight, w, h));
        if (!s->max_width)
            return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PARAM,
                              "resolution change %ux%u -> %ux%u needs maxEncodeWidth/maxEncodeHeight set at nvEncInitializeEncoder",
                              oc->init.encodeWidth, oc->init.encodeHeight, w, h));
        if (w > s->max_width || h > s->max_height)
            return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PARAM,
                              "encodeWidth x encodeHeight %ux%u is beyond maxEncodeWidth x maxEncodeHeight %ux%u",
                              w, h, s->max_width, s->max_height));
    }
    if (nc.gop_length != oc->gop_length || nc.idr_period != oc->idr_period || nc.intra_only != oc->intra_only)
        return api_leave(api_fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM,
                          "changing the GOP structure (gopLength %u -> %u, idrPeriod %u -> %u, frameIntervalP %d -> %d) is not supported",
                          oc->gop_length, nc.gop_length, oc->idr_period, nc.idr_period,
                          oc->config.frameIntervalP, nc.config.frameIntervalP));
    int seq_changed = memcmp(&nc.seq, &oc->seq, sizeof nc.seq) != 0;
    s->cfg = nc;
    if (seq_changed) { /* a new SPS only takes effect at an IDR */
        s->force_idr = 1;
        s->headers_due = 1;
    }
    if ((rp->resetEncoder || rp->forceIDR) && s->cfg.init.enablePTD)
        s->force_idr = 1;
    s->reconfigures++;
    g_emu.totals.reconfigures++;
    return api_leave(NV_ENC_SUCCESS);
}

/* --------------------------------------------------------- sequence headers */

static NVENCSTATUS sequence_payload(emu_session *s, h264_seq seq, NV_ENC_SEQUENCE_PARAM_PAYLOAD *sp)
{
    if (sp->spsId || sp->ppsId) { /* the payload's ids, when given, name the headers */
        if (sp->spsId > 31 || sp->ppsId > 255)
            return api_fail(s, NV_ENC_ERR_INVALID_PARAM, "spsId %u / ppsId %u out of range (0..31 / 0..255)", sp->spsId, sp->ppsId);
        seq.sps_id = (int)sp->spsId;
        seq.pps_id = (int)sp->ppsId;
    }
    uint8_t buf[NV_MAX_SEQ_HDR_LEN];
    size_t n = h264_write_headers(&seq, buf, sizeof buf);
    if (!n)
        return api_fail(s, NV_ENC_ERR_GENERIC, "the sequence headers do not fit NV_MAX_SEQ_HDR_LEN (%d)", NV_MAX_SEQ_HDR_LEN);
    if (sp->inBufferSize < n)
        return api_fail(s, NV_ENC_ERR_NOT_ENOUGH_BUFFER, "inBufferSize %u is smaller than the %zu header bytes",
                    sp->inBufferSize, n);
    memcpy(sp->spsppsBuffer, buf, n);
    *sp->outSPSPPSPayloadSize = (uint32_t)n;
    return NV_ENC_SUCCESS;
}

static NVENCSTATUS check_payload(emu_session *s, NV_ENC_SEQUENCE_PARAM_PAYLOAD *sp)
{
    CHECK_PTR(s, sp, "sequenceParamPayload");
    NVENCSTATUS st = check_version(s, sp->version, EMU_SEQUENCE_PARAM_PAYLOAD);
    if (st || (st = check_reserved(s, s->api_version, EMU_SEQUENCE_PARAM_PAYLOAD, sp)))
        return st;
    CHECK_PTR(s, sp->spsppsBuffer, "NV_ENC_SEQUENCE_PARAM_PAYLOAD.spsppsBuffer");
    CHECK_PTR(s, sp->outSPSPPSPayloadSize, "NV_ENC_SEQUENCE_PARAM_PAYLOAD.outSPSPPSPayloadSize");
    return NV_ENC_SUCCESS;
}

static NVENCSTATUS NVENCAPI api_get_sequence_params(void *encoder, NV_ENC_SEQUENCE_PARAM_PAYLOAD *sp)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncGetSequenceParams", encoder, &s, &st))
        return api_leave(st);
    if ((st = check_payload(s, sp)))
        return api_leave(st);
    if (!s->initialized)
        return api_leave(api_fail(s, NV_ENC_ERR_ENCODER_NOT_INITIALIZED, "call nvEncInitializeEncoder successfully before this call"));
    return api_leave(sequence_payload(s, s->cfg.seq, sp));
}

static NVENCSTATUS NVENCAPI api_get_sequence_param_ex(void *encoder, NV_ENC_INITIALIZE_PARAMS *ip,
                                                      NV_ENC_SEQUENCE_PARAM_PAYLOAD *sp)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncGetSequenceParamEx", encoder, &s, &st))
        return api_leave(st);
    if ((st = check_payload(s, sp)))
        return api_leave(st);
    if (s->initialized) /* the documented behaviour: encInitParams is ignored */
        return api_leave(sequence_payload(s, s->cfg.seq, sp));
    if (!ip)
        return api_leave(api_fail(s, NV_ENC_ERR_INVALID_PTR, "encInitParams is NULL and the encoder is not initialized"));
    char err[EMU_ERR_LEN];
    emu_config cfg;
    if ((st = derive_config(s->api_version, ip, &cfg, err, sizeof err)))
        return api_leave(api_fail(s, st, "encInitParams: %s", err));
    if ((st = check_reserved(s, s->api_version, EMU_INITIALIZE_PARAMS, ip)))
        return api_leave(st);
    return api_leave(sequence_payload(s, cfg.seq, sp));
}

/* ------------------------------------------------------------------- misc */

static NVENCSTATUS NVENCAPI api_set_io_cuda_streams(void *encoder, NV_ENC_CUSTREAM_PTR in, NV_ENC_CUSTREAM_PTR out)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!api_enter("nvEncSetIOCudaStreams", encoder, &s, &st))
        return api_leave(st);
    /* The driver keeps the pointers and reads the CUstreams through them at each encode
     * (encode.c compares), so they must outlive the session. */
    s->in_stream = in;
    s->out_stream = out;
    s->in_stream_value = in ? *(void **)in : NULL;
    s->out_stream_value = out ? *(void **)out : NULL;
    s->dead_stream_counted = 0;
    return api_leave(NV_ENC_SUCCESS);
}

static const char *NVENCAPI api_get_last_error_string(void *encoder)
{
    pthread_mutex_lock(&g_emu.lock);
    emu_session *s = find_session(encoder);
    if (!encoder)
        g_emu.totals.null_session_calls++;
    const char *msg = s ? s->last_error : g_emu.last_error;
    pthread_mutex_unlock(&g_emu.lock);
    return msg;
}

/* The entry points the emulator does not implement: validated, then refused. */
#define UNIMPLEMENTED(fn_name, ...) \
    { \
        emu_session *s; \
        NVENCSTATUS st; \
        if (!api_enter(fn_name, encoder, &s, &st)) \
            return api_leave(st); \
        return api_leave(api_fail(s, NV_ENC_ERR_UNIMPLEMENTED, "%s is not implemented by the NVENC emulator", fn_name)); \
    }

static NVENCSTATUS NVENCAPI api_open_encode_session(void *device, uint32_t type, void **encoder)
{
    (void)device;
    (void)type;
    pthread_mutex_lock(&g_emu.lock);
    g_emu.fn = "nvEncOpenEncodeSession";
    NVENCSTATUS st;
    if (encoder)
        *encoder = NULL;
    if (fault_fires(g_emu.fn, &st))
        return api_leave(api_fail(NULL, st, "injected fault (emu_inject_fault)"));
    return api_leave(api_fail(NULL, NV_ENC_ERR_UNIMPLEMENTED, "the legacy nvEncOpenEncodeSession is not implemented; use nvEncOpenEncodeSessionEx"));
}

static NVENCSTATUS NVENCAPI api_get_encode_stats(void *encoder, NV_ENC_STAT *p)
{
    (void)p;
    UNIMPLEMENTED("nvEncGetEncodeStats")
}
static NVENCSTATUS NVENCAPI api_register_async_event(void *encoder, NV_ENC_EVENT_PARAMS *p)
{
    (void)p;
    UNIMPLEMENTED("nvEncRegisterAsyncEvent")
}
static NVENCSTATUS NVENCAPI api_unregister_async_event(void *encoder, NV_ENC_EVENT_PARAMS *p)
{
    (void)p;
    UNIMPLEMENTED("nvEncUnregisterAsyncEvent")
}
static NVENCSTATUS NVENCAPI api_invalidate_ref_frames(void *encoder, uint64_t ts)
{
    (void)ts;
    UNIMPLEMENTED("nvEncInvalidateRefFrames")
}
static NVENCSTATUS NVENCAPI api_create_mv_buffer(void *encoder, NV_ENC_CREATE_MV_BUFFER *p)
{
    (void)p;
    UNIMPLEMENTED("nvEncCreateMVBuffer")
}
static NVENCSTATUS NVENCAPI api_destroy_mv_buffer(void *encoder, NV_ENC_OUTPUT_PTR p)
{
    (void)p;
    UNIMPLEMENTED("nvEncDestroyMVBuffer")
}
static NVENCSTATUS NVENCAPI api_run_motion_estimation_only(void *encoder, NV_ENC_MEONLY_PARAMS *p)
{
    (void)p;
    UNIMPLEMENTED("nvEncRunMotionEstimationOnly")
}
static NVENCSTATUS NVENCAPI api_restore_encoder_state(void *encoder, NV_ENC_RESTORE_ENCODER_STATE_PARAMS *p)
{
    (void)p;
    UNIMPLEMENTED("nvEncRestoreEncoderState")
}
static NVENCSTATUS NVENCAPI api_lookahead_picture(void *encoder, NV_ENC_LOOKAHEAD_PIC_PARAMS *p)
{
    (void)p;
    UNIMPLEMENTED("nvEncLookaheadPicture")
}

/* ------------------------------------------------------------ entry points */

EMU_EXPORT NVENCSTATUS NVENCAPI NvEncodeAPIGetMaxSupportedVersion(uint32_t *version)
{
    pthread_mutex_lock(&g_emu.lock);
    g_emu.fn = "NvEncodeAPIGetMaxSupportedVersion";
    NVENCSTATUS st;
    if (fault_fires(g_emu.fn, &st))
        return api_leave(api_fail(NULL, st, "injected fault (emu_inject_fault)"));
    if (!version)
        return api_leave(api_fail(NULL, NV_ENC_ERR_INVALID_PTR, "version is NULL"));
    *version = ((uint32_t)g_emu.max_major << 4) | ((uint32_t)g_emu.max_minor & 0xFu);
    return api_leave(NV_ENC_SUCCESS);
}

EMU_EXPORT NVENCSTATUS NVENCAPI NvEncodeAPICreateInstance(NV_ENCODE_API_FUNCTION_LIST *fl)
{
    pthread_mutex_lock(&g_emu.lock);
    g_emu.fn = "NvEncodeAPICreateInstance";
    NVENCSTATUS st;
    if (fault_fires(g_emu.fn, &st))
        return api_leave(api_fail(NULL, st, "injected fault (emu_inject_fault)"));
    if (!fl)
        return api_leave(api_fail(NULL, NV_ENC_ERR_INVALID_PTR, "functionList is NULL"));
    unsigned major = fl->version & 0xFFFFu, minor = (fl->version >> 24) & 0xFu;
    if (major > (unsigned)g_emu.max_major || (major == (unsigned)g_emu.max_major && minor > (unsigned)g_emu.max_minor))
        return api_leave(api_fail(NULL, NV_ENC_ERR_INVALID_VERSION,
                          "the function list is for API %u.%u, newer than the driver supports (%d.%d)",
                          major, minor, g_emu.max_major, g_emu.max_minor));
    if (fl->version != NV_ENCODE_API_FUNCTION_LIST_VER && fl->version != FUNCTION_LIST_VER_13_0)
        return api_leave(api_fail(NULL, NV_ENC_ERR_INVALID_VERSION,
                          "NV_ENCODE_API_FUNCTION_LIST.version is 0x%08X, expected NV_ENCODE_API_FUNCTION_LIST_VER "
                          "0x%08X (API 12.1) or 0x%08X (API 13.0)",
                          fl->version, NV_ENCODE_API_FUNCTION_LIST_VER, FUNCTION_LIST_VER_13_0));
    fl->nvEncOpenEncodeSession = api_open_encode_session;
    fl->nvEncGetEncodeGUIDCount = api_get_encode_guid_count;
    fl->nvEncGetEncodeProfileGUIDCount = api_get_profile_guid_count;
    fl->nvEncGetEncodeProfileGUIDs = api_get_profile_guids;
    fl->nvEncGetEncodeGUIDs = api_get_encode_guids;
    fl->nvEncGetInputFormatCount = api_get_input_format_count;
    fl->nvEncGetInputFormats = api_get_input_formats;
    fl->nvEncGetEncodeCaps = api_get_encode_caps;
    fl->nvEncGetEncodePresetCount = api_get_preset_count;
    fl->nvEncGetEncodePresetGUIDs = api_get_preset_guids;
    fl->nvEncGetEncodePresetConfig = api_get_preset_config;
    fl->nvEncInitializeEncoder = api_initialize_encoder;
    fl->nvEncCreateInputBuffer = api_create_input_buffer;
    fl->nvEncDestroyInputBuffer = api_destroy_input_buffer;
    fl->nvEncCreateBitstreamBuffer = api_create_bitstream_buffer;
    fl->nvEncDestroyBitstreamBuffer = api_destroy_bitstream_buffer;
    fl->nvEncEncodePicture = api_encode_picture;
    fl->nvEncLockBitstream = api_lock_bitstream;
    fl->nvEncUnlockBitstream = api_unlock_bitstream;
    fl->nvEncLockInputBuffer = api_lock_input_buffer;
    fl->nvEncUnlockInputBuffer = api_unlock_input_buffer;
    fl->nvEncGetEncodeStats = api_get_encode_stats;
    fl->nvEncGetSequenceParams = api_get_sequence_params;
    fl->nvEncRegisterAsyncEvent = api_register_async_event;
    fl->nvEncUnregisterAsyncEvent = api_unregister_async_event;
    fl->nvEncMapInputResource = api_map_input_resource;
    fl->nvEncUnmapInputResource = api_unmap_input_resource;
    fl->nvEncDestroyEncoder = api_destroy_encoder;
    fl->nvEncInvalidateRefFrames = api_invalidate_ref_frames;
    fl->nvEncOpenEncodeSessionEx = api_open_encode_session_ex;
    fl->nvEncRegisterResource = api_register_resource;
    fl->nvEncUnregisterResource = api_unregister_resource;
    fl->nvEncReconfigureEncoder = api_reconfigure_encoder;
    fl->reserved1 = NULL;
    fl->nvEncCreateMVBuffer = api_create_mv_buffer;
    fl->nvEncDestroyMVBuffer = api_destroy_mv_buffer;
    fl->nvEncRunMotionEstimationOnly = api_run_motion_estimation_only;
    fl->nvEncGetLastErrorString = api_get_last_error_string;
    fl->nvEncSetIOCudaStreams = api_set_io_cuda_streams;
    fl->nvEncGetEncodePresetConfigEx = api_get_preset_config_ex;
    fl->nvEncGetSequenceParamEx = api_get_sequence_param_ex;
    fl->nvEncRestoreEncoderState = api_restore_encoder_state;
    fl->nvEncLookaheadPicture = api_lookahead_picture;
    return api_leave(NV_ENC_SUCCESS);
}
