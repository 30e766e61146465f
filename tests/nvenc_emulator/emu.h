/*
 * Internal interfaces of the NVENC driver emulator (test infrastructure).
 *
 * The emulator is compiled against NVIDIA's official nvEncodeAPI.h only, never
 * against the project's own cffi declarations, so that it cannot share their
 * mistakes. See docs/nvenc_emulator.md for what it emulates and its limits.
 */
#ifndef NVENC_EMULATOR_EMU_H
#define NVENC_EMULATOR_EMU_H

#include <stddef.h>
#include <stdint.h>

#include "nvEncodeAPI.h"

#define EMU_EXPORT __attribute__((visibility("default")))

/* ------------------------------------------------------------------ bitstream.c */

/* An MSB-first bit writer into a caller-owned buffer. Writing past the end sets
 * `overflow` instead of writing, so callers check once at the end. */
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t pos;      /* whole bytes written */
    uint32_t acc;    /* pending bits, right-aligned */
    int nbits;       /* number of pending bits (0..7 between calls) */
    int overflow;
} bitwriter;

void bw_init(bitwriter *bw, uint8_t *buf, size_t cap);
void bw_u(bitwriter *bw, uint32_t value, int n); /* n in 0..32 */
void bw_ue(bitwriter *bw, uint32_t value);
void bw_se(bitwriter *bw, int32_t value);
int bw_is_aligned(const bitwriter *bw);
void bw_align_zero(bitwriter *bw);               /* pcm_alignment_zero_bit / cabac_alignment */
void bw_trailing_bits(bitwriter *bw);            /* rbsp_trailing_bits() */
void bw_bytes(bitwriter *bw, const uint8_t *src, size_t n); /* byte-aligned only */
size_t bw_size(const bitwriter *bw);             /* bytes, byte-aligned only */

/* Worst-case Annex B size of a NAL unit whose RBSP is `rbsp_len` bytes. */
size_t nal_bound(size_t rbsp_len);
/* Writes start code + NAL header + escaped RBSP; returns bytes written or 0 when
 * `cap` is too small. */
size_t nal_write(uint8_t *dst, size_t cap, int nal_ref_idc, int nal_unit_type,
                 const uint8_t *rbsp, size_t rbsp_len);

/* ---------------------------------------------------------------- h264_writer.c */

/* Everything the SPS/PPS/slice writers need, derived once from the session
 * configuration (so that "did the sequence change?" is a memcmp). */
typedef struct {
    int profile_idc;
    int constraint_flags; /* the whole byte, constraint_set0_flag = 0x80 */
    int level_idc;
    int sps_id;
    int pps_id;
    int width, height;    /* displayed size */
    int mb_w, mb_h;
    int log2_max_frame_num;
    int max_num_ref_frames;
    int transform_bypass; /* qpprime_y_zero_transform_bypass_flag (High 4:4:4) */
    int deblocking_idc;   /* disable_deblocking_filter_idc written in slices */
    /* VUI */
    int vui_present;
    int aspect_present, sar_w, sar_h;
    int overscan_present, overscan_appropriate;
    int signal_type_present, video_format, full_range;
    int colour_desc_present, colour_primaries, transfer, matrix;
    int chroma_loc_present, chroma_loc_top, chroma_loc_bot;
    int timing_present;
    uint32_t num_units_in_tick, time_scale;
    int fixed_frame_rate;
    int bitstream_restriction;
    int max_num_reorder_frames, max_dec_frame_buffering;
} h264_seq;

typedef enum { PIC_IDR = 0, PIC_I = 1, PIC_P = 2 } emu_pic_kind;

typedef struct {
    emu_pic_kind kind;
    uint32_t frame_num;
    uint32_t idr_pic_id;
} h264_pic;

size_t h264_write_sps(const h264_seq *seq, uint8_t *dst, size_t cap);
size_t h264_write_pps(const h264_seq *seq, uint8_t *dst, size_t cap);
/* SPS then PPS (Annex B); 0 when `cap` is too small. */
size_t h264_write_headers(const h264_seq *seq, uint8_t *dst, size_t cap);
size_t h264_write_aud(int primary_pic_type, uint8_t *dst, size_t cap);
/* RBSP bytes a picture's slice can need (the scratch size for the writers below). */
size_t h264_slice_rbsp_bound(const h264_seq *seq);
/* One slice of I_PCM macroblocks read from padded planar 4:2:0 planes
 * (y: mb_w*16 x mb_h*16, u/v: mb_w*8 x mb_h*8, tightly packed). */
