/*
 * The emulated libnvidia-encode: NvEncodeAPICreateInstance, the function list,
 * sessions and the objects they own.
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

/* Records why a call failed (for the session and globally) and returns `st`. */
static NVENCSTATUS fail(emu_session *s, NVENCSTATUS st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static NVENCSTATUS fail(emu_session *s, NVENCSTATUS st, const char *fmt, ...)
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

#define CHECK_PTR(s, p, what) \
    do { if (!(p)) return fail((s), NV_ENC_ERR_INVALID_PTR, "%s is NULL", (what)); } while (0)

#define CHECK_VERSION(s, got, want, strct) \
    do { \
        if ((got) != (want)) \
            return fail((s), NV_ENC_ERR_INVALID_VERSION, "%s.version is 0x%08X, expected %s_VER 0x%08X", \
                        (strct), (unsigned)(got), (strct), (unsigned)(want)); \
    } while (0)

#define CHECK_INITIALIZED(s) \
    do { \
        if (!(s)->initialized) \
            return fail((s), NV_ENC_ERR_ENCODER_NOT_INITIALIZED, \
                        "call nvEncInitializeEncoder successfully before this call"); \
    } while (0)

static emu_session *find_session(const void *handle)
{
    for (emu_session *s = g_emu.sessions; s; s = s->next)
        if (s == handle)
            return s;
    return NULL;
}

/* Takes the lock and resolves the session; returns 0 (with *st set) when the
 * call must not proceed. Every path ends with leave(). */
static int enter(const char *fn, void *encoder, emu_session **out, NVENCSTATUS *st)
{
    pthread_mutex_lock(&g_emu.lock);
    g_emu.fn = fn;
    emu_session *s = find_session(encoder);
    *out = s;
    NVENCSTATUS injected;
    if (fault_fires(fn, &injected)) {
        *st = fail(s, injected, "injected fault (emu_inject_fault)");
        return 0;
    }
    if (!encoder) {
        *st = fail(NULL, NV_ENC_ERR_INVALID_PTR, "encoder is NULL");
        return 0;
    }
    if (!s) {
        *st = fail(NULL, NV_ENC_ERR_INVALID_ENCODERDEVICE,
                   "encoder %p is not an open encode session (destroyed, reset, or never opened)", encoder);
        return 0;
    }
    return 1;
}

static NVENCSTATUS leave(NVENCSTATUS st)
{
    g_emu.fn = NULL;
    pthread_mutex_unlock(&g_emu.lock);
    return st;
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
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
    return fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM, "encodeGUID %s is not NV_ENC_CODEC_H264_GUID (the emulator encodes H.264 only)", g);
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

/* --------------------------------------------------------- session lifetime */

static void free_bitstream(emu_bitstream *b)
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

static NVENCSTATUS NVENCAPI api_open_encode_session_ex(NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS *p, void **encoder)
{
    pthread_mutex_lock(&g_emu.lock);
    g_emu.fn = "nvEncOpenEncodeSessionEx";
    NVENCSTATUS st;
    if (encoder)
        *encoder = NULL;
    if (fault_fires(g_emu.fn, &st))
        return leave(fail(NULL, st, "injected fault (emu_inject_fault)"));
    if (!p)
        return leave(fail(NULL, NV_ENC_ERR_INVALID_PTR, "openSessionExParams is NULL"));
    if (!encoder)
        return leave(fail(NULL, NV_ENC_ERR_INVALID_PTR, "encoder (the output pointer) is NULL"));
    if (p->version != NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER)
        return leave(fail(NULL, NV_ENC_ERR_INVALID_VERSION,
                          "NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS.version is 0x%08X, expected "
                          "NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER 0x%08X",
                          p->version, NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER));
    unsigned major = p->apiVersion & 0xFFFFu, minor = (p->apiVersion >> 24) & 0xFFu;
    if (major > (unsigned)g_emu.max_major || (major == (unsigned)g_emu.max_major && minor > (unsigned)g_emu.max_minor))
        return leave(fail(NULL, NV_ENC_ERR_INVALID_VERSION,
                          "apiVersion %u.%u is newer than the driver supports (%d.%d, see NvEncodeAPIGetMaxSupportedVersion)",
                          major, minor, g_emu.max_major, g_emu.max_minor));
    if (p->apiVersion != NVENCAPI_VERSION)
        return leave(fail(NULL, NV_ENC_ERR_INVALID_VERSION,
                          "apiVersion is %u.%u (0x%08X); the emulator implements the %d.%d structures only (NVENCAPI_VERSION 0x%08X)",
                          major, minor, p->apiVersion, NVENCAPI_MAJOR_VERSION, NVENCAPI_MINOR_VERSION, NVENCAPI_VERSION));
    if (p->deviceType != NV_ENC_DEVICE_TYPE_CUDA)
        return leave(fail(NULL, NV_ENC_ERR_UNSUPPORTED_DEVICE,
                          "deviceType %d: the emulator supports NV_ENC_DEVICE_TYPE_CUDA (1) only", (int)p->deviceType));
    if (g_emu.unsupported_device)
        return leave(fail(NULL, NV_ENC_ERR_UNSUPPORTED_DEVICE,
                          "this GPU has no NVENC engine (emulating an H100/H200: emu_set_unsupported_device)"));
    emu_session *s = calloc(1, sizeof *s);
    if (!s)
        return leave(fail(NULL, NV_ENC_ERR_OUT_OF_MEMORY, "cannot allocate a session"));
    s->device = p->device;
    s->api_version = p->apiVersion;
    s->next = g_emu.sessions;
    g_emu.sessions = s;
    g_emu.totals.sessions_opened++;
    *encoder = s;
    return leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_destroy_encoder(void *encoder)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncDestroyEncoder", encoder, &s, &st))
        return leave(st);
    unlink_session(s);
    session_free(s, 1);
    return leave(NV_ENC_SUCCESS);
}

/* ----------------------------------------------------------------- queries */

static NVENCSTATUS NVENCAPI api_get_encode_guid_count(void *encoder, uint32_t *count)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncGetEncodeGUIDCount", encoder, &s, &st))
        return leave(st);
    if (!count)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "encodeGUIDCount is NULL"));
    *count = (uint32_t)emu_codec_guid_count;
    return leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_get_encode_guids(void *encoder, GUID *guids, uint32_t size, uint32_t *count)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncGetEncodeGUIDs", encoder, &s, &st))
        return leave(st);
    return leave(copy_guids(s, guids, size, count, emu_codec_guids, emu_codec_guid_count));
}

