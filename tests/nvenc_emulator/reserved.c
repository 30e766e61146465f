/*
 * Reserved fields and driver-owned fields of the structures a client passes in.
 *
 * nvEncodeAPI.h marks every reserved word "[in]: Reserved and must be set to 0"
 * (or NULL): a driver of a later API may give them a meaning, so a client that
 * leaves junk there asks a newer driver for something it never meant. The
 * emulator refuses non-zero reserved words with NV_ENC_ERR_INVALID_PARAM and names
 * the field. It also writes junk into fields the driver owns after a call
 * (scribble()), so that a client reusing a parameter structure without zeroing
 * it trips the check on its next call, as it would once a driver writes there.
 *
 * The layouts are the 12.1 header's; a 13.0 client (FFmpeg 8) put new fields into
 * some of these words, so both rules apply to 12.1 clients only.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "emu.h"

typedef struct {
    const char *name;
    size_t offset, size, elem; /* elem: element size of an array, 0 for a scalar */
} reserved_field;

#define SCALAR(T, m) { #m, offsetof(T, m), sizeof(((T *)0)->m), 0 }
#define ARRAY(T, m) { #m, offsetof(T, m), sizeof(((T *)0)->m), sizeof(((T *)0)->m[0]) }

static const reserved_field open_fields[] = {
    SCALAR(NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS, reserved),
    ARRAY(NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS, reserved1),
    ARRAY(NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS, reserved2),
};
static const reserved_field caps_fields[] = { ARRAY(NV_ENC_CAPS_PARAM, reserved) };
static const reserved_field create_input_fields[] = {
    SCALAR(NV_ENC_CREATE_INPUT_BUFFER, reserved),
    ARRAY(NV_ENC_CREATE_INPUT_BUFFER, reserved1),
    ARRAY(NV_ENC_CREATE_INPUT_BUFFER, reserved2),
};
static const reserved_field create_bitstream_fields[] = {
    SCALAR(NV_ENC_CREATE_BITSTREAM_BUFFER, reserved),
    ARRAY(NV_ENC_CREATE_BITSTREAM_BUFFER, reserved1),
    ARRAY(NV_ENC_CREATE_BITSTREAM_BUFFER, reserved2),
};
static const reserved_field init_fields[] = {
    SCALAR(NV_ENC_INITIALIZE_PARAMS, privDataSize),
    SCALAR(NV_ENC_INITIALIZE_PARAMS, privData),
    ARRAY(NV_ENC_INITIALIZE_PARAMS, reserved),
    ARRAY(NV_ENC_INITIALIZE_PARAMS, reserved2),
};
static const reserved_field preset_fields[] = {
    ARRAY(NV_ENC_PRESET_CONFIG, reserved1),
    ARRAY(NV_ENC_PRESET_CONFIG, reserved2),
};
static const reserved_field pic_fields[] = {
    ARRAY(NV_ENC_PIC_PARAMS, reserved1),
    ARRAY(NV_ENC_PIC_PARAMS, reserved2),
    SCALAR(NV_ENC_PIC_PARAMS, reservedBitFields),
    ARRAY(NV_ENC_PIC_PARAMS, reserved3),
    ARRAY(NV_ENC_PIC_PARAMS, reserved4),
};
static const reserved_field pic_h264_fields[] = {
    SCALAR(NV_ENC_PIC_PARAMS_H264, reserved3),
    ARRAY(NV_ENC_PIC_PARAMS_H264, reserved),
    ARRAY(NV_ENC_PIC_PARAMS_H264, reserved2),
};
static const reserved_field lock_bitstream_fields[] = {
    ARRAY(NV_ENC_LOCK_BITSTREAM, reserved1),
    ARRAY(NV_ENC_LOCK_BITSTREAM, reserved2),
    ARRAY(NV_ENC_LOCK_BITSTREAM, reservedInternal),
};
static const reserved_field lock_input_fields[] = {
    ARRAY(NV_ENC_LOCK_INPUT_BUFFER, reserved1),
    ARRAY(NV_ENC_LOCK_INPUT_BUFFER, reserved2),
};
static const reserved_field map_fields[] = {
    ARRAY(NV_ENC_MAP_INPUT_RESOURCE, reserved1),
    ARRAY(NV_ENC_MAP_INPUT_RESOURCE, reserved2),
};
static const reserved_field register_fields[] = {
    ARRAY(NV_ENC_REGISTER_RESOURCE, reserved1),
    ARRAY(NV_ENC_REGISTER_RESOURCE, reserved2),
};
static const reserved_field payload_fields[] = {
    ARRAY(NV_ENC_SEQUENCE_PARAM_PAYLOAD, reserved),
    ARRAY(NV_ENC_SEQUENCE_PARAM_PAYLOAD, reserved2),
};
static const reserved_field config_fields[] = {
    ARRAY(NV_ENC_CONFIG, reserved),
    ARRAY(NV_ENC_CONFIG, reserved2),
};
static const reserved_field rc_fields[] = {
    SCALAR(NV_ENC_RC_PARAMS, reserved2),
    ARRAY(NV_ENC_RC_PARAMS, reserved),
};
static const reserved_field h264_fields[] = {
    ARRAY(NV_ENC_CONFIG_H264, reserved1),
    ARRAY(NV_ENC_CONFIG_H264, reserved2),
};
static const reserved_field vui_fields[] = { ARRAY(NV_ENC_CONFIG_H264_VUI_PARAMETERS, reserved) };