size_t h264_write_pcm_slice(const h264_seq *seq, const h264_pic *pic,
                            const uint8_t *y, const uint8_t *u, const uint8_t *v,
                            uint8_t *scratch, size_t scratch_cap, uint8_t *dst, size_t cap);
/* The no-pixel-work picture: IDR/I as flat I_16x16 DC macroblocks, P as all-skip. */
size_t h264_write_flat_slice(const h264_seq *seq, const h264_pic *pic,
                             uint8_t *scratch, size_t scratch_cap, uint8_t *dst, size_t cap);

/* ------------------------------------------------------------------- pixels.c */

/* Bytes per pixel of the first plane (1 for the planar YUV formats), 0 if unsupported. */
int fmt_bytes_per_pixel(NV_ENC_BUFFER_FORMAT fmt);
int fmt_supported(NV_ENC_BUFFER_FORMAT fmt);
const char *fmt_name(NV_ENC_BUFFER_FORMAT fmt);
/* Bytes of a frame of this format: the span the reader touches. */
size_t fmt_frame_span(NV_ENC_BUFFER_FORMAT fmt, uint32_t pitch, uint32_t width, uint32_t height);

typedef struct {
    int bt709;      /* else BT.601 */
    int full_range; /* else limited (16..235 / 16..240) */
} emu_rgb_matrix;

/* Converts `src` (host memory, `pitch` bytes per row of the first plane, the
 * surface `surf_h` rows high) into padded planar planes for a `width` x
 * `height` picture; padding replicates the last column/row. */
void pixels_to_planes(NV_ENC_BUFFER_FORMAT fmt, const uint8_t *src, uint32_t pitch,
                      uint32_t surf_h, uint32_t width, uint32_t height,
                      const emu_rgb_matrix *m, uint8_t *y, uint8_t *u, uint8_t *v,
                      int mb_w, int mb_h);

/* -------------------------------------------------------------- cuda_reader.c */

/* 1 when `ptr` is CUDA device (or managed) memory, 0 for host memory. Without
 * libcuda (CI), or when the process never initialised CUDA, everything is host. */
int cuda_is_device_pointer(const void *ptr);

typedef enum { PTR_DEVICE = 0, PTR_HOST = 1, PTR_MANAGED = 2 } emu_ptr_kind;

/* What cuPointerGetAttribute says about an address (or what a test described). */
typedef struct {
    uint64_t start, size;       /* CU_POINTER_ATTRIBUTE_RANGE_START_ADDR / RANGE_SIZE */
    int kind;                   /* emu_ptr_kind: MEMORY_TYPE (+ IS_MANAGED) */
    int device;                 /* DEVICE_ORDINAL */
    uint64_t context;           /* CONTEXT; 0 in a description: the session's own */
    int mempool;                /* MEMPOOL_HANDLE is not NULL: stream-ordered pool memory */
    uint64_t buffer_id;         /* BUFFER_ID: unique per allocation in the process */
} emu_ptr_desc;

/* 1 and `out` filled when libcuda knows `ptr` (a CUDA allocation or registered host
 * memory); 0 without a usable libcuda or for an address CUDA does not know. */
int cuda_describe_pointer(const void *ptr, emu_ptr_desc *out);
/* The device ordinal of context `ctx` through libcuda; 0 on success, -1 when unknown. */
int cuda_context_device(void *ctx, int *ordinal);
/* Copies `n` bytes from device memory at `src` into `dst` with `ctx` current
 * (may be NULL). Returns 0 or a negative/CUresult error and fills `err`. */
int cuda_copy_to_host(void *ctx, void *dst, const void *src, size_t n, char *err, size_t errcap);

/* ------------------------------------------------------------------ presets.c */

/* The size and feature caps a test can change (emu_set_caps); the defaults are what
 * H.264 encoders of Turing..Ada GPUs report. EMU_MAX_* bounds what the emulator can
 * encode at all (its scratch sizes), whatever the caps say. */
#define EMU_MAX_WIDTH 4096
#define EMU_MAX_HEIGHT 4096

typedef struct {
    int width_min, height_min, width_max, height_max;
    int custom_vbv;             /* NV_ENC_CAPS_SUPPORT_CUSTOM_VBV_BUF_SIZE */
    int dyn_res_change;         /* NV_ENC_CAPS_SUPPORT_DYN_RES_CHANGE */
} emu_caps;

/* What the driver reports for H.264 on Turing, Ampere and Ada (rigaya/NVEnc's GPUFeatures
 * dumps: "Min Width 145, Min Height 49, Max Width 4096, Max Height 4096, Dynamic Resolution
 * Change yes, Custom VBV Bufsize yes"). */