static NVENCSTATUS NVENCAPI api_get_profile_guid_count(void *encoder, GUID codec, uint32_t *count)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncGetEncodeProfileGUIDCount", encoder, &s, &st))
        return leave(st);
    if (!count)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "encodeProfileGUIDCount is NULL"));
    if ((st = check_codec(s, &codec)))
        return leave(st);
    *count = (uint32_t)emu_profile_guid_count;
    return leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_get_profile_guids(void *encoder, GUID codec, GUID *guids, uint32_t size, uint32_t *count)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncGetEncodeProfileGUIDs", encoder, &s, &st))
        return leave(st);
    if ((st = check_codec(s, &codec)))
        return leave(st);
    return leave(copy_guids(s, guids, size, count, emu_profile_guids, emu_profile_guid_count));
}

static NVENCSTATUS NVENCAPI api_get_input_format_count(void *encoder, GUID codec, uint32_t *count)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncGetInputFormatCount", encoder, &s, &st))
        return leave(st);
    if (!count)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "inputFmtCount is NULL"));
    if ((st = check_codec(s, &codec)))
        return leave(st);
    *count = (uint32_t)emu_input_format_count;
    return leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_get_input_formats(void *encoder, GUID codec, NV_ENC_BUFFER_FORMAT *fmts,
                                                  uint32_t size, uint32_t *count)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncGetInputFormats", encoder, &s, &st))
        return leave(st);
    if (!fmts || !count)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "inputFmts or inputFmtCount is NULL"));
    if ((st = check_codec(s, &codec)))
        return leave(st);
    uint32_t k = size < (uint32_t)emu_input_format_count ? size : (uint32_t)emu_input_format_count;
    for (uint32_t i = 0; i < k; i++)
        fmts[i] = emu_input_formats[i];
    *count = k;
    return leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_get_encode_caps(void *encoder, GUID codec, NV_ENC_CAPS_PARAM *cp, int *value)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncGetEncodeCaps", encoder, &s, &st))
        return leave(st);
    if (!cp || !value)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "capsParam or capsVal is NULL"));
    if (cp->version != NV_ENC_CAPS_PARAM_VER)
        return leave(fail(s, NV_ENC_ERR_INVALID_VERSION, "NV_ENC_CAPS_PARAM.version is 0x%08X, expected NV_ENC_CAPS_PARAM_VER 0x%08X",
                          cp->version, NV_ENC_CAPS_PARAM_VER));
    if ((st = check_codec(s, &codec)))
        return leave(st);
    if (!caps_query((int)cp->capsToQuery, value))
        return leave(fail(s, NV_ENC_ERR_INVALID_PARAM, "capsToQuery %d is not a NV_ENC_CAPS value (0..%d)",
                          (int)cp->capsToQuery, NV_ENC_CAPS_EXPOSED_COUNT - 1));
    return leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_get_preset_count(void *encoder, GUID codec, uint32_t *count)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncGetEncodePresetCount", encoder, &s, &st))
        return leave(st);
    if (!count)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "encodePresetGUIDCount is NULL"));
    if ((st = check_codec(s, &codec)))
        return leave(st);
    *count = (uint32_t)emu_preset_guid_count;
    return leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_get_preset_guids(void *encoder, GUID codec, GUID *guids, uint32_t size, uint32_t *count)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncGetEncodePresetGUIDs", encoder, &s, &st))
        return leave(st);
    if ((st = check_codec(s, &codec)))
        return leave(st);
    return leave(copy_guids(s, guids, size, count, emu_preset_guids, emu_preset_guid_count));
}

static NVENCSTATUS preset_config_common(emu_session *s, const GUID *codec, const GUID *preset,
                                        NV_ENC_TUNING_INFO tuning, NV_ENC_PRESET_CONFIG *pc)
{
    CHECK_PTR(s, pc, "presetConfig");
    CHECK_VERSION(s, pc->version, NV_ENC_PRESET_CONFIG_VER, "NV_ENC_PRESET_CONFIG");
    if (pc->presetCfg.version != NV_ENC_CONFIG_VER)
        return fail(s, NV_ENC_ERR_INVALID_VERSION,
                    "NV_ENC_PRESET_CONFIG.presetCfg.version is 0x%08X, expected NV_ENC_CONFIG_VER 0x%08X",
                    pc->presetCfg.version, NV_ENC_CONFIG_VER);
    NVENCSTATUS st = check_codec(s, codec);
    if (st)
        return st;
    if (tuning == NV_ENC_TUNING_INFO_UNDEFINED || (int)tuning < 0 || tuning >= NV_ENC_TUNING_INFO_COUNT)
        return fail(s, NV_ENC_ERR_INVALID_PARAM, "tuningInfo %d is not a NV_ENC_TUNING_INFO value (1..%d)",
                    (int)tuning, NV_ENC_TUNING_INFO_COUNT - 1);
    char err[EMU_ERR_LEN];
    if ((st = preset_config(preset, tuning, &pc->presetCfg, err, sizeof err)))
        return fail(s, st, "%s", err);
    return NV_ENC_SUCCESS;
}

static NVENCSTATUS NVENCAPI api_get_preset_config(void *encoder, GUID codec, GUID preset, NV_ENC_PRESET_CONFIG *pc)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncGetEncodePresetConfig", encoder, &s, &st))
        return leave(st);
    return leave(preset_config_common(s, &codec, &preset, NV_ENC_TUNING_INFO_HIGH_QUALITY, pc));
}

static NVENCSTATUS NVENCAPI api_get_preset_config_ex(void *encoder, GUID codec, GUID preset,
                                                     NV_ENC_TUNING_INFO tuning, NV_ENC_PRESET_CONFIG *pc)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncGetEncodePresetConfigEx", encoder, &s, &st))
        return leave(st);
    return leave(preset_config_common(s, &codec, &preset, tuning, pc));
}

