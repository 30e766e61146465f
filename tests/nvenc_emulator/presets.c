/*
 * What the emulated driver advertises (GUIDs, caps, presets) and how a session
 * configuration is validated and turned into sequence parameters.
 *
 * The emulator is an H.264-only "GPU" whose caps describe what it really does
 * (no B-frames, CAVLC only, 4:2:0 8-bit, even sizes) within the size limits a
 * real H.264 encoder reports (145x49 to 4096x4096 by default, emu_set_caps), so a
 * client that checks caps before configuring never meets a surprise. Preset
 * values are plausible defaults of our own choosing, not NVIDIA's tables.
 */
#include <stdio.h>
#include <string.h>

#include "emu.h"

const GUID *const emu_codec_guids[] = { &NV_ENC_CODEC_H264_GUID };
const int emu_codec_guid_count = 1;

const GUID *const emu_profile_guids[] = {
    &NV_ENC_CODEC_PROFILE_AUTOSELECT_GUID,
    &NV_ENC_H264_PROFILE_BASELINE_GUID,
    &NV_ENC_H264_PROFILE_MAIN_GUID,
    &NV_ENC_H264_PROFILE_HIGH_GUID,
    &NV_ENC_H264_PROFILE_HIGH_444_GUID,
    &NV_ENC_H264_PROFILE_PROGRESSIVE_HIGH_GUID,
    &NV_ENC_H264_PROFILE_CONSTRAINED_HIGH_GUID,
};
const int emu_profile_guid_count = 7;

const GUID *const emu_preset_guids[] = {
    &NV_ENC_PRESET_P1_GUID, &NV_ENC_PRESET_P2_GUID, &NV_ENC_PRESET_P3_GUID, &NV_ENC_PRESET_P4_GUID,
    &NV_ENC_PRESET_P5_GUID, &NV_ENC_PRESET_P6_GUID, &NV_ENC_PRESET_P7_GUID,
};
const int emu_preset_guid_count = 7;

const NV_ENC_BUFFER_FORMAT emu_input_formats[] = {
    NV_ENC_BUFFER_FORMAT_NV12, NV_ENC_BUFFER_FORMAT_YV12, NV_ENC_BUFFER_FORMAT_IYUV,
    NV_ENC_BUFFER_FORMAT_ARGB, NV_ENC_BUFFER_FORMAT_ABGR,
};
const int emu_input_format_count = 5;