#define EMU_DEFAULT_CAPS { 145, 49, 4096, 4096, 1, 1 }

void caps_defaults(emu_caps *c);

int guid_eq(const GUID *a, const GUID *b);
void guid_str(const GUID *g, char *out, size_t cap); /* "{6BC82762-4E63-...}" */
const char *preset_name(const GUID *g); /* "P1".."P7" or NULL */

extern const GUID *const emu_codec_guids[];
extern const int emu_codec_guid_count;
extern const GUID *const emu_profile_guids[];
extern const int emu_profile_guid_count;
extern const GUID *const emu_preset_guids[];
extern const int emu_preset_guid_count;
extern const NV_ENC_BUFFER_FORMAT emu_input_formats[];
extern const int emu_input_format_count;

/* The value of an NV_ENC_CAPS query for H.264; 0 when `cap` is not a known cap. */
int caps_query(int cap, int *value);
/* Fills `out` (an NV_ENC_CONFIG, version set) with the emulator's defaults for a
 * preset and tuning info. */
NVENCSTATUS preset_config(uint32_t api_version, const GUID *preset, NV_ENC_TUNING_INFO tuning,
                          NV_ENC_CONFIG *out, char *err, size_t errcap);

/* The effective configuration of a session, derived from NV_ENC_INITIALIZE_PARAMS. */
typedef struct {
    NV_ENC_INITIALIZE_PARAMS init; /* init.encodeConfig is NULL here; see `config` */
    NV_ENC_CONFIG config;
    NV_ENC_TUNING_INFO tuning;
    h264_seq seq;
    emu_rgb_matrix matrix;
    uint32_t gop_length, idr_period; /* NVENC_INFINITE_GOPLENGTH = never */
    int intra_only;
} emu_config;

/* Validates `ip` the way NvEncInitializeEncoder documents and derives the
 * configuration; on failure returns the status and writes why into `err`. */
NVENCSTATUS derive_config(uint32_t api_version, const NV_ENC_INITIALIZE_PARAMS *ip, emu_config *out,
                          char *err, size_t errcap);
/* Rebuilds out->seq for sequence-level ids/sizes (used after reconfigure). */
void derive_seq(emu_config *c);

/* ------------------------------------------- emulator.c / control.c: state */

#include <pthread.h>

#define EMU_ERR_LEN 512
#define EMU_MAX_FAULTS 64

typedef struct {
    void **items;
    int n, cap;
} ptrvec;

int pv_push(ptrvec *v, void *item);  /* 0, or -1 when out of memory */
int pv_find(const ptrvec *v, const void *item);
void pv_remove(ptrvec *v, int index);
void pv_free(ptrvec *v);

enum { BS_IDLE = 0, BS_PENDING = 1, BS_LOCKED = 2 };

typedef struct emu_bitstream {
    uint8_t *data;
    size_t cap, size;
    int state;
    uint64_t seq;               /* submission order, for in-order locking */
    uint32_t frame_idx;
    uint64_t timestamp, duration;
    NV_ENC_PIC_TYPE pic_type;
    uint32_t mbs;
} emu_bitstream;

typedef struct emu_resource {   /* NvEncRegisterResource */
    NV_ENC_INPUT_RESOURCE_TYPE type;
    void *ptr;
    uint32_t width, height, pitch;
    NV_ENC_BUFFER_FORMAT fmt;
    int is_device;
    int described;              /* the allocation was known at registration: */
    emu_ptr_desc alloc;         /* ...this one (compared at each encode) */
    int stale_counted;
    int mapped;
    char map_token;             /* its address is the NV_ENC_INPUT_PTR while mapped */
    emu_bitstream *in_flight;   /* output not yet locked that was encoded from it */
} emu_resource;

typedef struct emu_inbuf {      /* NvEncCreateInputBuffer */
    uint8_t *data;
    uint32_t width, height, pitch;
    NV_ENC_BUFFER_FORMAT fmt;
    int locked;
    emu_bitstream *in_flight;
} emu_inbuf;