/* ------------------------------------------------- initialize / reconfigure */

static NVENCSTATUS NVENCAPI api_initialize_encoder(void *encoder, NV_ENC_INITIALIZE_PARAMS *ip)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncInitializeEncoder", encoder, &s, &st))
        return leave(st);
    if (!ip)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "createEncodeParams is NULL"));
    if (s->initialized)
        return leave(fail(s, NV_ENC_ERR_INVALID_CALL, "the encoder is already initialized (use nvEncReconfigureEncoder)"));
    char err[EMU_ERR_LEN];
    emu_config cfg;
    if ((st = derive_config(ip, &cfg, err, sizeof err)))
        return leave(fail(s, st, "%s", err));
    s->cfg = cfg;
    s->max_width = ip->maxEncodeWidth;
    s->max_height = ip->maxEncodeHeight;
    s->initialized = 1;
    s->force_idr = 1;
    return leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_reconfigure_encoder(void *encoder, NV_ENC_RECONFIGURE_PARAMS *rp)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncReconfigureEncoder", encoder, &s, &st))
        return leave(st);
    if (!rp)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "reInitEncodeParams is NULL"));
    if (rp->version != NV_ENC_RECONFIGURE_PARAMS_VER)
        return leave(fail(s, NV_ENC_ERR_INVALID_VERSION, "NV_ENC_RECONFIGURE_PARAMS.version is 0x%08X, expected NV_ENC_RECONFIGURE_PARAMS_VER 0x%08X",
                          rp->version, NV_ENC_RECONFIGURE_PARAMS_VER));
    if (!s->initialized)
        return leave(fail(s, NV_ENC_ERR_ENCODER_NOT_INITIALIZED, "call nvEncInitializeEncoder successfully before this call"));

    NV_ENC_INITIALIZE_PARAMS ni = rp->reInitEncodeParams;
    NV_ENC_CONFIG keep = s->cfg.config;
    /* No config and the same preset: keep the current configuration. */
    if (!ni.encodeConfig && guid_eq(&ni.presetGUID, &s->cfg.init.presetGUID))
        ni.encodeConfig = &keep;
    char err[EMU_ERR_LEN];
    emu_config nc;
    if ((st = derive_config(&ni, &nc, err, sizeof err)))
        return leave(fail(s, st, "reInitEncodeParams: %s", err));
    const emu_config *oc = &s->cfg;
    if (nc.init.enablePTD != oc->init.enablePTD)
        return leave(fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM, "changing enablePTD (%u -> %u) is not supported",
                          oc->init.enablePTD, nc.init.enablePTD));
    if ((ni.maxEncodeWidth || ni.maxEncodeHeight) &&
        (ni.maxEncodeWidth != s->max_width || ni.maxEncodeHeight != s->max_height))
        return leave(fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM,
                          "changing maxEncodeWidth x maxEncodeHeight (%ux%u -> %ux%u) is not supported",
                          s->max_width, s->max_height, ni.maxEncodeWidth, ni.maxEncodeHeight));
    uint32_t w = ni.encodeWidth, h = ni.encodeHeight;
    if (w != oc->init.encodeWidth || h != oc->init.encodeHeight) {
        if (!s->max_width)
            return leave(fail(s, NV_ENC_ERR_INVALID_PARAM,
                              "resolution change %ux%u -> %ux%u needs maxEncodeWidth/maxEncodeHeight set at nvEncInitializeEncoder",
                              oc->init.encodeWidth, oc->init.encodeHeight, w, h));
        if (w > s->max_width || h > s->max_height)
            return leave(fail(s, NV_ENC_ERR_INVALID_PARAM,
                              "encodeWidth x encodeHeight %ux%u is beyond maxEncodeWidth x maxEncodeHeight %ux%u",
                              w, h, s->max_width, s->max_height));
    }
    if (nc.gop_length != oc->gop_length || nc.idr_period != oc->idr_period || nc.intra_only != oc->intra_only)
        return leave(fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM,
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
    return leave(NV_ENC_SUCCESS);
}

/* --------------------------------------------------------- sequence headers */

/* SPS then PPS, Annex B, into dst; returns the size or 0 if it does not fit. */
static size_t write_headers(const h264_seq *seq, uint8_t *dst, size_t cap)
{
    size_t n = h264_write_sps(seq, dst, cap);
    if (!n)
        return 0;
    size_t m = h264_write_pps(seq, dst + n, cap - n);
    return m ? n + m : 0;
}

static NVENCSTATUS sequence_payload(emu_session *s, h264_seq seq, NV_ENC_SEQUENCE_PARAM_PAYLOAD *sp)
{
    if (sp->spsId || sp->ppsId) { /* the payload's ids, when given, name the headers */
        if (sp->spsId > 31 || sp->ppsId > 255)
            return fail(s, NV_ENC_ERR_INVALID_PARAM, "spsId %u / ppsId %u out of range (0..31 / 0..255)", sp->spsId, sp->ppsId);
        seq.sps_id = (int)sp->spsId;
        seq.pps_id = (int)sp->ppsId;
    }
    uint8_t buf[NV_MAX_SEQ_HDR_LEN];
    size_t n = write_headers(&seq, buf, sizeof buf);
    if (!n)
        return fail(s, NV_ENC_ERR_GENERIC, "the sequence headers do not fit NV_MAX_SEQ_HDR_LEN (%d)", NV_MAX_SEQ_HDR_LEN);
    if (sp->inBufferSize < n)
        return fail(s, NV_ENC_ERR_NOT_ENOUGH_BUFFER, "inBufferSize %u is smaller than the %zu header bytes",
                    sp->inBufferSize, n);
    memcpy(sp->spsppsBuffer, buf, n);
    *sp->outSPSPPSPayloadSize = (uint32_t)n;
    return NV_ENC_SUCCESS;
}

