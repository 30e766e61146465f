/*
 * The test-only control surface of the emulator (prefix emu_), used through
 * tests/nvenc_emulator/__init__.py. A real driver has none of these symbols.
 *
 * Counters are exported as name lists plus int64 arrays rather than structs,
 * so the Python wrapper never duplicates a C layout.
 */
#include <stdio.h>
#include <string.h>

#include "emu.h"

static const char ledger_names[] =
    "sessions,registered,mapped,bitstream_buffers,input_buffers,locked_bitstreams,pending_bitstreams,"
    "locked_input_buffers,sessions_opened,encodes,idr_frames,eos,reconfigures,errors,faults_fired,"
    "leaked,leaked_registered,leaked_mapped,leaked_bitstream_buffers,leaked_input_buffers,"
    "unflushed_destroys,stale_registrations,dead_stream_pointers,null_session_calls,failed_open_leaks,"
    "pitch_faults,poisoned_sessions,reserved_field_errors";

enum { LEDGER_N = 28 };

static const char session_info_names[] =
    "handle,initialized,width,height,max_width,max_height,frame_rate_num,frame_rate_den,"
    "rate_control_mode,average_bitrate,max_bitrate,vbv_buffer_size,gop_length,idr_period,"
    "enable_ptd,preset,tuning_info,profile_idc,level_idc,frames,reconfigures,registered,mapped,"
    "bitstream_buffers,input_buffers,input_stream,output_stream,device,api_major,api_minor";

int fault_fires(const char *function, NVENCSTATUS *status)
{
    int fired = 0;
    for (int i = 0; i < g_emu.nfaults; i++) {
        emu_fault *f = &g_emu.faults[i];
        if (f->count == 0 || strcmp(f->function, function) != 0)
            continue;
        if (f->after > 0) {
            f->after--;
            continue;
        }
        if (!fired) {
            fired = 1;
            *status = (NVENCSTATUS)f->status;
            if (f->count > 0)
                f->count--;
            g_emu.totals.faults_fired++;
        }
    }
    /* drop exhausted entries */
    int k = 0;
    for (int i = 0; i < g_emu.nfaults; i++)
        if (g_emu.faults[i].count != 0)
            g_emu.faults[k++] = g_emu.faults[i];
    g_emu.nfaults = k;
    return fired;
}

EMU_EXPORT const char *emu_ledger_names(void)
{
    return ledger_names;
}

EMU_EXPORT int emu_ledger(int64_t *out, int cap)
{
    int64_t v[LEDGER_N] = { 0 };
    pthread_mutex_lock(&g_emu.lock);
    for (emu_session *s = g_emu.sessions; s; s = s->next) {
        if (s->open_failed) {
            v[24]++; /* failed_open_leaks: handles nobody destroyed yet */
            continue;
        }
        v[0]++;
        v[1] += s->registered.n;
        for (int i = 0; i < s->registered.n; i++)
            v[2] += ((emu_resource *)s->registered.items[i])->mapped != 0;
        v[3] += s->bitstreams.n;
        v[4] += s->inbufs.n;
        for (int i = 0; i < s->bitstreams.n; i++) {
            int state = ((emu_bitstream *)s->bitstreams.items[i])->state;
            v[5] += state == BS_LOCKED;
            v[6] += state == BS_PENDING;
        }
        for (int i = 0; i < s->inbufs.n; i++)
            v[7] += ((emu_inbuf *)s->inbufs.items[i])->locked != 0;
    }
    const emu_totals *t = &g_emu.totals;
    v[8] = t->sessions_opened;
    v[9] = t->encodes;
    v[10] = t->idr_frames;
    v[11] = t->eos;
    v[12] = t->reconfigures;
    v[13] = t->errors;
    v[14] = t->faults_fired;
    v[15] = t->leaked_registered + t->leaked_bitstream_buffers + t->leaked_input_buffers;
    v[16] = t->leaked_registered;
    v[17] = t->leaked_mapped;
    v[18] = t->leaked_bitstream_buffers;
    v[19] = t->leaked_input_buffers;
    v[20] = t->unflushed_destroys;
    v[21] = t->stale_registrations;
    v[22] = t->dead_stream_pointers;
    v[23] = t->null_session_calls;
    v[25] = t->pitch_faults;
    v[26] = t->poisoned_sessions;
    v[27] = t->reserved_field_errors;
    pthread_mutex_unlock(&g_emu.lock);
    int n = cap < LEDGER_N ? cap : LEDGER_N;
    memcpy(out, v, (size_t)(n > 0 ? n : 0) * sizeof *out);
    return LEDGER_N;
}