int guid_eq(const GUID *a, const GUID *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

void guid_str(const GUID *g, char *out, size_t cap)
{
    snprintf(out, cap, "{%08X-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X}",
             g->Data1, g->Data2, g->Data3, g->Data4[0], g->Data4[1], g->Data4[2],
             g->Data4[3], g->Data4[4], g->Data4[5], g->Data4[6], g->Data4[7]);
}

const char *preset_name(const GUID *g)
{
    static const char *const names[] = { "P1", "P2", "P3", "P4", "P5", "P6", "P7" };
    for (int i = 0; i < emu_preset_guid_count; i++)
        if (guid_eq(g, emu_preset_guids[i]))
            return names[i];
    return NULL;
}

void caps_defaults(emu_caps *c)
{
    *c = (emu_caps)EMU_DEFAULT_CAPS;
}

int caps_query(int cap, int *value)
{
    const emu_caps *caps = &g_emu.caps;
    int v;
    switch (cap) {
    case NV_ENC_CAPS_NUM_MAX_BFRAMES: v = 0; break;
    case NV_ENC_CAPS_SUPPORTED_RATECONTROL_MODES: v = NV_ENC_PARAMS_RC_VBR | NV_ENC_PARAMS_RC_CBR; break;
    case NV_ENC_CAPS_SUPPORT_QPELMV: v = 1; break;
    case NV_ENC_CAPS_NUM_MAX_TEMPORAL_LAYERS: v = 1; break;
    case NV_ENC_CAPS_LEVEL_MAX: v = NV_ENC_LEVEL_H264_62; break;
    case NV_ENC_CAPS_LEVEL_MIN: v = NV_ENC_LEVEL_H264_1; break;
    case NV_ENC_CAPS_WIDTH_MAX: v = caps->width_max; break;
    case NV_ENC_CAPS_HEIGHT_MAX: v = caps->height_max; break;
    case NV_ENC_CAPS_WIDTH_MIN: v = caps->width_min; break;
    case NV_ENC_CAPS_HEIGHT_MIN: v = caps->height_min; break;
    case NV_ENC_CAPS_SUPPORT_DYN_RES_CHANGE: v = caps->dyn_res_change; break;
    case NV_ENC_CAPS_SUPPORT_DYN_BITRATE_CHANGE: v = 1; break;
    case NV_ENC_CAPS_SUPPORT_DYN_FORCE_CONSTQP: v = 1; break;
    case NV_ENC_CAPS_SUPPORT_DYN_RCMODE_CHANGE: v = 1; break;
    case NV_ENC_CAPS_SUPPORT_CUSTOM_VBV_BUF_SIZE: v = caps->custom_vbv; break;
    case NV_ENC_CAPS_MB_NUM_MAX: v = (caps->width_max / 16) * (caps->height_max / 16); break;
    case NV_ENC_CAPS_MB_PER_SEC_MAX: v = (caps->width_max / 16) * (caps->height_max / 16) * 60; break;
    case NV_ENC_CAPS_SUPPORT_LOSSLESS_ENCODE: v = 1; break; /* I_PCM is lossless */
    case NV_ENC_CAPS_DYNAMIC_QUERY_ENCODER_CAPACITY: v = 100; break;
    case NV_ENC_CAPS_NUM_ENCODER_ENGINES: v = 1; break;
    default:
        if (cap < 0 || cap >= NV_ENC_CAPS_EXPOSED_COUNT)
            return 0;
        v = 0; /* every other feature: not supported */
        break;
    }
    *value = v;
    return 1;
}

NVENCSTATUS preset_config(uint32_t api_version, const GUID *preset, NV_ENC_TUNING_INFO tuning,
                          NV_ENC_CONFIG *out, char *err, size_t errcap)
{
    const char *name = preset_name(preset);
    if (!name) {
        char g[48];
        guid_str(preset, g, sizeof g);
        snprintf(err, errcap, "presetGUID %s is not one of NV_ENC_PRESET_P1_GUID..P7_GUID", g);
        return NV_ENC_ERR_UNSUPPORTED_PARAM;
    }
    if (tuning == NV_ENC_TUNING_INFO_UNDEFINED)
        tuning = NV_ENC_TUNING_INFO_HIGH_QUALITY;
    if ((int)tuning < 0 || tuning >= NV_ENC_TUNING_INFO_COUNT) {
        snprintf(err, errcap, "tuningInfo %d is not a NV_ENC_TUNING_INFO value (1..%d)",
                 (int)tuning, NV_ENC_TUNING_INFO_COUNT - 1);
        return NV_ENC_ERR_INVALID_PARAM;
    }
    int p = name[1] - '0';
    int low_latency = tuning == NV_ENC_TUNING_INFO_LOW_LATENCY || tuning == NV_ENC_TUNING_INFO_ULTRA_LOW_LATENCY;

    uint32_t version = out->version;
    memset(out, 0, sizeof *out);
    out->version = version;
    out->profileGUID = NV_ENC_CODEC_PROFILE_AUTOSELECT_GUID;
    out->gopLength = 250;
    out->frameIntervalP = 1; /* the emulator has no B-frames (NV_ENC_CAPS_NUM_MAX_BFRAMES = 0) */
    out->frameFieldMode = NV_ENC_PARAMS_FRAME_FIELD_MODE_FRAME;
    out->mvPrecision = NV_ENC_MV_PRECISION_QUARTER_PEL;

    NV_ENC_RC_PARAMS *rc = &out->rcParams;
    rc->version = struct_version(api_version, EMU_RC_PARAMS);
    rc->rateControlMode = low_latency ? NV_ENC_PARAMS_RC_CBR : NV_ENC_PARAMS_RC_VBR;
    rc->averageBitRate = 10000000;
    rc->maxBitRate = low_latency ? 0 : 20000000;
    rc->constQP.qpInterP = 28;
    rc->constQP.qpInterB = 31;
    rc->constQP.qpIntra = 25;
    rc->zeroReorderDelay = low_latency;
    rc->lowDelayKeyFrameScale = low_latency ? 2 : 1;
    rc->multiPass = (p >= 4 && tuning != NV_ENC_TUNING_INFO_ULTRA_LOW_LATENCY)
                        ? NV_ENC_TWO_PASS_QUARTER_RESOLUTION : NV_ENC_MULTI_PASS_DISABLED;

    NV_ENC_CONFIG_H264 *h = &out->encodeCodecConfig.h264Config;
    h->level = NV_ENC_LEVEL_AUTOSELECT;
    h->idrPeriod = out->gopLength;
    h->chromaFormatIDC = 1;
    h->entropyCodingMode = NV_ENC_H264_ENTROPY_CODING_MODE_AUTOSELECT;
    h->maxNumRefFrames = 0;
    h->h264VUIParameters.videoFormat = NV_ENC_VUI_VIDEO_FORMAT_UNSPECIFIED;
    h->h264VUIParameters.colourPrimaries = NV_ENC_VUI_COLOR_PRIMARIES_UNSPECIFIED;
    h->h264VUIParameters.transferCharacteristics = NV_ENC_VUI_TRANSFER_CHARACTERISTIC_UNSPECIFIED;
    h->h264VUIParameters.colourMatrix = NV_ENC_VUI_MATRIX_COEFFS_UNSPECIFIED;

    if (tuning == NV_ENC_TUNING_INFO_LOSSLESS) {
        out->profileGUID = NV_ENC_H264_PROFILE_HIGH_444_GUID;
        rc->rateControlMode = NV_ENC_PARAMS_RC_CONSTQP;
        rc->constQP.qpInterP = rc->constQP.qpInterB = rc->constQP.qpIntra = 0;
        h->qpPrimeYZeroTransformBypassFlag = 1;
    }
    return NV_ENC_SUCCESS;
}

/* H.264 Table A-1 limits: MaxMBPS, MaxFS. */
static const struct { int idc; uint32_t max_mbps, max_fs; } levels[] = {
    { 10, 1485, 99 },        { 11, 3000, 396 },       { 12, 6000, 396 },       { 13, 11880, 396 },
    { 20, 11880, 396 },      { 21, 19800, 792 },      { 22, 20250, 1620 },     { 30, 40500, 1620 },
    { 31, 108000, 3600 },    { 32, 216000, 5120 },    { 40, 245760, 8192 },    { 41, 245760, 8192 },
    { 42, 522240, 8704 },    { 50, 589824, 22080 },   { 51, 983040, 36864 },   { 52, 2073600, 36864 },
    { 60, 4177920, 139264 }, { 61, 8355840, 139264 }, { 62, 16711680, 139264 },
};

static int valid_level(uint32_t level)
{
    if (level == NV_ENC_LEVEL_AUTOSELECT || level == NV_ENC_LEVEL_H264_1b)
        return 1;
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if ((uint32_t)levels[i].idc == level)
            return 1;
    return 0;
}

static int auto_level(int mb_w, int mb_h, uint32_t fps_num, uint32_t fps_den)
{
    uint64_t fs = (uint64_t)mb_w * (uint64_t)mb_h;
    uint64_t mbps = fps_num && fps_den ? (fs * fps_num + fps_den - 1) / fps_den : 0;
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        uint64_t side = (uint64_t)levels[i].max_fs * 8; /* width and height in MBs <= sqrt(8 MaxFS) */
        if (fs <= levels[i].max_fs && mbps <= levels[i].max_mbps &&
            (uint64_t)mb_w * (uint64_t)mb_w <= side && (uint64_t)mb_h * (uint64_t)mb_h <= side)
            return levels[i].idc;
    }
    return 62;
}