static NVENCSTATUS check_payload(emu_session *s, NV_ENC_SEQUENCE_PARAM_PAYLOAD *sp)
{
    CHECK_PTR(s, sp, "sequenceParamPayload");
    CHECK_VERSION(s, sp->version, NV_ENC_SEQUENCE_PARAM_PAYLOAD_VER, "NV_ENC_SEQUENCE_PARAM_PAYLOAD");
    CHECK_PTR(s, sp->spsppsBuffer, "NV_ENC_SEQUENCE_PARAM_PAYLOAD.spsppsBuffer");
    CHECK_PTR(s, sp->outSPSPPSPayloadSize, "NV_ENC_SEQUENCE_PARAM_PAYLOAD.outSPSPPSPayloadSize");
    return NV_ENC_SUCCESS;
}

static NVENCSTATUS NVENCAPI api_get_sequence_params(void *encoder, NV_ENC_SEQUENCE_PARAM_PAYLOAD *sp)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncGetSequenceParams", encoder, &s, &st))
        return leave(st);
    if ((st = check_payload(s, sp)))
        return leave(st);
    if (!s->initialized)
        return leave(fail(s, NV_ENC_ERR_ENCODER_NOT_INITIALIZED, "call nvEncInitializeEncoder successfully before this call"));
    return leave(sequence_payload(s, s->cfg.seq, sp));
}

static NVENCSTATUS NVENCAPI api_get_sequence_param_ex(void *encoder, NV_ENC_INITIALIZE_PARAMS *ip,
                                                      NV_ENC_SEQUENCE_PARAM_PAYLOAD *sp)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncGetSequenceParamEx", encoder, &s, &st))
        return leave(st);
    if ((st = check_payload(s, sp)))
        return leave(st);
    if (s->initialized) /* the documented behaviour: encInitParams is ignored */
        return leave(sequence_payload(s, s->cfg.seq, sp));
    if (!ip)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "encInitParams is NULL and the encoder is not initialized"));
    char err[EMU_ERR_LEN];
    emu_config cfg;
    if ((st = derive_config(ip, &cfg, err, sizeof err)))
        return leave(fail(s, st, "encInitParams: %s", err));
    return leave(sequence_payload(s, cfg.seq, sp));
}

/* ------------------------------------------------------- bitstream buffers */

static NVENCSTATUS NVENCAPI api_create_bitstream_buffer(void *encoder, NV_ENC_CREATE_BITSTREAM_BUFFER *p)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncCreateBitstreamBuffer", encoder, &s, &st))
        return leave(st);
    if (!p)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "createBitstreamBufferParams is NULL"));
    if (p->version != NV_ENC_CREATE_BITSTREAM_BUFFER_VER)
        return leave(fail(s, NV_ENC_ERR_INVALID_VERSION, "NV_ENC_CREATE_BITSTREAM_BUFFER.version is 0x%08X, expected NV_ENC_CREATE_BITSTREAM_BUFFER_VER 0x%08X",
                          p->version, NV_ENC_CREATE_BITSTREAM_BUFFER_VER));
    if (!s->initialized)
        return leave(fail(s, NV_ENC_ERR_ENCODER_NOT_INITIALIZED, "call nvEncInitializeEncoder successfully before this call"));
    emu_bitstream *b = calloc(1, sizeof *b);
    if (!b || pv_push(&s->bitstreams, b)) {
        free(b);
        return leave(fail(s, NV_ENC_ERR_OUT_OF_MEMORY, "cannot allocate a bitstream buffer"));
    }
    p->bitstreamBuffer = b;
    p->bitstreamBufferPtr = NULL; /* "reserved and should not be used" */
    return leave(NV_ENC_SUCCESS);
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

static NVENCSTATUS NVENCAPI api_destroy_bitstream_buffer(void *encoder, NV_ENC_OUTPUT_PTR buffer)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncDestroyBitstreamBuffer", encoder, &s, &st))
        return leave(st);
    if (!buffer)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "bitstreamBuffer is NULL"));
    int i = pv_find(&s->bitstreams, buffer);
    if (i < 0)
        return leave(fail(s, NV_ENC_ERR_INVALID_PARAM, "bitstreamBuffer %p was not created by this session (or is already destroyed)", buffer));
    release_inputs_of(s, buffer);
    pv_remove(&s->bitstreams, i);
    free_bitstream(buffer);
    return leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_lock_bitstream(void *encoder, NV_ENC_LOCK_BITSTREAM *lp)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncLockBitstream", encoder, &s, &st))
        return leave(st);
    if (!lp)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "lockBitstreamBufferParams is NULL"));
    if (lp->version != NV_ENC_LOCK_BITSTREAM_VER)
        return leave(fail(s, NV_ENC_ERR_INVALID_VERSION, "NV_ENC_LOCK_BITSTREAM.version is 0x%08X, expected NV_ENC_LOCK_BITSTREAM_VER 0x%08X",
                          lp->version, NV_ENC_LOCK_BITSTREAM_VER));
    if (!s->initialized)
        return leave(fail(s, NV_ENC_ERR_ENCODER_NOT_INITIALIZED, "call nvEncInitializeEncoder successfully before this call"));
    if (!lp->outputBitstream)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "NV_ENC_LOCK_BITSTREAM.outputBitstream is NULL"));
    if (pv_find(&s->bitstreams, lp->outputBitstream) < 0)
        return leave(fail(s, NV_ENC_ERR_INVALID_PARAM, "outputBitstream %p was not created by this session (or is already destroyed)",
                          lp->outputBitstream));
    emu_bitstream *b = lp->outputBitstream;
    if (b->state == BS_LOCKED)
        return leave(fail(s, NV_ENC_ERR_INVALID_CALL, "outputBitstream %p is already locked (unlock it first)", (void *)b));
    if (b->state == BS_IDLE)
        return leave(fail(s, NV_ENC_ERR_INVALID_CALL,
                          "outputBitstream %p holds no encoded picture (lock only after nvEncEncodePicture returned NV_ENC_SUCCESS for it)",
                          (void *)b));
    for (int i = 0; i < s->bitstreams.n; i++) {
        emu_bitstream *o = s->bitstreams.items[i];
        if (o->state == BS_PENDING && o->seq < b->seq)
            return leave(fail(s, NV_ENC_ERR_INVALID_CALL,
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
    return leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_unlock_bitstream(void *encoder, NV_ENC_OUTPUT_PTR buffer)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncUnlockBitstream", encoder, &s, &st))
        return leave(st);
    if (!buffer)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "bitstreamBuffer is NULL"));
    if (pv_find(&s->bitstreams, buffer) < 0)
        return leave(fail(s, NV_ENC_ERR_INVALID_PARAM, "bitstreamBuffer %p was not created by this session (or is already destroyed)", buffer));
    emu_bitstream *b = buffer;
    if (b->state != BS_LOCKED)
        return leave(fail(s, NV_ENC_ERR_INVALID_CALL, "bitstreamBuffer %p is not locked", buffer));
    b->state = BS_IDLE;
    return leave(NV_ENC_SUCCESS);
}