EMU_EXPORT const char *emu_session_info_names(void)
{
    return session_info_names;
}

EMU_EXPORT int emu_session_count(void)
{
    int n = 0;
    pthread_mutex_lock(&g_emu.lock);
    for (emu_session *s = g_emu.sessions; s; s = s->next)
        n += !s->open_failed;
    pthread_mutex_unlock(&g_emu.lock);
    return n;
}

/* Sessions are listed in opening order (oldest first). Returns the number of
 * fields, or -1 when `index` is out of range. */
EMU_EXPORT int emu_session_info(int index, int64_t *out, int cap)
{
    enum { N = 30 };
    int64_t v[N] = { 0 };
    pthread_mutex_lock(&g_emu.lock);
    int count = 0;
    for (emu_session *s = g_emu.sessions; s; s = s->next)
        count += !s->open_failed;
    emu_session *s = g_emu.sessions;
    while (s && s->open_failed)
        s = s->next;
    for (int i = 0; s && i < count - 1 - index; i++) {
        s = s->next;
        while (s && s->open_failed)
            s = s->next;
    }
    if (index < 0 || index >= count || !s) {
        pthread_mutex_unlock(&g_emu.lock);
        return -1;
    }
    const emu_config *c = &s->cfg;
    v[0] = (int64_t)(uintptr_t)s;
    v[1] = s->initialized;
    v[2] = c->init.encodeWidth;
    v[3] = c->init.encodeHeight;
    v[4] = s->max_width;
    v[5] = s->max_height;
    v[6] = c->init.frameRateNum;
    v[7] = c->init.frameRateDen;
    v[8] = c->config.rcParams.rateControlMode;
    v[9] = c->config.rcParams.averageBitRate;
    v[10] = c->config.rcParams.maxBitRate;
    v[11] = c->config.rcParams.vbvBufferSize;
    v[12] = c->gop_length;
    v[13] = c->idr_period;
    v[14] = c->init.enablePTD;
    const char *preset = s->initialized ? preset_name(&c->init.presetGUID) : NULL;
    v[15] = preset ? preset[1] - '0' : 0;
    v[16] = c->tuning;
    v[17] = c->seq.profile_idc;
    v[18] = c->seq.level_idc;
    v[19] = (int64_t)s->frames;
    v[20] = (int64_t)s->reconfigures;
    v[21] = s->registered.n;
    for (int i = 0; i < s->registered.n; i++)
        v[22] += ((emu_resource *)s->registered.items[i])->mapped != 0;
    v[23] = s->bitstreams.n;
    v[24] = s->inbufs.n;
    v[25] = (int64_t)(uintptr_t)s->in_stream;
    v[26] = (int64_t)(uintptr_t)s->out_stream;
    v[27] = (int64_t)(uintptr_t)s->device;
    v[28] = s->api_version & 0xFFFFu;
    v[29] = s->api_version >> 24;
    pthread_mutex_unlock(&g_emu.lock);
    int n = cap < N ? cap : N;
    memcpy(out, v, (size_t)(n > 0 ? n : 0) * sizeof *out);
    return N;
}

EMU_EXPORT void emu_reset(void)
{
    pthread_mutex_lock(&g_emu.lock);
    while (g_emu.sessions) {
        emu_session *s = g_emu.sessions;
        g_emu.sessions = s->next;
        session_free(s, 0);
    }
    memset(&g_emu.totals, 0, sizeof g_emu.totals);
    g_emu.nfaults = 0;
    g_emu.max_major = 13;
    g_emu.max_minor = 0;
    g_emu.unsupported_device = 0;
    g_emu.no_pixel_work = 0;
    g_emu.last_error[0] = 0;
    caps_defaults(&g_emu.caps);
    g_emu.npointers = 0;
    g_emu.session_context_set = 0;
    g_emu.session_context = 0;
    g_emu.session_device = 0;
    pthread_mutex_unlock(&g_emu.lock);
}