typedef struct emu_session {
    struct emu_session *next;
    void *device;
    uint32_t api_version;
    int initialized;
    emu_config cfg;
    uint32_t max_width, max_height; /* 0: no dynamic resolution change */
    /* picture type decision */
    uint64_t frames;            /* pictures encoded */
    uint32_t since_idr, since_intra;
    uint32_t frame_num, idr_count;
    int force_idr;              /* next picture is IDR (reconfigure / sequence change) */
    int headers_sent;
    int headers_due;            /* sequence changed: next IDR must carry SPS/PPS */
    uint64_t submit_seq;
    ptrvec registered, bitstreams, inbufs;
    void *in_stream, *out_stream;   /* the NV_ENC_CUSTREAM_PTRs given (locations) */
    void *in_stream_value, *out_stream_value; /* what they held then */
    int dead_stream_counted;
    int open_failed;            /* a failed nvEncOpenEncodeSessionEx's handle: destroy only */
    int poisoned;               /* a fault killed the session: every later call fails */
    int unflushed;              /* pictures encoded since the last EOS */
    char poison[EMU_ERR_LEN];
    uint64_t reconfigures;
    /* scratch memory, grown on demand */
    uint8_t *planes;
    size_t planes_cap;
    uint8_t *rbsp;
    size_t rbsp_cap;
    uint8_t *staging;
    size_t staging_cap;
    char last_error[EMU_ERR_LEN];
} emu_session;

typedef struct {
    char function[48];
    int status, after, count;   /* count < 0: forever */
} emu_fault;

typedef struct {
    int64_t sessions_opened, encodes, idr_frames, eos, reconfigures, errors, faults_fired;
    int64_t leaked_registered, leaked_mapped, leaked_bitstream_buffers, leaked_input_buffers;
    int64_t unflushed_destroys, stale_registrations, dead_stream_pointers, null_session_calls;
    int64_t pitch_faults, poisoned_sessions, reserved_field_errors;
} emu_totals;

#define EMU_MAX_POINTERS 256

typedef struct {
    pthread_mutex_t lock;
    emu_session *sessions;
    int max_major, max_minor;
    int unsupported_device;
    int no_pixel_work;
    const char *fn;             /* API function being served (for messages) */
    char last_error[EMU_ERR_LEN];
    emu_fault faults[EMU_MAX_FAULTS];
    int nfaults;
    emu_totals totals;
    emu_caps caps;
    emu_ptr_desc pointers[EMU_MAX_POINTERS]; /* CI's stand-in for cuPointerGetAttribute */
    int npointers;
    int session_context_set;    /* emu_set_session_context: compare with this, not `device` */
    uint64_t session_context;
    int session_device;         /* the sessions' device ordinal when libcuda cannot tell */
    struct emu_session *poisoned_release; /* a release call on a poisoned session in progress */
} emu_state;

extern emu_state g_emu;

/* emulator.c: the calling convention every entry point follows */
extern const char *const emu_api_names[]; /* every function a fault can target */
extern const int emu_api_name_count;
void session_free(emu_session *s, int count_leaks);
/* Takes the lock and resolves the session; returns 0 (with *st set) when the
 * call must not proceed. Every path ends with api_leave(). */