/* ----------------------------------------------------------- input buffers */

static NVENCSTATUS check_surface(emu_session *s, NV_ENC_BUFFER_FORMAT fmt, uint32_t w, uint32_t h)
{
    if (!fmt_supported(fmt))
        return fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM,
                    "buffer format %s (0x%08X) is not supported; see nvEncGetInputFormats (NV12, YV12, IYUV, ARGB, ABGR)",
                    fmt_name(fmt), (unsigned)fmt);
    if (w == 0 || h == 0 || w > EMU_MAX_WIDTH || h > EMU_MAX_HEIGHT || ((w | h) & 1))
        return fail(s, NV_ENC_ERR_INVALID_PARAM, "surface size %ux%u: expected even sizes from 2x2 to %dx%d",
                    w, h, EMU_MAX_WIDTH, EMU_MAX_HEIGHT);
    return NV_ENC_SUCCESS;
}

static NVENCSTATUS NVENCAPI api_create_input_buffer(void *encoder, NV_ENC_CREATE_INPUT_BUFFER *p)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncCreateInputBuffer", encoder, &s, &st))
        return leave(st);
    if (!p)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "createInputBufferParams is NULL"));
    if (p->version != NV_ENC_CREATE_INPUT_BUFFER_VER)
        return leave(fail(s, NV_ENC_ERR_INVALID_VERSION, "NV_ENC_CREATE_INPUT_BUFFER.version is 0x%08X, expected NV_ENC_CREATE_INPUT_BUFFER_VER 0x%08X",
                          p->version, NV_ENC_CREATE_INPUT_BUFFER_VER));
    if (!s->initialized)
        return leave(fail(s, NV_ENC_ERR_ENCODER_NOT_INITIALIZED, "call nvEncInitializeEncoder successfully before this call"));
    if ((st = check_surface(s, p->bufferFmt, p->width, p->height)))
        return leave(st);
    emu_inbuf *ib = calloc(1, sizeof *ib);
    if (!ib)
        return leave(fail(s, NV_ENC_ERR_OUT_OF_MEMORY, "cannot allocate an input buffer"));
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
        return leave(fail(s, NV_ENC_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes for an input buffer", bytes));
    }
    p->inputBuffer = ib;
    return leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_destroy_input_buffer(void *encoder, NV_ENC_INPUT_PTR buffer)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncDestroyInputBuffer", encoder, &s, &st))
        return leave(st);
    if (!buffer)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "inputBuffer is NULL"));
    int i = pv_find(&s->inbufs, buffer);
    if (i < 0)
        return leave(fail(s, NV_ENC_ERR_INVALID_PARAM, "inputBuffer %p was not created by this session (or is already destroyed)", buffer));
    emu_inbuf *ib = buffer;
    pv_remove(&s->inbufs, i);
    free(ib->data);
    free(ib);
    return leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_lock_input_buffer(void *encoder, NV_ENC_LOCK_INPUT_BUFFER *lp)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncLockInputBuffer", encoder, &s, &st))
        return leave(st);
    if (!lp)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "lockInputBufferParams is NULL"));
    if (lp->version != NV_ENC_LOCK_INPUT_BUFFER_VER)
        return leave(fail(s, NV_ENC_ERR_INVALID_VERSION, "NV_ENC_LOCK_INPUT_BUFFER.version is 0x%08X, expected NV_ENC_LOCK_INPUT_BUFFER_VER 0x%08X",
                          lp->version, NV_ENC_LOCK_INPUT_BUFFER_VER));
    if (!lp->inputBuffer)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "NV_ENC_LOCK_INPUT_BUFFER.inputBuffer is NULL"));
    if (pv_find(&s->inbufs, lp->inputBuffer) < 0)
        return leave(fail(s, NV_ENC_ERR_INVALID_PARAM, "inputBuffer %p was not created by nvEncCreateInputBuffer in this session", lp->inputBuffer));
    emu_inbuf *ib = lp->inputBuffer;
    if (ib->locked)
        return leave(fail(s, NV_ENC_ERR_INVALID_CALL, "inputBuffer %p is already locked", lp->inputBuffer));
    ib->locked = 1;
    lp->bufferDataPtr = ib->data;
    lp->pitch = ib->pitch;
    return leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_unlock_input_buffer(void *encoder, NV_ENC_INPUT_PTR buffer)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncUnlockInputBuffer", encoder, &s, &st))
        return leave(st);
    if (!buffer)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "inputBuffer is NULL"));
    if (pv_find(&s->inbufs, buffer) < 0)
        return leave(fail(s, NV_ENC_ERR_INVALID_PARAM, "inputBuffer %p was not created by nvEncCreateInputBuffer in this session", buffer));
    emu_inbuf *ib = buffer;
    if (!ib->locked)
        return leave(fail(s, NV_ENC_ERR_INVALID_CALL, "inputBuffer %p is not locked", buffer));
    ib->locked = 0;
    return leave(NV_ENC_SUCCESS);
}

/* ---------------------------------------------------- registered resources */