#define N(a) (int)(sizeof(a) / sizeof((a)[0]))

int reserved_checked(uint32_t api_version)
{
    return api_version == NVENCAPI_VERSION;
}

static NVENCSTATUS refuse(emu_session *s, const char *structure, const char *field, const char *detail)
{
    g_emu.totals.reserved_field_errors++;
    return api_fail(s, NV_ENC_ERR_INVALID_PARAM,
                    "%s.%s%s must be 0 (nvEncodeAPI.h: \"Reserved and must be set to 0\"); zero the whole "
                    "structure before filling it, for every call",
                    structure, field, detail);
}

static NVENCSTATUS check_fields(emu_session *s, const char *structure, const void *p, const reserved_field *f, int n)
{
    const uint8_t *base = p;
    for (int i = 0; i < n; i++) {
        for (size_t b = 0; b < f[i].size; b++) {
            if (!base[f[i].offset + b])
                continue;
            char detail[96];
            if (f[i].elem) {
                size_t index = b / f[i].elem;
                uint64_t value = 0;
                memcpy(&value, base + f[i].offset + index * f[i].elem, f[i].elem < 8 ? f[i].elem : 8);
                snprintf(detail, sizeof detail, "[%zu] is 0x%llx; it", index, (unsigned long long)value);
            } else {
                uint64_t value = 0;
                memcpy(&value, base + f[i].offset, f[i].size < 8 ? f[i].size : 8);
                snprintf(detail, sizeof detail, " is 0x%llx; it", (unsigned long long)value);
            }
            return refuse(s, structure, f[i].name, detail);
        }
    }
    return NV_ENC_SUCCESS;
}

static NVENCSTATUS check_bits(emu_session *s, const char *structure, const char *field, uint32_t value)
{
    if (!value)
        return NV_ENC_SUCCESS;
    char detail[64];
    snprintf(detail, sizeof detail, " is 0x%x; it", value);
    return refuse(s, structure, field, detail);
}

NVENCSTATUS check_reserved_config(emu_session *s, uint32_t api_version, const NV_ENC_CONFIG *c)
{
    if (!reserved_checked(api_version) || !c)
        return NV_ENC_SUCCESS;
    NVENCSTATUS st;
    const NV_ENC_CONFIG_H264 *h = &c->encodeCodecConfig.h264Config;
    if ((st = check_fields(s, "NV_ENC_CONFIG", c, config_fields, N(config_fields))) ||
        (st = check_bits(s, "NV_ENC_RC_PARAMS", "reservedBitField1", c->rcParams.reservedBitField1)) ||
        (st = check_bits(s, "NV_ENC_RC_PARAMS", "reservedBitFields", c->rcParams.reservedBitFields)) ||
        (st = check_fields(s, "NV_ENC_RC_PARAMS", &c->rcParams, rc_fields, N(rc_fields))) ||
        (st = check_bits(s, "NV_ENC_CONFIG_H264", "reservedBitFields", h->reservedBitFields)) ||
        (st = check_fields(s, "NV_ENC_CONFIG_H264", h, h264_fields, N(h264_fields))) ||
        (st = check_fields(s, "NV_ENC_CONFIG_H264_VUI_PARAMETERS", &h->h264VUIParameters, vui_fields, N(vui_fields))))
        return st;
    return NV_ENC_SUCCESS;
}