static uint32_t gcd32(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

void derive_seq(emu_config *c)
{
    const NV_ENC_INITIALIZE_PARAMS *ip = &c->init;
    const NV_ENC_CONFIG_H264 *h = &c->config.encodeCodecConfig.h264Config;
    const NV_ENC_CONFIG_H264_VUI_PARAMETERS *vui = &h->h264VUIParameters;
    const GUID *profile = &c->config.profileGUID;
    h264_seq *s = &c->seq;
    memset(s, 0, sizeof *s);

    if (guid_eq(profile, &NV_ENC_H264_PROFILE_BASELINE_GUID)) {
        s->profile_idc = 66;
        s->constraint_flags = 0xC0; /* constrained baseline: set0 + set1 */
    } else if (guid_eq(profile, &NV_ENC_H264_PROFILE_MAIN_GUID)) {
        s->profile_idc = 77;
    } else if (guid_eq(profile, &NV_ENC_H264_PROFILE_HIGH_444_GUID)) {
        s->profile_idc = 244;
    } else if (guid_eq(profile, &NV_ENC_H264_PROFILE_PROGRESSIVE_HIGH_GUID)) {
        s->profile_idc = 100;
        s->constraint_flags = 0x08; /* set4: frame_mbs_only */
    } else if (guid_eq(profile, &NV_ENC_H264_PROFILE_CONSTRAINED_HIGH_GUID)) {
        s->profile_idc = 100;
        s->constraint_flags = 0x0C; /* set4 + set5: no B slices */
    } else { /* HIGH and AUTOSELECT */
        s->profile_idc = 100;
    }

    s->width = (int)ip->encodeWidth;
    s->height = (int)ip->encodeHeight;
    s->mb_w = (s->width + 15) / 16;
    s->mb_h = (s->height + 15) / 16;
    if (h->level == NV_ENC_LEVEL_AUTOSELECT) {
        s->level_idc = auto_level(s->mb_w, s->mb_h, ip->frameRateNum, ip->frameRateDen);
    } else if (h->level == NV_ENC_LEVEL_H264_1b) {
        if (s->profile_idc == 66 || s->profile_idc == 77) {
            s->level_idc = 11;
            s->constraint_flags |= 0x10; /* constraint_set3_flag: level 1b */
        } else {
            s->level_idc = 9;
        }
    } else {
        s->level_idc = (int)h->level;
    }
    s->sps_id = (int)h->spsId;
    s->pps_id = (int)h->ppsId;
    s->log2_max_frame_num = 8;
    s->max_num_ref_frames = h->maxNumRefFrames ? (int)h->maxNumRefFrames : 1;
    s->transform_bypass = s->profile_idc == 244 && h->qpPrimeYZeroTransformBypassFlag;
    s->deblocking_idc = (int)h->disableDeblockingFilterIDC;

    if (ip->darWidth && ip->darHeight &&
        (uint64_t)ip->darWidth * ip->encodeHeight != (uint64_t)ip->darHeight * ip->encodeWidth) {
        uint64_t sw = (uint64_t)ip->darWidth * ip->encodeHeight, sh = (uint64_t)ip->darHeight * ip->encodeWidth;
        while (sw > 0xFFFFFFFFu || sh > 0xFFFFFFFFu) {
            sw >>= 1;
            sh >>= 1;
        }
        uint32_t g = gcd32((uint32_t)sw, (uint32_t)sh);
        sw /= g ? g : 1;
        sh /= g ? g : 1;
        while (sw > 0xFFFF || sh > 0xFFFF) {
            sw = (sw + 1) / 2;
            sh = (sh + 1) / 2;
        }
        if (sw && sh) {
            s->aspect_present = 1;
            s->sar_w = (int)sw;
            s->sar_h = (int)sh;
        }
    }
    s->overscan_present = vui->overscanInfoPresentFlag != 0;
    s->overscan_appropriate = vui->overscanInfo != 0;
    s->signal_type_present = vui->videoSignalTypePresentFlag || vui->colourDescriptionPresentFlag;
    s->video_format = vui->videoSignalTypePresentFlag ? (int)vui->videoFormat : NV_ENC_VUI_VIDEO_FORMAT_UNSPECIFIED;
    s->full_range = vui->videoFullRangeFlag != 0;
    s->colour_desc_present = vui->colourDescriptionPresentFlag != 0;
    s->colour_primaries = (int)vui->colourPrimaries;
    s->transfer = (int)vui->transferCharacteristics;
    s->matrix = (int)vui->colourMatrix;
    s->chroma_loc_present = vui->chromaSampleLocationFlag != 0;
    s->chroma_loc_top = (int)vui->chromaSampleLocationTop;
    s->chroma_loc_bot = (int)vui->chromaSampleLocationBot;
    if (vui->timingInfoPresentFlag) {
        s->timing_present = 1;
        s->num_units_in_tick = vui->numUnitInTicks;
        s->time_scale = vui->timeScale;
    } else if (ip->frameRateNum && ip->frameRateDen) {
        s->timing_present = 1;
        s->num_units_in_tick = ip->frameRateDen;
        s->time_scale = ip->frameRateNum * 2; /* two ticks (fields) per frame */
    }
    s->fixed_frame_rate = s->timing_present && !h->enableVFR;
    s->bitstream_restriction = vui->bitstreamRestrictionFlag != 0;
    s->max_num_reorder_frames = 0; /* no B-frames */
    s->max_dec_frame_buffering = s->max_num_ref_frames;
    s->vui_present = s->aspect_present || s->overscan_present || s->signal_type_present ||
                     s->chroma_loc_present || s->timing_present || s->bitstream_restriction;

    c->matrix.bt709 = vui->colourDescriptionPresentFlag && vui->colourMatrix == NV_ENC_VUI_MATRIX_COEFFS_BT709;
    c->matrix.full_range = s->signal_type_present && vui->videoFullRangeFlag;
}

#define FAIL(status, ...) do { snprintf(err, errcap, __VA_ARGS__); return (status); } while (0)

static NVENCSTATUS check_size(const char *what, uint32_t w, uint32_t h, char *err, size_t errcap)
{
    const emu_caps *caps = &g_emu.caps;
    if (w == 0 || h == 0)
        FAIL(NV_ENC_ERR_INVALID_PARAM, "%s is %ux%u; both must be set", what, w, h);
    if (w > (uint32_t)caps->width_max || h > (uint32_t)caps->height_max || w > EMU_MAX_WIDTH || h > EMU_MAX_HEIGHT)
        FAIL(NV_ENC_ERR_INVALID_PARAM, "Frame Dimension greater than the maximum supported value: %s %ux%u exceeds "
             "NV_ENC_CAPS_WIDTH_MAX x HEIGHT_MAX (%dx%d)", what, w, h, caps->width_max, caps->height_max);
    if (w < (uint32_t)caps->width_min || h < (uint32_t)caps->height_min)
        FAIL(NV_ENC_ERR_INVALID_PARAM, "Frame Dimension less than the minimum supported value: %s %ux%u is below "
             "NV_ENC_CAPS_WIDTH_MIN x HEIGHT_MIN (%dx%d)", what, w, h, caps->width_min, caps->height_min);
    if ((w | h) & 1)
        FAIL(NV_ENC_ERR_INVALID_PARAM, "%s %ux%u is odd; 4:2:0 encoding needs even sizes (an emulator limit)",
             what, w, h);
    return NV_ENC_SUCCESS;
}

NVENCSTATUS derive_config(uint32_t api_version, const NV_ENC_INITIALIZE_PARAMS *ip, emu_config *out,
                          char *err, size_t errcap)
{
    char g[48];
    uint32_t want = struct_version(api_version, EMU_INITIALIZE_PARAMS);
    if (ip->version != want)
        FAIL(NV_ENC_ERR_INVALID_VERSION, "NV_ENC_INITIALIZE_PARAMS.version is 0x%08X, expected NV_ENC_INITIALIZE_PARAMS_VER 0x%08X",
             ip->version, want);
    if (!guid_eq(&ip->encodeGUID, &NV_ENC_CODEC_H264_GUID)) {
        guid_str(&ip->encodeGUID, g, sizeof g);
        FAIL(NV_ENC_ERR_UNSUPPORTED_PARAM, "encodeGUID %s is not NV_ENC_CODEC_H264_GUID (the emulator encodes H.264 only)", g);
    }
    if (!preset_name(&ip->presetGUID)) {
        guid_str(&ip->presetGUID, g, sizeof g);
        FAIL(NV_ENC_ERR_UNSUPPORTED_PARAM, "presetGUID %s is not one of NV_ENC_PRESET_P1_GUID..P7_GUID", g);
    }
    if ((int)ip->tuningInfo < 0 || ip->tuningInfo >= NV_ENC_TUNING_INFO_COUNT)
        FAIL(NV_ENC_ERR_INVALID_PARAM, "tuningInfo %d is not a NV_ENC_TUNING_INFO value (1..%d)",
             (int)ip->tuningInfo, NV_ENC_TUNING_INFO_COUNT - 1);
    NVENCSTATUS st = check_size("encodeWidth x encodeHeight", ip->encodeWidth, ip->encodeHeight, err, errcap);
    if (st != NV_ENC_SUCCESS)
        return st;
    if (ip->maxEncodeWidth || ip->maxEncodeHeight) {
        if ((st = check_size("maxEncodeWidth x maxEncodeHeight", ip->maxEncodeWidth, ip->maxEncodeHeight, err, errcap)))
            return st;
        if (ip->maxEncodeWidth < ip->encodeWidth || ip->maxEncodeHeight < ip->encodeHeight)
            FAIL(NV_ENC_ERR_INVALID_PARAM, "maxEncodeWidth x maxEncodeHeight %ux%u is smaller than encodeWidth x encodeHeight %ux%u",
                 ip->maxEncodeWidth, ip->maxEncodeHeight, ip->encodeWidth, ip->encodeHeight);
    }
    if (ip->enableEncodeAsync)
        FAIL(NV_ENC_ERR_UNSUPPORTED_PARAM, "enableEncodeAsync = 1: asynchronous mode is not supported on Linux");
    if (ip->enableMEOnlyMode)
        FAIL(NV_ENC_ERR_UNSUPPORTED_PARAM, "enableMEOnlyMode = 1 is not supported (NV_ENC_CAPS_SUPPORT_MEONLY_MODE = 0)");
    if (ip->enableSubFrameWrite)
        FAIL(NV_ENC_ERR_UNSUPPORTED_PARAM, "enableSubFrameWrite = 1 is not supported (NV_ENC_CAPS_SUPPORT_SUBFRAME_READBACK = 0)");
    if (ip->enableExternalMEHints || ip->enableWeightedPrediction || ip->enableOutputInVidmem ||
        ip->enableReconFrameOutput || ip->enableOutputStats || ip->numStateBuffers)
        FAIL(NV_ENC_ERR_UNSUPPORTED_PARAM,
             "external ME hints, weighted prediction, output in video memory, recon output, output stats "
             "and state buffers are not supported by the emulator");
    if ((ip->frameRateNum == 0) != (ip->frameRateDen == 0))
        FAIL(NV_ENC_ERR_INVALID_PARAM, "frameRateNum/frameRateDen is %u/%u; set both or neither",
             ip->frameRateNum, ip->frameRateDen);
    if (ip->frameRateNum > 0x7FFFFFFFu)
        FAIL(NV_ENC_ERR_INVALID_PARAM, "frameRateNum %u is too large", ip->frameRateNum);

    memset(out, 0, sizeof *out);
    out->init = *ip;
    out->init.encodeConfig = NULL;
    out->tuning = ip->tuningInfo == NV_ENC_TUNING_INFO_UNDEFINED ? NV_ENC_TUNING_INFO_HIGH_QUALITY : ip->tuningInfo;
    if (ip->encodeConfig) {
        want = struct_version(api_version, EMU_CONFIG);
        if (ip->encodeConfig->version != want)
            FAIL(NV_ENC_ERR_INVALID_VERSION, "NV_ENC_CONFIG.version (encodeConfig) is 0x%08X, expected NV_ENC_CONFIG_VER 0x%08X",
                 ip->encodeConfig->version, want);
        out->config = *ip->encodeConfig;
    } else {
        out->config.version = struct_version(api_version, EMU_CONFIG);
        if ((st = preset_config(api_version, &ip->presetGUID, out->tuning, &out->config, err, errcap)))
            return st;
    }

    const NV_ENC_CONFIG *c = &out->config;
    const NV_ENC_CONFIG_H264 *h = &c->encodeCodecConfig.h264Config;
    const NV_ENC_CONFIG_H264_VUI_PARAMETERS *vui = &h->h264VUIParameters;
    int known_profile = 0;
    for (int i = 0; i < emu_profile_guid_count; i++)
        known_profile |= guid_eq(&c->profileGUID, emu_profile_guids[i]);
    if (!known_profile) {
        guid_str(&c->profileGUID, g, sizeof g);
        FAIL(NV_ENC_ERR_UNSUPPORTED_PARAM, "profileGUID %s is not an H.264 profile the emulator supports "
             "(autoselect, baseline, main, high, high 444, progressive high, constrained high)", g);
    }
    if (c->frameIntervalP < 0)
        FAIL(NV_ENC_ERR_INVALID_PARAM, "frameIntervalP is %d; expected 0 (intra only) or 1 (IPP)", c->frameIntervalP);
    if (c->frameIntervalP > 1)
        FAIL(NV_ENC_ERR_UNSUPPORTED_PARAM, "frameIntervalP %d asks for B-frames; NV_ENC_CAPS_NUM_MAX_BFRAMES is 0",
             c->frameIntervalP);
    if (c->gopLength == 0)
        FAIL(NV_ENC_ERR_INVALID_PARAM, "gopLength is 0; use NVENC_INFINITE_GOPLENGTH for no periodic intra frames");
    if (c->monoChromeEncoding)
        FAIL(NV_ENC_ERR_UNSUPPORTED_PARAM, "monoChromeEncoding = 1 is not supported (NV_ENC_CAPS_SUPPORT_MONOCHROME = 0)");
    if (c->frameFieldMode != 0 && c->frameFieldMode != NV_ENC_PARAMS_FRAME_FIELD_MODE_FRAME)
        FAIL(NV_ENC_ERR_UNSUPPORTED_PARAM, "frameFieldMode %d: only NV_ENC_PARAMS_FRAME_FIELD_MODE_FRAME is supported",
             (int)c->frameFieldMode);
    if (!g_emu.caps.custom_vbv && (c->rcParams.vbvBufferSize || c->rcParams.vbvInitialDelay))
        FAIL(NV_ENC_ERR_UNSUPPORTED_PARAM, "rcParams.vbvBufferSize %u / vbvInitialDelay %u: NV_ENC_CAPS_SUPPORT_CUSTOM_VBV_BUF_SIZE "
             "is 0 on this GPU; leave both 0", c->rcParams.vbvBufferSize, c->rcParams.vbvInitialDelay);
    if ((unsigned)c->rcParams.rateControlMode > NV_ENC_PARAMS_RC_CBR)
        FAIL(NV_ENC_ERR_INVALID_PARAM, "rcParams.rateControlMode %d is not CONSTQP (0), VBR (1) or CBR (2)",
             (int)c->rcParams.rateControlMode);
    if (h->chromaFormatIDC == 3 || h->separateColourPlaneFlag)
        FAIL(NV_ENC_ERR_UNSUPPORTED_PARAM, "4:4:4 encoding (chromaFormatIDC 3) is not supported (NV_ENC_CAPS_SUPPORT_YUV444_ENCODE = 0)");
    if (h->chromaFormatIDC > 1)
        FAIL(NV_ENC_ERR_INVALID_PARAM, "chromaFormatIDC %u; expected 1 (4:2:0)", h->chromaFormatIDC);
    if (h->enableTemporalSVC || h->enableStereoMVC || h->hierarchicalPFrames || h->hierarchicalBFrames ||
        h->enableLTR || h->enableIntraRefresh || h->enableConstrainedEncoding || h->fmoMode == NV_ENC_H264_FMO_ENABLE)
        FAIL(NV_ENC_ERR_UNSUPPORTED_PARAM, "temporal SVC, MVC, hierarchical P/B, LTR, intra refresh, constrained "
             "encoding and FMO are not supported by the emulator (their caps are 0)");
    if (!valid_level(h->level))
        FAIL(NV_ENC_ERR_INVALID_PARAM, "h264Config.level %u is not an NV_ENC_LEVEL_H264_* value", h->level);
    if (h->disableDeblockingFilterIDC > 2)
        FAIL(NV_ENC_ERR_INVALID_PARAM, "disableDeblockingFilterIDC %u; expected 0..2", h->disableDeblockingFilterIDC);
    if (h->maxNumRefFrames > 16)
        FAIL(NV_ENC_ERR_INVALID_PARAM, "maxNumRefFrames %u; expected 0..16", h->maxNumRefFrames);
    if (h->spsId > 31 || h->ppsId > 255)
        FAIL(NV_ENC_ERR_INVALID_PARAM, "spsId %u / ppsId %u out of range (0..31 / 0..255)", h->spsId, h->ppsId);
    if ((unsigned)h->entropyCodingMode > NV_ENC_H264_ENTROPY_CODING_MODE_CAVLC)
        FAIL(NV_ENC_ERR_INVALID_PARAM, "entropyCodingMode %d is not a NV_ENC_H264_ENTROPY_CODING_MODE value",
             (int)h->entropyCodingMode);
    if ((unsigned)vui->videoFormat > NV_ENC_VUI_VIDEO_FORMAT_UNSPECIFIED || vui->colourPrimaries > 255 ||
        vui->transferCharacteristics > 255 || vui->colourMatrix > 255 ||
        vui->chromaSampleLocationTop > 5 || vui->chromaSampleLocationBot > 5)
        FAIL(NV_ENC_ERR_INVALID_PARAM, "h264VUIParameters holds an out-of-range value (videoFormat 0..5, "
             "colour fields 0..255, chroma sample locations 0..5)");
    if (vui->timingInfoPresentFlag && (vui->numUnitInTicks == 0 || vui->timeScale == 0))
        FAIL(NV_ENC_ERR_INVALID_PARAM, "timingInfoPresentFlag = 1 needs numUnitInTicks and timeScale > 0 (got %u, %u)",
             vui->numUnitInTicks, vui->timeScale);

    out->intra_only = c->frameIntervalP == 0;
    out->gop_length = c->gopLength;
    out->idr_period = h->idrPeriod ? h->idrPeriod : c->gopLength;
    derive_seq(out);
    return NV_ENC_SUCCESS;
}