static NVENCSTATUS NVENCAPI api_register_resource(void *encoder, NV_ENC_REGISTER_RESOURCE *p)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncRegisterResource", encoder, &s, &st))
        return leave(st);
    if (!p)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "registerResParams is NULL"));
    if (p->version != NV_ENC_REGISTER_RESOURCE_VER)
        return leave(fail(s, NV_ENC_ERR_INVALID_VERSION, "NV_ENC_REGISTER_RESOURCE.version is 0x%08X, expected NV_ENC_REGISTER_RESOURCE_VER 0x%08X",
                          p->version, NV_ENC_REGISTER_RESOURCE_VER));
    if (!s->initialized)
        return leave(fail(s, NV_ENC_ERR_ENCODER_NOT_INITIALIZED, "call nvEncInitializeEncoder successfully before this call"));
    if (p->resourceType != NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR)
        return leave(fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM,
                          "resourceType %d: the emulator registers NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR (1) only",
                          (int)p->resourceType));
    if (p->bufferUsage != NV_ENC_INPUT_IMAGE)
        return leave(fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM, "bufferUsage %d: only NV_ENC_INPUT_IMAGE (0) is supported",
                          (int)p->bufferUsage));
    if (!p->resourceToRegister)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "resourceToRegister is NULL"));
    if ((st = check_surface(s, p->bufferFormat, p->width, p->height)))
        return leave(st);
    if (p->pitch % 4)
        return leave(fail(s, NV_ENC_ERR_INVALID_PARAM, "pitch %u is not a multiple of 4", p->pitch));
    uint64_t row = (uint64_t)p->width * (uint64_t)fmt_bytes_per_pixel(p->bufferFormat);
    if (p->pitch < row)
        return leave(fail(s, NV_ENC_ERR_INVALID_PARAM, "pitch %u is smaller than a row of %u %s pixels (%llu bytes)",
                          p->pitch, p->width, fmt_name(p->bufferFormat), (unsigned long long)row));
    emu_resource *r = calloc(1, sizeof *r);
    if (!r || pv_push(&s->registered, r)) {
        free(r);
        return leave(fail(s, NV_ENC_ERR_OUT_OF_MEMORY, "cannot allocate a registration"));
    }
    r->type = p->resourceType;
    r->ptr = p->resourceToRegister;
    r->width = p->width;
    r->height = p->height;
    r->pitch = p->pitch;
    r->fmt = p->bufferFormat;
    r->is_device = cuda_is_device_pointer(p->resourceToRegister);
    p->registeredResource = r;
    return leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_unregister_resource(void *encoder, NV_ENC_REGISTERED_PTR res)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncUnregisterResource", encoder, &s, &st))
        return leave(st);
    if (!res)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "registeredResource is NULL"));
    int i = pv_find(&s->registered, res);
    if (i < 0)
        return leave(fail(s, NV_ENC_ERR_RESOURCE_NOT_REGISTERED, "%p is not a resource registered with this session", res));
    emu_resource *r = res;
    if (r->mapped)
        return leave(fail(s, NV_ENC_ERR_INVALID_CALL, "resource %p is still mapped; nvEncUnmapInputResource it first", res));
    pv_remove(&s->registered, i);
    free(r);
    return leave(NV_ENC_SUCCESS);
}

static NVENCSTATUS NVENCAPI api_map_input_resource(void *encoder, NV_ENC_MAP_INPUT_RESOURCE *mp)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncMapInputResource", encoder, &s, &st))
        return leave(st);
    if (!mp)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "mapInputResParams is NULL"));
    if (mp->version != NV_ENC_MAP_INPUT_RESOURCE_VER)
        return leave(fail(s, NV_ENC_ERR_INVALID_VERSION, "NV_ENC_MAP_INPUT_RESOURCE.version is 0x%08X, expected NV_ENC_MAP_INPUT_RESOURCE_VER 0x%08X",
                          mp->version, NV_ENC_MAP_INPUT_RESOURCE_VER));
    if (!s->initialized)
        return leave(fail(s, NV_ENC_ERR_ENCODER_NOT_INITIALIZED, "call nvEncInitializeEncoder successfully before this call"));
    if (!mp->registeredResource)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "NV_ENC_MAP_INPUT_RESOURCE.registeredResource is NULL"));
    if (pv_find(&s->registered, mp->registeredResource) < 0)
        return leave(fail(s, NV_ENC_ERR_RESOURCE_NOT_REGISTERED, "%p is not a resource registered with this session",
                          mp->registeredResource));
    emu_resource *r = mp->registeredResource;
    if (r->mapped)
        return leave(fail(s, NV_ENC_ERR_MAP_FAILED, "resource %p is already mapped (unmap before mapping it again)",
                          mp->registeredResource));
    r->mapped = 1;
    mp->mappedResource = &r->map_token;
    mp->mappedBufferFmt = r->fmt;
    return leave(NV_ENC_SUCCESS);
}

/* The registration whose mapping handle is `handle`, or NULL. */
static emu_resource *resource_of_mapping(emu_session *s, const void *handle)
{
    for (int i = 0; i < s->registered.n; i++) {
        emu_resource *r = s->registered.items[i];
        if ((const void *)&r->map_token == handle)
            return r;
    }
    return NULL;
}

static NVENCSTATUS NVENCAPI api_unmap_input_resource(void *encoder, NV_ENC_INPUT_PTR mapped)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncUnmapInputResource", encoder, &s, &st))
        return leave(st);
    if (!mapped)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "mappedInputBuffer is NULL"));
    emu_resource *r = resource_of_mapping(s, mapped);
    if (!r || !r->mapped)
        return leave(fail(s, NV_ENC_ERR_RESOURCE_NOT_MAPPED, "%p is not a currently mapped input of this session", mapped));
    if (r->in_flight)
        return leave(fail(s, NV_ENC_ERR_INVALID_CALL,
                          "input %p was encoded into bitstream %p that is not locked yet; unmap after nvEncLockBitstream",
                          mapped, (void *)r->in_flight));
    r->mapped = 0;
    return leave(NV_ENC_SUCCESS);
}

/* ------------------------------------------------------------------ encode */

typedef struct {
    const uint8_t *ptr;
    uint32_t width, height, pitch;
    NV_ENC_BUFFER_FORMAT fmt;
    int is_device;
    emu_bitstream **in_flight;
} input_view;