int api_enter(const char *fn, void *encoder, emu_session **out, NVENCSTATUS *st);
NVENCSTATUS api_leave(NVENCSTATUS st);
/* Records why a call failed (for the session and globally) and returns `st`. */
NVENCSTATUS api_fail(emu_session *s, NVENCSTATUS st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int buf_grow(uint8_t **buf, size_t *cap, size_t need); /* 0, or -1 when out of memory */
void free_bitstream(emu_bitstream *b);

#define CHECK_PTR(s, p, what) \
    do { if (!(p)) return api_fail((s), NV_ENC_ERR_INVALID_PTR, "%s is NULL", (what)); } while (0)

/* ------------------------------------------------ client API versions (emulator.c) */

/* Clients of two API versions are served: 12.1 (the header compiled here: nvencffi and the
 * self-test) and 13.0 (FFmpeg 8's h264_nvenc, built against nv-codec-headers 13.0, which PyAV
 * bundles). Every field the emulator reads or writes sits at the same offset in both: 13.0
 * put its additions into reserved words and alignment padding. So the 12.1 declarations serve
 * both, and what differs is the `version` each structure must carry (the API version in its
 * low bits, and for several structures a higher struct number). docs/nvenc_emulator.md says
 * how the 13.0 values were established. */
#define EMU_API_13_0 ((uint32_t)13u) /* NVENCAPI_VERSION of a 13.0 client: 13 | (0 << 24) */

typedef enum {
    EMU_OPEN_ENCODE_SESSION_EX_PARAMS, EMU_CAPS_PARAM, EMU_CREATE_INPUT_BUFFER,
    EMU_CREATE_BITSTREAM_BUFFER, EMU_RC_PARAMS, EMU_CONFIG, EMU_INITIALIZE_PARAMS,
    EMU_RECONFIGURE_PARAMS, EMU_PRESET_CONFIG, EMU_PIC_PARAMS, EMU_LOCK_BITSTREAM,
    EMU_LOCK_INPUT_BUFFER, EMU_MAP_INPUT_RESOURCE, EMU_REGISTER_RESOURCE,
    EMU_SEQUENCE_PARAM_PAYLOAD, EMU_STRUCT_COUNT
} emu_struct;

/* 1 when the emulator implements the structures of this NVENCAPI_VERSION (12.1 or 13.0). */
int api_supported(uint32_t api_version);
/* The `version` a client of `api_version` must put into structure `which`. */
uint32_t struct_version(uint32_t api_version, emu_struct which);
const char *struct_name(emu_struct which); /* "NV_ENC_PIC_PARAMS" */

/* NV_ENC_SUCCESS, or the call fails with NV_ENC_ERR_INVALID_VERSION (recorded with what was
 * expected and what arrived) unless `got` is the version of `which` for the session's API. */
NVENCSTATUS check_version(emu_session *s, uint32_t got, emu_struct which);

/* pointers.c: what registration may accept, and whether it still holds */
/* 1 and `out` filled when the pointer is described (the table first, then libcuda). */
int pointer_lookup(const void *ptr, emu_ptr_desc *out);
/* NV_ENC_SUCCESS, or NV_ENC_ERR_RESOURCE_REGISTER_FAILED for memory a driver refuses
 * (host, stream-ordered pool, another device or context); fills r->described/alloc. */
NVENCSTATUS pointer_check_registration(emu_session *s, emu_resource *r);
/* Counts (once per registration) an encode through a registration whose allocation was
 * freed or replaced since it was registered. */
void pointer_check_stale(emu_resource *r);

/* reserved.c: reserved fields must be zero; driver-owned fields are scribbled */
/* 1 when the struct's reserved fields are checked for a client of this API version. */
int reserved_checked(uint32_t api_version);
/* NV_ENC_SUCCESS, or NV_ENC_ERR_INVALID_PARAM naming the first non-zero reserved field
 * of `p`, a structure of kind `which` (counted in reserved_field_errors). */
NVENCSTATUS check_reserved(emu_session *s, uint32_t api_version, emu_struct which, const void *p);
/* NV_ENC_CONFIG with its RC, H.264 and VUI parts. */
NVENCSTATUS check_reserved_config(emu_session *s, uint32_t api_version, const NV_ENC_CONFIG *c);
/* Writes junk into what the driver owns in `p` after a successful call. */
void scribble(uint32_t api_version, emu_struct which, void *p);

/* buffers.c */
emu_resource *resource_of_mapping(emu_session *s, const void *handle);
NVENCSTATUS NVENCAPI api_create_bitstream_buffer(void *encoder, NV_ENC_CREATE_BITSTREAM_BUFFER *p);
NVENCSTATUS NVENCAPI api_destroy_bitstream_buffer(void *encoder, NV_ENC_OUTPUT_PTR buffer);
NVENCSTATUS NVENCAPI api_lock_bitstream(void *encoder, NV_ENC_LOCK_BITSTREAM *lp);
NVENCSTATUS NVENCAPI api_unlock_bitstream(void *encoder, NV_ENC_OUTPUT_PTR buffer);
NVENCSTATUS NVENCAPI api_create_input_buffer(void *encoder, NV_ENC_CREATE_INPUT_BUFFER *p);
NVENCSTATUS NVENCAPI api_destroy_input_buffer(void *encoder, NV_ENC_INPUT_PTR buffer);
NVENCSTATUS NVENCAPI api_lock_input_buffer(void *encoder, NV_ENC_LOCK_INPUT_BUFFER *lp);
NVENCSTATUS NVENCAPI api_unlock_input_buffer(void *encoder, NV_ENC_INPUT_PTR buffer);
NVENCSTATUS NVENCAPI api_register_resource(void *encoder, NV_ENC_REGISTER_RESOURCE *p);
NVENCSTATUS NVENCAPI api_unregister_resource(void *encoder, NV_ENC_REGISTERED_PTR res);
NVENCSTATUS NVENCAPI api_map_input_resource(void *encoder, NV_ENC_MAP_INPUT_RESOURCE *mp);
NVENCSTATUS NVENCAPI api_unmap_input_resource(void *encoder, NV_ENC_INPUT_PTR mapped);
/* encode.c */
NVENCSTATUS NVENCAPI api_encode_picture(void *encoder, NV_ENC_PIC_PARAMS *p);
/* control.c */
int fault_fires(const char *function, NVENCSTATUS *status);

#endif