/* The caps in force: width_min, height_min, width_max, height_max, custom_vbv, dyn_res_change. */
EMU_EXPORT void emu_get_caps(int *out)
{
    pthread_mutex_lock(&g_emu.lock);
    const emu_caps *c = &g_emu.caps;
    int v[6] = { c->width_min, c->height_min, c->width_max, c->height_max, c->custom_vbv, c->dyn_res_change };
    pthread_mutex_unlock(&g_emu.lock);
    memcpy(out, v, sizeof v);
}

/* The size and feature caps nvEncGetEncodeCaps reports and initialize/reconfigure
 * enforce; 0, or -1 when they are not sizes the emulator can encode. */
EMU_EXPORT int emu_set_caps(int width_min, int height_min, int width_max, int height_max, int custom_vbv,
                            int dyn_res_change)
{
    if (width_min < 1 || height_min < 1 || width_max < width_min || height_max < height_min ||
        width_max > EMU_MAX_WIDTH || height_max > EMU_MAX_HEIGHT)
        return -1;
    pthread_mutex_lock(&g_emu.lock);
    g_emu.caps = (emu_caps){ width_min, height_min, width_max, height_max, custom_vbv != 0, dyn_res_change != 0 };
    pthread_mutex_unlock(&g_emu.lock);
    return 0;
}

/* Returns the name of the i-th function a fault can target, or NULL past the end. */
EMU_EXPORT const char *emu_function_name(int i)
{
    return i >= 0 && i < emu_api_name_count ? emu_api_names[i] : NULL;
}

/* 0 on success; -1 unknown function, -2 invalid arguments, -3 table full. */
EMU_EXPORT int emu_inject_fault(const char *function, int status, int after, int count)
{
    if (!function)
        return -1;
    int known = 0;
    for (int i = 0; i < emu_api_name_count; i++)
        known |= strcmp(function, emu_api_names[i]) == 0;
    if (!known)
        return -1;
    if (status == NV_ENC_SUCCESS || after < 0 || count == 0 || strlen(function) >= sizeof g_emu.faults[0].function)
        return -2;
    pthread_mutex_lock(&g_emu.lock);
    if (g_emu.nfaults == EMU_MAX_FAULTS) {
        pthread_mutex_unlock(&g_emu.lock);
        return -3;
    }
    emu_fault *f = &g_emu.faults[g_emu.nfaults++];
    snprintf(f->function, sizeof f->function, "%s", function);
    f->status = status;
    f->after = after;
    f->count = count < 0 ? -1 : count;
    pthread_mutex_unlock(&g_emu.lock);
    return 0;
}

EMU_EXPORT void emu_clear_faults(void)
{
    pthread_mutex_lock(&g_emu.lock);
    g_emu.nfaults = 0;
    pthread_mutex_unlock(&g_emu.lock);
}

EMU_EXPORT void emu_set_max_version(int major, int minor)
{
    pthread_mutex_lock(&g_emu.lock);
    g_emu.max_major = major;
    g_emu.max_minor = minor;
    pthread_mutex_unlock(&g_emu.lock);
}

EMU_EXPORT void emu_set_unsupported_device(int on)
{
    pthread_mutex_lock(&g_emu.lock);
    g_emu.unsupported_device = on != 0;
    pthread_mutex_unlock(&g_emu.lock);
}

EMU_EXPORT void emu_set_no_pixel_work(int on)
{
    pthread_mutex_lock(&g_emu.lock);
    g_emu.no_pixel_work = on != 0;
    pthread_mutex_unlock(&g_emu.lock);
}

/* Copies the most recent failure message (any session) into buf; returns its length. */
EMU_EXPORT int emu_last_error(char *buf, int cap)
{
    pthread_mutex_lock(&g_emu.lock);
    int n = snprintf(buf, cap > 0 ? (size_t)cap : 0, "%s", g_emu.last_error);
    pthread_mutex_unlock(&g_emu.lock);
    return n;
}