static NVENCSTATUS resolve_input(emu_session *s, void *handle, input_view *v)
{
    emu_resource *r = resource_of_mapping(s, handle);
    if (r) {
        if (!r->mapped)
            return fail(s, NV_ENC_ERR_RESOURCE_NOT_MAPPED, "inputBuffer %p was unmapped; map the resource again before encoding", handle);
        *v = (input_view){ r->ptr, r->width, r->height, r->pitch, r->fmt, r->is_device, &r->in_flight };
        return NV_ENC_SUCCESS;
    }
    if (pv_find(&s->inbufs, handle) >= 0) {
        emu_inbuf *ib = handle;
        if (ib->locked)
            return fail(s, NV_ENC_ERR_INVALID_CALL, "inputBuffer %p is locked; nvEncUnlockInputBuffer it before encoding", handle);
        *v = (input_view){ ib->data, ib->width, ib->height, ib->pitch, ib->fmt, 0, &ib->in_flight };
        return NV_ENC_SUCCESS;
    }
    if (pv_find(&s->registered, handle) >= 0)
        return fail(s, NV_ENC_ERR_INVALID_PARAM,
                    "inputBuffer %p is a registered resource handle; pass the mappedResource from nvEncMapInputResource", handle);
    return fail(s, NV_ENC_ERR_INVALID_PARAM,
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
            return fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM,
                        "pictureType %d with enablePTD = 0: the emulator encodes IDR (3), I (2) and P (0) pictures only",
                        (int)p->pictureType);
        }
        if (s->frames == 0 && *kind != PIC_IDR)
            return fail(s, NV_ENC_ERR_INVALID_PARAM, "the first picture must be NV_ENC_PIC_TYPE_IDR when enablePTD = 0");
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