NVENCSTATUS check_reserved(emu_session *s, uint32_t api_version, emu_struct which, const void *p)
{
    if (!reserved_checked(api_version) || !p)
        return NV_ENC_SUCCESS;
    const char *name = struct_name(which);
    NVENCSTATUS st;
    switch (which) {
    case EMU_OPEN_ENCODE_SESSION_EX_PARAMS:
        return check_fields(s, name, p, open_fields, N(open_fields));
    case EMU_CAPS_PARAM:
        return check_fields(s, name, p, caps_fields, N(caps_fields));
    case EMU_CREATE_INPUT_BUFFER:
        return check_fields(s, name, p, create_input_fields, N(create_input_fields));
    case EMU_CREATE_BITSTREAM_BUFFER:
        return check_fields(s, name, p, create_bitstream_fields, N(create_bitstream_fields));
    case EMU_INITIALIZE_PARAMS: {
        const NV_ENC_INITIALIZE_PARAMS *ip = p;
        if ((st = check_bits(s, name, "reservedBitFields", ip->reservedBitFields)) ||
            (st = check_fields(s, name, p, init_fields, N(init_fields))))
            return st;
        return check_reserved_config(s, api_version, ip->encodeConfig);
    }
    case EMU_RECONFIGURE_PARAMS: {
        const NV_ENC_RECONFIGURE_PARAMS *rp = p;
        if ((st = check_bits(s, name, "reserved", rp->reserved)))
            return st;
        return check_reserved(s, api_version, EMU_INITIALIZE_PARAMS, &rp->reInitEncodeParams);
    }
    case EMU_PRESET_CONFIG:
        return check_fields(s, name, p, preset_fields, N(preset_fields));
    case EMU_PIC_PARAMS: {
        const NV_ENC_PIC_PARAMS *pp = p;
        if ((st = check_fields(s, name, p, pic_fields, N(pic_fields))) ||
            (st = check_bits(s, "NV_ENC_PIC_PARAMS_H264", "reservedBitFields", pp->codecPicParams.h264PicParams.reservedBitFields)))
            return st;
        return check_fields(s, "NV_ENC_PIC_PARAMS_H264", &pp->codecPicParams.h264PicParams, pic_h264_fields, N(pic_h264_fields));
    }
    case EMU_LOCK_BITSTREAM: {
        const NV_ENC_LOCK_BITSTREAM *lb = p;
        if ((st = check_bits(s, name, "reservedBitFields", lb->reservedBitFields)))
            return st;
        return check_fields(s, name, p, lock_bitstream_fields, N(lock_bitstream_fields));
    }
    case EMU_LOCK_INPUT_BUFFER: {
        const NV_ENC_LOCK_INPUT_BUFFER *li = p;
        if ((st = check_bits(s, name, "reservedBitFields", li->reservedBitFields)))
            return st;
        return check_fields(s, name, p, lock_input_fields, N(lock_input_fields));
    }
    case EMU_MAP_INPUT_RESOURCE:
        return check_fields(s, name, p, map_fields, N(map_fields));
    case EMU_REGISTER_RESOURCE:
        return check_fields(s, name, p, register_fields, N(register_fields));
    case EMU_SEQUENCE_PARAM_PAYLOAD:
        return check_fields(s, name, p, payload_fields, N(payload_fields));
    default:
        return NV_ENC_SUCCESS;
    }
}

/* Junk that is easy to recognise in a debugger and never a valid pointer or size. */
#define JUNK32 0xDEADBEEFu

void scribble(uint32_t api_version, emu_struct which, void *p)
{
    if (!reserved_checked(api_version) || !p)
        return;
    switch (which) {
    case EMU_LOCK_BITSTREAM: {
        NV_ENC_LOCK_BITSTREAM *lb = p;
        for (size_t i = 0; i < sizeof lb->reservedInternal / sizeof lb->reservedInternal[0]; i++)
            lb->reservedInternal[i] = JUNK32 ^ (uint32_t)i;
        break;
    }
    case EMU_CREATE_BITSTREAM_BUFFER: {
        NV_ENC_CREATE_BITSTREAM_BUFFER *bb = p;
        bb->bitstreamBufferPtr = (void *)(uintptr_t)0xDEAD0000DEAD0000ull; /* "[out]: Reserved and should not be used" */
        break;
    }
    default:
        break;
    }
}