/* Reads the input (device memory through a staging copy) into padded planes. */
static NVENCSTATUS load_planes(emu_session *s, const input_view *v, uint8_t **y, uint8_t **u, uint8_t **vv)
{
    const h264_seq *q = &s->cfg.seq;
    size_t ysz = (size_t)q->mb_w * 16 * (size_t)q->mb_h * 16, csz = ysz / 4;
    if (grow(&s->planes, &s->planes_cap, ysz + 2 * csz))
        return fail(s, NV_ENC_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes of picture planes", ysz + 2 * csz);
    *y = s->planes;
    *u = s->planes + ysz;
    *vv = s->planes + ysz + csz;
    const uint8_t *src = v->ptr;
    if (v->is_device) {
        size_t span = fmt_frame_span(v->fmt, v->pitch, v->width, v->height);
        if (grow(&s->staging, &s->staging_cap, span))
            return fail(s, NV_ENC_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes of staging memory", span);
        char err[256];
        if (cuda_copy_to_host(s->device, s->staging, v->ptr, span, err, sizeof err))
            return fail(s, NV_ENC_ERR_GENERIC, "reading the input surface failed: %s", err);
        src = s->staging;
    }
    pixels_to_planes(v->fmt, src, v->pitch, v->height, (uint32_t)q->width, (uint32_t)q->height,
                     &s->cfg.matrix, *y, *u, *vv, q->mb_w, q->mb_h);
    return NV_ENC_SUCCESS;
}

static NVENCSTATUS NVENCAPI api_encode_picture(void *encoder, NV_ENC_PIC_PARAMS *p)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncEncodePicture", encoder, &s, &st))
        return leave(st);
    if (!p)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "encodePicParams is NULL"));
    if (p->version != NV_ENC_PIC_PARAMS_VER)
        return leave(fail(s, NV_ENC_ERR_INVALID_VERSION, "NV_ENC_PIC_PARAMS.version is 0x%08X, expected NV_ENC_PIC_PARAMS_VER 0x%08X",
                          p->version, NV_ENC_PIC_PARAMS_VER));
    if (!s->initialized)
        return leave(fail(s, NV_ENC_ERR_ENCODER_NOT_INITIALIZED, "call nvEncInitializeEncoder successfully before this call"));
    if ((p->encodePicFlags & NV_ENC_PIC_FLAG_EOS) && !p->inputBuffer && !p->outputBitstream) {
        /* End of stream: nothing is buffered (no B-frames), so nothing to flush. */
        g_emu.totals.eos++;
        return leave(NV_ENC_SUCCESS);
    }
    if (!p->outputBitstream)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "NV_ENC_PIC_PARAMS.outputBitstream is NULL"));
    if (pv_find(&s->bitstreams, p->outputBitstream) < 0)
        return leave(fail(s, NV_ENC_ERR_INVALID_PARAM, "outputBitstream %p was not created by this session (or is already destroyed)",
                          p->outputBitstream));
    emu_bitstream *b = p->outputBitstream;
    if (b->state == BS_LOCKED)
        return leave(fail(s, NV_ENC_ERR_INVALID_CALL, "outputBitstream %p is locked; nvEncUnlockBitstream it before reuse", (void *)b));
    if (b->state == BS_PENDING)
        return leave(fail(s, NV_ENC_ERR_INVALID_CALL,
                          "outputBitstream %p still holds frameIdx %u that was never locked; lock and unlock it before reuse",
                          (void *)b, b->frame_idx));
    if (!p->inputBuffer)
        return leave(fail(s, NV_ENC_ERR_INVALID_PTR, "NV_ENC_PIC_PARAMS.inputBuffer is NULL"));
    input_view in = { 0 };
    if ((st = resolve_input(s, p->inputBuffer, &in)))
        return leave(st);
    if (p->bufferFmt != in.fmt)
        return leave(fail(s, NV_ENC_ERR_INVALID_PARAM, "bufferFmt %s does not match the input's format %s",
                          fmt_name(p->bufferFmt), fmt_name(in.fmt)));
    const h264_seq *q = &s->cfg.seq;
    if (p->inputWidth != (uint32_t)q->width || p->inputHeight != (uint32_t)q->height)
        return leave(fail(s, NV_ENC_ERR_INVALID_PARAM,
                          "inputWidth x inputHeight %ux%u differs from the encode size %dx%d (nvEncReconfigureEncoder changes it)",
                          p->inputWidth, p->inputHeight, q->width, q->height));
    if (in.width < (uint32_t)q->width || in.height < (uint32_t)q->height)
        return leave(fail(s, NV_ENC_ERR_INVALID_PARAM, "the input surface %ux%u is smaller than the encode size %dx%d",
                          in.width, in.height, q->width, q->height));
    if (p->pictureStruct != 0 && p->pictureStruct != NV_ENC_PIC_STRUCT_FRAME)
        return leave(fail(s, NV_ENC_ERR_UNSUPPORTED_PARAM, "pictureStruct %d: only NV_ENC_PIC_STRUCT_FRAME is supported",
                          (int)p->pictureStruct));
    emu_pic_kind kind = PIC_IDR;
    if ((st = decide_picture(s, p, &kind)))
        return leave(st);

    int no_pixels = g_emu.no_pixel_work;
    uint8_t *y = NULL, *u = NULL, *v = NULL;
    if (!no_pixels && (st = load_planes(s, &in, &y, &u, &v)))
        return leave(st);

    uint32_t mbs = (uint32_t)q->mb_w * (uint32_t)q->mb_h;
    size_t rbsp_need = no_pixels ? 64 + (size_t)mbs + 16 : h264_slice_rbsp_bound(q);
    size_t out_need = 16 + 2 * NV_MAX_SEQ_HDR_LEN + nal_bound(rbsp_need);
    if (grow(&s->rbsp, &s->rbsp_cap, rbsp_need) || grow(&b->data, &b->cap, out_need))
        return leave(fail(s, NV_ENC_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes of bitstream memory", out_need + rbsp_need));

    const NV_ENC_CONFIG_H264 *h = &s->cfg.config.encodeCodecConfig.h264Config;
    size_t n = 0;
    if (h->outputAUD)
        n += h264_write_aud(kind == PIC_P ? 1 : 0, b->data + n, b->cap - n);
    int headers = (p->encodePicFlags & NV_ENC_PIC_FLAG_OUTPUT_SPSPPS) ||
                  (kind == PIC_IDR && !h->disableSPSPPS && (!s->headers_sent || h->repeatSPSPPS || s->headers_due));
    if (headers) {
        size_t m = write_headers(q, b->data + n, b->cap - n);
        if (!m)
            return leave(fail(s, NV_ENC_ERR_GENERIC, "writing the sequence headers failed"));
        n += m;
        s->headers_sent = 1;
    }
    h264_pic pic = { kind, kind == PIC_IDR ? 0 : s->frame_num, s->idr_count & 0xFFFF };
    size_t m = no_pixels ? h264_write_flat_slice(q, &pic, s->rbsp, s->rbsp_cap, b->data + n, b->cap - n)
                         : h264_write_pcm_slice(q, &pic, y, u, v, s->rbsp, s->rbsp_cap, b->data + n, b->cap - n);
    if (!m)
        return leave(fail(s, NV_ENC_ERR_GENERIC, "writing the slice failed (buffer bound violated)"));
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
    return leave(NV_ENC_SUCCESS);
}

/* ------------------------------------------------------------------- misc */

static NVENCSTATUS NVENCAPI api_set_io_cuda_streams(void *encoder, NV_ENC_CUSTREAM_PTR in, NV_ENC_CUSTREAM_PTR out)
{
    emu_session *s;
    NVENCSTATUS st;
    if (!enter("nvEncSetIOCudaStreams", encoder, &s, &st))
        return leave(st);
    s->in_stream = in;
    s->out_stream = out;
    return leave(NV_ENC_SUCCESS);
}

static const char *NVENCAPI api_get_last_error_string(void *encoder)
{
    pthread_mutex_lock(&g_emu.lock);
    emu_session *s = find_session(encoder);
    const char *msg = s ? s->last_error : g_emu.last_error;
    pthread_mutex_unlock(&g_emu.lock);
    return msg;
}

/* The entry points the emulator does not implement: validated, then refused. */
#define UNIMPLEMENTED(fn_name, ...) \
    { \
        emu_session *s; \
        NVENCSTATUS st; \
        if (!enter(fn_name, encoder, &s, &st)) \
            return leave(st); \
        return leave(fail(s, NV_ENC_ERR_UNIMPLEMENTED, "%s is not implemented by the NVENC emulator", fn_name)); \
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
        return leave(fail(NULL, st, "injected fault (emu_inject_fault)"));
    return leave(fail(NULL, NV_ENC_ERR_UNIMPLEMENTED, "the legacy nvEncOpenEncodeSession is not implemented; use nvEncOpenEncodeSessionEx"));
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
        return leave(fail(NULL, st, "injected fault (emu_inject_fault)"));
    if (!version)
        return leave(fail(NULL, NV_ENC_ERR_INVALID_PTR, "version is NULL"));
    *version = ((uint32_t)g_emu.max_major << 4) | ((uint32_t)g_emu.max_minor & 0xFu);
    return leave(NV_ENC_SUCCESS);
}

EMU_EXPORT NVENCSTATUS NVENCAPI NvEncodeAPICreateInstance(NV_ENCODE_API_FUNCTION_LIST *fl)
{
    pthread_mutex_lock(&g_emu.lock);
    g_emu.fn = "NvEncodeAPICreateInstance";
    NVENCSTATUS st;
    if (fault_fires(g_emu.fn, &st))
        return leave(fail(NULL, st, "injected fault (emu_inject_fault)"));
    if (!fl)
        return leave(fail(NULL, NV_ENC_ERR_INVALID_PTR, "functionList is NULL"));
    unsigned major = fl->version & 0xFFFFu, minor = (fl->version >> 24) & 0xFu;
    if (major > (unsigned)g_emu.max_major || (major == (unsigned)g_emu.max_major && minor > (unsigned)g_emu.max_minor))
        return leave(fail(NULL, NV_ENC_ERR_INVALID_VERSION,
                          "the function list is for API %u.%u, newer than the driver supports (%d.%d)",
                          major, minor, g_emu.max_major, g_emu.max_minor));
    if (fl->version != NV_ENCODE_API_FUNCTION_LIST_VER)
        return leave(fail(NULL, NV_ENC_ERR_INVALID_VERSION,
                          "NV_ENCODE_API_FUNCTION_LIST.version is 0x%08X, expected NV_ENCODE_API_FUNCTION_LIST_VER 0x%08X",
                          fl->version, NV_ENCODE_API_FUNCTION_LIST_VER));
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
    return leave(NV_ENC_SUCCESS);
}
