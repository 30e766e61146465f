/*
 * nvencffi's cffi declarations of the NVENC API 12.1 subset we use.
 *
 * Written for this project from the API's published facts (field order, types, array
 * lengths, enumerator values); it is NOT NVIDIA's header and is never compiled by a C
 * compiler.  cffi parses it in out-of-line ABI mode, where no compiler fills gaps, so:
 *
 *   - every struct we pass to the driver is declared COMPLETELY, reserved arrays
 *     included, and bit-fields as bit-fields;
 *   - a union is declared with the members we use plus whatever fixes its size (the
 *     reserved array where that is the largest member, else the largest member itself:
 *     NV_ENC_CODEC_PIC_PARAMS is sized by the AV1 picture parameters, so those are
 *     declared in full);
 *   - structs reached only through pointers we never dereference are opaque;
 *   - enumerator names and values mirror the header's; tags mirror its struct tags so
 *     that the ABI check can name our types in C against the official header.
 *
 * cffi's cdef only accepts integer #defines, so the version macros appear here as their
 * integer parts; the per-struct version words are computed in nvencffi/_api.py exactly
 * like NVENCAPI_STRUCT_VERSION.  GUIDs live in nvencffi/guids.py.
 *
 * tests/nvencffi/test_abi.py compiles a probe generated from THESE declarations against
 * NVIDIA's official nvEncodeAPI.h and asserts that every size, offset, bit-field
 * position, field type, enumerator, constant, GUID and struct version agrees.
 */

#define NVENCAPI_MAJOR_VERSION 12
#define NVENCAPI_MINOR_VERSION 1
#define NVENC_INFINITE_GOPLENGTH 0xffffffff
#define NV_MAX_SEQ_HDR_LEN 512
#define MAX_NUM_CLOCK_TS 3

typedef struct _GUID {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t  Data4[8];
} GUID;

typedef void *NV_ENC_INPUT_PTR;
typedef void *NV_ENC_OUTPUT_PTR;
typedef void *NV_ENC_REGISTERED_PTR;
typedef void *NV_ENC_CUSTREAM_PTR;

/* ---------------------------------------------------------------- enums */

typedef enum _NV_ENC_PARAMS_FRAME_FIELD_MODE {
    NV_ENC_PARAMS_FRAME_FIELD_MODE_FRAME = 0x01,
    NV_ENC_PARAMS_FRAME_FIELD_MODE_FIELD = 0x02,
    NV_ENC_PARAMS_FRAME_FIELD_MODE_MBAFF = 0x03
} NV_ENC_PARAMS_FRAME_FIELD_MODE;

typedef enum _NV_ENC_PARAMS_RC_MODE {
    NV_ENC_PARAMS_RC_CONSTQP = 0x0,
    NV_ENC_PARAMS_RC_VBR     = 0x1,
    NV_ENC_PARAMS_RC_CBR     = 0x2
} NV_ENC_PARAMS_RC_MODE;

typedef enum _NV_ENC_MULTI_PASS {
    NV_ENC_MULTI_PASS_DISABLED         = 0x0,
    NV_ENC_TWO_PASS_QUARTER_RESOLUTION = 0x1,
    NV_ENC_TWO_PASS_FULL_RESOLUTION    = 0x2
} NV_ENC_MULTI_PASS;

typedef enum _NV_ENC_OUTPUT_STATS_LEVEL {
    NV_ENC_OUTPUT_STATS_NONE        = 0,
    NV_ENC_OUTPUT_STATS_BLOCK_LEVEL = 1,
    NV_ENC_OUTPUT_STATS_ROW_LEVEL   = 2
} NV_ENC_OUTPUT_STATS_LEVEL;

typedef enum _NV_ENC_QP_MAP_MODE {
    NV_ENC_QP_MAP_DISABLED = 0x0,
    NV_ENC_QP_MAP_EMPHASIS = 0x1,
    NV_ENC_QP_MAP_DELTA    = 0x2,
    NV_ENC_QP_MAP          = 0x3
} NV_ENC_QP_MAP_MODE;

typedef enum _NV_ENC_PIC_STRUCT {
    NV_ENC_PIC_STRUCT_FRAME            = 0x01,
    NV_ENC_PIC_STRUCT_FIELD_TOP_BOTTOM = 0x02,
    NV_ENC_PIC_STRUCT_FIELD_BOTTOM_TOP = 0x03
} NV_ENC_PIC_STRUCT;

typedef enum _NV_ENC_DISPLAY_PIC_STRUCT {
    NV_ENC_PIC_STRUCT_DISPLAY_FRAME            = 0x00,
    NV_ENC_PIC_STRUCT_DISPLAY_FIELD_TOP_BOTTOM = 0x01,
    NV_ENC_PIC_STRUCT_DISPLAY_FIELD_BOTTOM_TOP = 0x02,
    NV_ENC_PIC_STRUCT_DISPLAY_FRAME_DOUBLING   = 0x03,
    NV_ENC_PIC_STRUCT_DISPLAY_FRAME_TRIPLING   = 0x04
} NV_ENC_DISPLAY_PIC_STRUCT;

typedef enum _NV_ENC_PIC_TYPE {
    NV_ENC_PIC_TYPE_P             = 0x0,
    NV_ENC_PIC_TYPE_B             = 0x01,
    NV_ENC_PIC_TYPE_I             = 0x02,
    NV_ENC_PIC_TYPE_IDR           = 0x03,
    NV_ENC_PIC_TYPE_BI            = 0x04,
    NV_ENC_PIC_TYPE_SKIPPED       = 0x05,
    NV_ENC_PIC_TYPE_INTRA_REFRESH = 0x06,
    NV_ENC_PIC_TYPE_NONREF_P      = 0x07,
    NV_ENC_PIC_TYPE_UNKNOWN       = 0xFF
} NV_ENC_PIC_TYPE;

typedef enum _NV_ENC_MV_PRECISION {
    NV_ENC_MV_PRECISION_DEFAULT     = 0x0,
    NV_ENC_MV_PRECISION_FULL_PEL    = 0x01,
    NV_ENC_MV_PRECISION_HALF_PEL    = 0x02,
    NV_ENC_MV_PRECISION_QUARTER_PEL = 0x03
} NV_ENC_MV_PRECISION;

typedef enum _NV_ENC_BUFFER_FORMAT {
    NV_ENC_BUFFER_FORMAT_UNDEFINED    = 0x00000000,
    NV_ENC_BUFFER_FORMAT_NV12         = 0x00000001,
    NV_ENC_BUFFER_FORMAT_YV12         = 0x00000010,
    NV_ENC_BUFFER_FORMAT_IYUV         = 0x00000100,
    NV_ENC_BUFFER_FORMAT_YUV444       = 0x00001000,
    NV_ENC_BUFFER_FORMAT_YUV420_10BIT = 0x00010000,
    NV_ENC_BUFFER_FORMAT_YUV444_10BIT = 0x00100000,
    NV_ENC_BUFFER_FORMAT_ARGB         = 0x01000000,
    NV_ENC_BUFFER_FORMAT_ARGB10       = 0x02000000,
    NV_ENC_BUFFER_FORMAT_AYUV         = 0x04000000,
    NV_ENC_BUFFER_FORMAT_ABGR         = 0x10000000,
    NV_ENC_BUFFER_FORMAT_ABGR10       = 0x20000000,
    NV_ENC_BUFFER_FORMAT_U8           = 0x40000000
} NV_ENC_BUFFER_FORMAT;

typedef enum _NV_ENC_LEVEL {
    NV_ENC_LEVEL_AUTOSELECT = 0,
    NV_ENC_LEVEL_H264_1     = 10,
    NV_ENC_LEVEL_H264_1b    = 9,
    NV_ENC_LEVEL_H264_11    = 11,
    NV_ENC_LEVEL_H264_12    = 12,
    NV_ENC_LEVEL_H264_13    = 13,
    NV_ENC_LEVEL_H264_2     = 20,
    NV_ENC_LEVEL_H264_21    = 21,
    NV_ENC_LEVEL_H264_22    = 22,
    NV_ENC_LEVEL_H264_3     = 30,
    NV_ENC_LEVEL_H264_31    = 31,
    NV_ENC_LEVEL_H264_32    = 32,
    NV_ENC_LEVEL_H264_4     = 40,
    NV_ENC_LEVEL_H264_41    = 41,
    NV_ENC_LEVEL_H264_42    = 42,
    NV_ENC_LEVEL_H264_5     = 50,
    NV_ENC_LEVEL_H264_51    = 51,
    NV_ENC_LEVEL_H264_52    = 52,
    NV_ENC_LEVEL_H264_60    = 60,
    NV_ENC_LEVEL_H264_61    = 61,
    NV_ENC_LEVEL_H264_62    = 62,
    NV_ENC_LEVEL_HEVC_1     = 30,
    NV_ENC_LEVEL_HEVC_2     = 60,
    NV_ENC_LEVEL_HEVC_21    = 63,
    NV_ENC_LEVEL_HEVC_3     = 90,
    NV_ENC_LEVEL_HEVC_31    = 93,
    NV_ENC_LEVEL_HEVC_4     = 120,
    NV_ENC_LEVEL_HEVC_41    = 123,
    NV_ENC_LEVEL_HEVC_5     = 150,
    NV_ENC_LEVEL_HEVC_51    = 153,
    NV_ENC_LEVEL_HEVC_52    = 156,
    NV_ENC_LEVEL_HEVC_6     = 180,
    NV_ENC_LEVEL_HEVC_61    = 183,
    NV_ENC_LEVEL_HEVC_62    = 186,
    NV_ENC_TIER_HEVC_MAIN   = 0,
    NV_ENC_TIER_HEVC_HIGH   = 1,
    NV_ENC_LEVEL_AV1_2      = 0,
    NV_ENC_LEVEL_AV1_21     = 1,
    NV_ENC_LEVEL_AV1_22     = 2,
    NV_ENC_LEVEL_AV1_23     = 3,
    NV_ENC_LEVEL_AV1_3      = 4,
    NV_ENC_LEVEL_AV1_31     = 5,
    NV_ENC_LEVEL_AV1_32     = 6,
    NV_ENC_LEVEL_AV1_33     = 7,
    NV_ENC_LEVEL_AV1_4      = 8,
    NV_ENC_LEVEL_AV1_41     = 9,
    NV_ENC_LEVEL_AV1_42     = 10,
    NV_ENC_LEVEL_AV1_43     = 11,
    NV_ENC_LEVEL_AV1_5      = 12,
    NV_ENC_LEVEL_AV1_51     = 13,
    NV_ENC_LEVEL_AV1_52     = 14,
    NV_ENC_LEVEL_AV1_53     = 15,
    NV_ENC_LEVEL_AV1_6      = 16,
    NV_ENC_LEVEL_AV1_61     = 17,
    NV_ENC_LEVEL_AV1_62     = 18,
    NV_ENC_LEVEL_AV1_63     = 19,
    NV_ENC_LEVEL_AV1_7      = 20,
    NV_ENC_LEVEL_AV1_71     = 21,
    NV_ENC_LEVEL_AV1_72     = 22,
    NV_ENC_LEVEL_AV1_73     = 23,
    NV_ENC_LEVEL_AV1_AUTOSELECT,
    NV_ENC_TIER_AV1_0       = 0,
    NV_ENC_TIER_AV1_1       = 1
} NV_ENC_LEVEL;

/* Every status of API 12.1, in order (the values are implicit, 0..26). */
typedef enum _NVENCSTATUS {
    NV_ENC_SUCCESS,
    NV_ENC_ERR_NO_ENCODE_DEVICE,
    NV_ENC_ERR_UNSUPPORTED_DEVICE,
    NV_ENC_ERR_INVALID_ENCODERDEVICE,
    NV_ENC_ERR_INVALID_DEVICE,
    NV_ENC_ERR_DEVICE_NOT_EXIST,
    NV_ENC_ERR_INVALID_PTR,
    NV_ENC_ERR_INVALID_EVENT,
    NV_ENC_ERR_INVALID_PARAM,
    NV_ENC_ERR_INVALID_CALL,
    NV_ENC_ERR_OUT_OF_MEMORY,
    NV_ENC_ERR_ENCODER_NOT_INITIALIZED,
    NV_ENC_ERR_UNSUPPORTED_PARAM,
    NV_ENC_ERR_LOCK_BUSY,
    NV_ENC_ERR_NOT_ENOUGH_BUFFER,
    NV_ENC_ERR_INVALID_VERSION,
    NV_ENC_ERR_MAP_FAILED,
    NV_ENC_ERR_NEED_MORE_INPUT,
    NV_ENC_ERR_ENCODER_BUSY,
    NV_ENC_ERR_EVENT_NOT_REGISTERD,
    NV_ENC_ERR_GENERIC,
    NV_ENC_ERR_INCOMPATIBLE_CLIENT_KEY,
    NV_ENC_ERR_UNIMPLEMENTED,
    NV_ENC_ERR_RESOURCE_REGISTER_FAILED,
    NV_ENC_ERR_RESOURCE_NOT_REGISTERED,
    NV_ENC_ERR_RESOURCE_NOT_MAPPED,
    NV_ENC_ERR_NEED_MORE_OUTPUT
} NVENCSTATUS;

typedef enum _NV_ENC_PIC_FLAGS {
    NV_ENC_PIC_FLAG_FORCEINTRA                = 0x1,
    NV_ENC_PIC_FLAG_FORCEIDR                  = 0x2,
    NV_ENC_PIC_FLAG_OUTPUT_SPSPPS             = 0x4,
    NV_ENC_PIC_FLAG_EOS                       = 0x8,
    NV_ENC_PIC_FLAG_DISABLE_ENC_STATE_ADVANCE = 0x10,
    NV_ENC_PIC_FLAG_OUTPUT_RECON_FRAME        = 0x20
} NV_ENC_PIC_FLAGS;

typedef enum _NV_ENC_MEMORY_HEAP {
    NV_ENC_MEMORY_HEAP_AUTOSELECT      = 0,
    NV_ENC_MEMORY_HEAP_VID             = 1,
    NV_ENC_MEMORY_HEAP_SYSMEM_CACHED   = 2,
    NV_ENC_MEMORY_HEAP_SYSMEM_UNCACHED = 3
} NV_ENC_MEMORY_HEAP;

typedef enum _NV_ENC_BFRAME_REF_MODE {
    NV_ENC_BFRAME_REF_MODE_DISABLED = 0x0,
    NV_ENC_BFRAME_REF_MODE_EACH     = 0x1,
    NV_ENC_BFRAME_REF_MODE_MIDDLE   = 0x2
} NV_ENC_BFRAME_REF_MODE;

typedef enum _NV_ENC_H264_ENTROPY_CODING_MODE {
    NV_ENC_H264_ENTROPY_CODING_MODE_AUTOSELECT = 0x0,
    NV_ENC_H264_ENTROPY_CODING_MODE_CABAC      = 0x1,
    NV_ENC_H264_ENTROPY_CODING_MODE_CAVLC      = 0x2
} NV_ENC_H264_ENTROPY_CODING_MODE;

typedef enum _NV_ENC_H264_BDIRECT_MODE {
    NV_ENC_H264_BDIRECT_MODE_AUTOSELECT = 0x0,
    NV_ENC_H264_BDIRECT_MODE_DISABLE    = 0x1,
    NV_ENC_H264_BDIRECT_MODE_TEMPORAL   = 0x2,
    NV_ENC_H264_BDIRECT_MODE_SPATIAL    = 0x3
} NV_ENC_H264_BDIRECT_MODE;

typedef enum _NV_ENC_H264_FMO_MODE {
    NV_ENC_H264_FMO_AUTOSELECT = 0x0,
    NV_ENC_H264_FMO_ENABLE     = 0x1,
    NV_ENC_H264_FMO_DISABLE    = 0x2
} NV_ENC_H264_FMO_MODE;

typedef enum _NV_ENC_H264_ADAPTIVE_TRANSFORM_MODE {
    NV_ENC_H264_ADAPTIVE_TRANSFORM_AUTOSELECT = 0x0,
    NV_ENC_H264_ADAPTIVE_TRANSFORM_DISABLE    = 0x1,
    NV_ENC_H264_ADAPTIVE_TRANSFORM_ENABLE     = 0x2
} NV_ENC_H264_ADAPTIVE_TRANSFORM_MODE;

typedef enum _NV_ENC_STEREO_PACKING_MODE {
    NV_ENC_STEREO_PACKING_MODE_NONE          = 0x0,
    NV_ENC_STEREO_PACKING_MODE_CHECKERBOARD  = 0x1,
    NV_ENC_STEREO_PACKING_MODE_COLINTERLEAVE = 0x2,
    NV_ENC_STEREO_PACKING_MODE_ROWINTERLEAVE = 0x3,
    NV_ENC_STEREO_PACKING_MODE_SIDEBYSIDE    = 0x4,
    NV_ENC_STEREO_PACKING_MODE_TOPBOTTOM     = 0x5,
    NV_ENC_STEREO_PACKING_MODE_FRAMESEQ      = 0x6
} NV_ENC_STEREO_PACKING_MODE;

typedef enum _NV_ENC_INPUT_RESOURCE_TYPE {
    NV_ENC_INPUT_RESOURCE_TYPE_DIRECTX       = 0x0,
    NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR = 0x1,
    NV_ENC_INPUT_RESOURCE_TYPE_CUDAARRAY     = 0x2,
    NV_ENC_INPUT_RESOURCE_TYPE_OPENGL_TEX    = 0x3
} NV_ENC_INPUT_RESOURCE_TYPE;

typedef enum _NV_ENC_BUFFER_USAGE {
    NV_ENC_INPUT_IMAGE          = 0x0,
    NV_ENC_OUTPUT_MOTION_VECTOR = 0x1,
    NV_ENC_OUTPUT_BITSTREAM     = 0x2,
    NV_ENC_OUTPUT_RECON         = 0x4
} NV_ENC_BUFFER_USAGE;

typedef enum _NV_ENC_DEVICE_TYPE {
    NV_ENC_DEVICE_TYPE_DIRECTX = 0x0,
    NV_ENC_DEVICE_TYPE_CUDA    = 0x1,
    NV_ENC_DEVICE_TYPE_OPENGL  = 0x2
} NV_ENC_DEVICE_TYPE;

typedef enum _NV_ENC_NUM_REF_FRAMES {
    NV_ENC_NUM_REF_FRAMES_AUTOSELECT = 0x0,
    NV_ENC_NUM_REF_FRAMES_1          = 0x1,
    NV_ENC_NUM_REF_FRAMES_2          = 0x2,
    NV_ENC_NUM_REF_FRAMES_3          = 0x3,
    NV_ENC_NUM_REF_FRAMES_4          = 0x4,
    NV_ENC_NUM_REF_FRAMES_5          = 0x5,
    NV_ENC_NUM_REF_FRAMES_6          = 0x6,
    NV_ENC_NUM_REF_FRAMES_7          = 0x7
} NV_ENC_NUM_REF_FRAMES;

/* Implicit values 0..56, in the header's order. */
typedef enum _NV_ENC_CAPS {
    NV_ENC_CAPS_NUM_MAX_BFRAMES,
    NV_ENC_CAPS_SUPPORTED_RATECONTROL_MODES,
    NV_ENC_CAPS_SUPPORT_FIELD_ENCODING,
    NV_ENC_CAPS_SUPPORT_MONOCHROME,
    NV_ENC_CAPS_SUPPORT_FMO,
    NV_ENC_CAPS_SUPPORT_QPELMV,
    NV_ENC_CAPS_SUPPORT_BDIRECT_MODE,
    NV_ENC_CAPS_SUPPORT_CABAC,
    NV_ENC_CAPS_SUPPORT_ADAPTIVE_TRANSFORM,
    NV_ENC_CAPS_SUPPORT_STEREO_MVC,
    NV_ENC_CAPS_NUM_MAX_TEMPORAL_LAYERS,
    NV_ENC_CAPS_SUPPORT_HIERARCHICAL_PFRAMES,
    NV_ENC_CAPS_SUPPORT_HIERARCHICAL_BFRAMES,
    NV_ENC_CAPS_LEVEL_MAX,
    NV_ENC_CAPS_LEVEL_MIN,
    NV_ENC_CAPS_SEPARATE_COLOUR_PLANE,
    NV_ENC_CAPS_WIDTH_MAX,
    NV_ENC_CAPS_HEIGHT_MAX,
    NV_ENC_CAPS_SUPPORT_TEMPORAL_SVC,
    NV_ENC_CAPS_SUPPORT_DYN_RES_CHANGE,
    NV_ENC_CAPS_SUPPORT_DYN_BITRATE_CHANGE,
    NV_ENC_CAPS_SUPPORT_DYN_FORCE_CONSTQP,
    NV_ENC_CAPS_SUPPORT_DYN_RCMODE_CHANGE,
    NV_ENC_CAPS_SUPPORT_SUBFRAME_READBACK,
    NV_ENC_CAPS_SUPPORT_CONSTRAINED_ENCODING,
    NV_ENC_CAPS_SUPPORT_INTRA_REFRESH,
    NV_ENC_CAPS_SUPPORT_CUSTOM_VBV_BUF_SIZE,
    NV_ENC_CAPS_SUPPORT_DYNAMIC_SLICE_MODE,
    NV_ENC_CAPS_SUPPORT_REF_PIC_INVALIDATION,
    NV_ENC_CAPS_PREPROC_SUPPORT,
    NV_ENC_CAPS_ASYNC_ENCODE_SUPPORT,
    NV_ENC_CAPS_MB_NUM_MAX,
    NV_ENC_CAPS_MB_PER_SEC_MAX,
    NV_ENC_CAPS_SUPPORT_YUV444_ENCODE,
    NV_ENC_CAPS_SUPPORT_LOSSLESS_ENCODE,
    NV_ENC_CAPS_SUPPORT_SAO,
    NV_ENC_CAPS_SUPPORT_MEONLY_MODE,
    NV_ENC_CAPS_SUPPORT_LOOKAHEAD,
    NV_ENC_CAPS_SUPPORT_TEMPORAL_AQ,
    NV_ENC_CAPS_SUPPORT_10BIT_ENCODE,
    NV_ENC_CAPS_NUM_MAX_LTR_FRAMES,
    NV_ENC_CAPS_SUPPORT_WEIGHTED_PREDICTION,
    NV_ENC_CAPS_DYNAMIC_QUERY_ENCODER_CAPACITY,
    NV_ENC_CAPS_SUPPORT_BFRAME_REF_MODE,
    NV_ENC_CAPS_SUPPORT_EMPHASIS_LEVEL_MAP,
    NV_ENC_CAPS_WIDTH_MIN,
    NV_ENC_CAPS_HEIGHT_MIN,
    NV_ENC_CAPS_SUPPORT_MULTIPLE_REF_FRAMES,
    NV_ENC_CAPS_SUPPORT_ALPHA_LAYER_ENCODING,
    NV_ENC_CAPS_NUM_ENCODER_ENGINES,
    NV_ENC_CAPS_SINGLE_SLICE_INTRA_REFRESH,
    NV_ENC_CAPS_DISABLE_ENC_STATE_ADVANCE,
    NV_ENC_CAPS_OUTPUT_RECON_SURFACE,
    NV_ENC_CAPS_OUTPUT_BLOCK_STATS,
    NV_ENC_CAPS_OUTPUT_ROW_STATS,
    NV_ENC_CAPS_EXPOSED_COUNT
} NV_ENC_CAPS;

typedef enum _NV_ENC_VUI_VIDEO_FORMAT {
    NV_ENC_VUI_VIDEO_FORMAT_COMPONENT   = 0,
    NV_ENC_VUI_VIDEO_FORMAT_PAL         = 1,
    NV_ENC_VUI_VIDEO_FORMAT_NTSC        = 2,
    NV_ENC_VUI_VIDEO_FORMAT_SECAM       = 3,
    NV_ENC_VUI_VIDEO_FORMAT_MAC         = 4,
    NV_ENC_VUI_VIDEO_FORMAT_UNSPECIFIED = 5
} NV_ENC_VUI_VIDEO_FORMAT;

typedef enum _NV_ENC_VUI_COLOR_PRIMARIES {
    NV_ENC_VUI_COLOR_PRIMARIES_UNDEFINED   = 0,
    NV_ENC_VUI_COLOR_PRIMARIES_BT709       = 1,
    NV_ENC_VUI_COLOR_PRIMARIES_UNSPECIFIED = 2,
    NV_ENC_VUI_COLOR_PRIMARIES_RESERVED    = 3,
    NV_ENC_VUI_COLOR_PRIMARIES_BT470M      = 4,
    NV_ENC_VUI_COLOR_PRIMARIES_BT470BG     = 5,
    NV_ENC_VUI_COLOR_PRIMARIES_SMPTE170M   = 6,
    NV_ENC_VUI_COLOR_PRIMARIES_SMPTE240M   = 7,
    NV_ENC_VUI_COLOR_PRIMARIES_FILM        = 8,
    NV_ENC_VUI_COLOR_PRIMARIES_BT2020      = 9,
    NV_ENC_VUI_COLOR_PRIMARIES_SMPTE428    = 10,
    NV_ENC_VUI_COLOR_PRIMARIES_SMPTE431    = 11,
    NV_ENC_VUI_COLOR_PRIMARIES_SMPTE432    = 12,
    NV_ENC_VUI_COLOR_PRIMARIES_JEDEC_P22   = 22
} NV_ENC_VUI_COLOR_PRIMARIES;

typedef enum _NV_ENC_VUI_TRANSFER_CHARACTERISTIC {
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_UNDEFINED    = 0,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_BT709        = 1,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_UNSPECIFIED  = 2,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_RESERVED     = 3,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_BT470M       = 4,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_BT470BG      = 5,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_SMPTE170M    = 6,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_SMPTE240M    = 7,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_LINEAR       = 8,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_LOG          = 9,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_LOG_SQRT     = 10,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_IEC61966_2_4 = 11,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_BT1361_ECG   = 12,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_SRGB         = 13,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_BT2020_10    = 14,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_BT2020_12    = 15,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_SMPTE2084    = 16,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_SMPTE428     = 17,
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC_ARIB_STD_B67 = 18
} NV_ENC_VUI_TRANSFER_CHARACTERISTIC;

typedef enum _NV_ENC_VUI_MATRIX_COEFFS {
    NV_ENC_VUI_MATRIX_COEFFS_RGB         = 0,
    NV_ENC_VUI_MATRIX_COEFFS_BT709       = 1,
    NV_ENC_VUI_MATRIX_COEFFS_UNSPECIFIED = 2,
    NV_ENC_VUI_MATRIX_COEFFS_RESERVED    = 3,
    NV_ENC_VUI_MATRIX_COEFFS_FCC         = 4,
    NV_ENC_VUI_MATRIX_COEFFS_BT470BG     = 5,
    NV_ENC_VUI_MATRIX_COEFFS_SMPTE170M   = 6,
    NV_ENC_VUI_MATRIX_COEFFS_SMPTE240M   = 7,
    NV_ENC_VUI_MATRIX_COEFFS_YCGCO       = 8,
    NV_ENC_VUI_MATRIX_COEFFS_BT2020_NCL  = 9,
    NV_ENC_VUI_MATRIX_COEFFS_BT2020_CL   = 10,
    NV_ENC_VUI_MATRIX_COEFFS_SMPTE2085   = 11
} NV_ENC_VUI_MATRIX_COEFFS;

typedef enum NV_ENC_TUNING_INFO {
    NV_ENC_TUNING_INFO_UNDEFINED         = 0,
    NV_ENC_TUNING_INFO_HIGH_QUALITY      = 1,
    NV_ENC_TUNING_INFO_LOW_LATENCY       = 2,
    NV_ENC_TUNING_INFO_ULTRA_LOW_LATENCY = 3,
    NV_ENC_TUNING_INFO_LOSSLESS          = 4,
    NV_ENC_TUNING_INFO_COUNT
} NV_ENC_TUNING_INFO;

/* ------------------------------------------------- opaque (pointer-only) structs */

typedef struct _NV_ENC_CREATE_INPUT_BUFFER NV_ENC_CREATE_INPUT_BUFFER;
typedef struct _NV_ENC_LOCK_INPUT_BUFFER NV_ENC_LOCK_INPUT_BUFFER;
typedef struct _NV_ENC_STAT NV_ENC_STAT;
typedef struct _NV_ENC_EVENT_PARAMS NV_ENC_EVENT_PARAMS;
typedef struct _NV_ENC_CREATE_MV_BUFFER NV_ENC_CREATE_MV_BUFFER;
typedef struct _NV_ENC_MEONLY_PARAMS NV_ENC_MEONLY_PARAMS;
typedef struct _NV_ENC_RESTORE_ENCODER_STATE_PARAMS NV_ENC_RESTORE_ENCODER_STATE_PARAMS;
typedef struct _NV_ENC_LOOKAHEAD_PIC_PARAMS NV_ENC_LOOKAHEAD_PIC_PARAMS;
typedef struct _NV_ENC_FENCE_POINT_D3D12 NV_ENC_FENCE_POINT_D3D12;
typedef struct _NVENC_EXTERNAL_ME_HINT NVENC_EXTERNAL_ME_HINT;
typedef struct _NVENC_EXTERNAL_ME_SB_HINT NVENC_EXTERNAL_ME_SB_HINT;
typedef struct _NV_ENC_FILM_GRAIN_PARAMS_AV1 NV_ENC_FILM_GRAIN_PARAMS_AV1;

/* ------------------------------------------------------------- structs */

typedef struct _NV_ENC_CAPS_PARAM {
    uint32_t    version;
    NV_ENC_CAPS capsToQuery;
    uint32_t    reserved[62];
} NV_ENC_CAPS_PARAM;

typedef struct _NV_ENC_CREATE_BITSTREAM_BUFFER {
    uint32_t           version;
    uint32_t           size;
    NV_ENC_MEMORY_HEAP memoryHeap;
    uint32_t           reserved;
    NV_ENC_OUTPUT_PTR  bitstreamBuffer;
    void              *bitstreamBufferPtr;
    uint32_t           reserved1[58];
    void              *reserved2[64];
} NV_ENC_CREATE_BITSTREAM_BUFFER;

typedef struct _NV_ENC_QP {
    uint32_t qpInterP;
    uint32_t qpInterB;
    uint32_t qpIntra;
} NV_ENC_QP;

typedef struct _NV_ENC_RC_PARAMS {
    uint32_t              version;
    NV_ENC_PARAMS_RC_MODE rateControlMode;
    NV_ENC_QP             constQP;
    uint32_t              averageBitRate;
    uint32_t              maxBitRate;
    uint32_t              vbvBufferSize;
    uint32_t              vbvInitialDelay;
    uint32_t              enableMinQP        : 1;
    uint32_t              enableMaxQP        : 1;
    uint32_t              enableInitialRCQP  : 1;
    uint32_t              enableAQ           : 1;
    uint32_t              reservedBitField1  : 1;
    uint32_t              enableLookahead    : 1;
    uint32_t              disableIadapt      : 1;
    uint32_t              disableBadapt      : 1;
    uint32_t              enableTemporalAQ   : 1;
    uint32_t              zeroReorderDelay   : 1;
    uint32_t              enableNonRefP      : 1;
    uint32_t              strictGOPTarget    : 1;
    uint32_t              aqStrength         : 4;
    uint32_t              enableExtLookahead : 1;
    uint32_t              reservedBitFields  : 15;
    NV_ENC_QP             minQP;
    NV_ENC_QP             maxQP;
    NV_ENC_QP             initialRCQP;
    uint32_t              temporallayerIdxMask;
    uint8_t               temporalLayerQP[8];
    uint8_t               targetQuality;
    uint8_t               targetQualityLSB;
    uint16_t              lookaheadDepth;
    uint8_t               lowDelayKeyFrameScale;
    int8_t                yDcQPIndexOffset;
    int8_t                uDcQPIndexOffset;
    int8_t                vDcQPIndexOffset;
    NV_ENC_QP_MAP_MODE    qpMapMode;
    NV_ENC_MULTI_PASS     multiPass;
    uint32_t              alphaLayerBitrateRatio;
    int8_t                cbQPIndexOffset;
    int8_t                crQPIndexOffset;
    uint16_t              reserved2;
    uint32_t              reserved[4];
} NV_ENC_RC_PARAMS;

typedef struct _NV_ENC_CLOCK_TIMESTAMP_SET {
    uint32_t countingType      : 1;
    uint32_t discontinuityFlag : 1;
    uint32_t cntDroppedFrames  : 1;
    uint32_t nFrames           : 8;
    uint32_t secondsValue      : 6;
    uint32_t minutesValue      : 6;
    uint32_t hoursValue        : 5;
    uint32_t reserved2         : 4;
    uint32_t timeOffset;
} NV_ENC_CLOCK_TIMESTAMP_SET;

typedef struct _NV_ENC_TIME_CODE {
    NV_ENC_DISPLAY_PIC_STRUCT  displayPicStruct;
    NV_ENC_CLOCK_TIMESTAMP_SET clockTimestamp[3];   /* MAX_NUM_CLOCK_TS */
} NV_ENC_TIME_CODE;

typedef struct _NV_ENC_CONFIG_H264_VUI_PARAMETERS {
    uint32_t                           overscanInfoPresentFlag;
    uint32_t                           overscanInfo;
    uint32_t                           videoSignalTypePresentFlag;
    NV_ENC_VUI_VIDEO_FORMAT            videoFormat;
    uint32_t                           videoFullRangeFlag;
    uint32_t                           colourDescriptionPresentFlag;
    NV_ENC_VUI_COLOR_PRIMARIES         colourPrimaries;
    NV_ENC_VUI_TRANSFER_CHARACTERISTIC transferCharacteristics;
    NV_ENC_VUI_MATRIX_COEFFS           colourMatrix;
    uint32_t                           chromaSampleLocationFlag;
    uint32_t                           chromaSampleLocationTop;
    uint32_t                           chromaSampleLocationBot;
    uint32_t                           bitstreamRestrictionFlag;
    uint32_t                           timingInfoPresentFlag;
    uint32_t                           numUnitInTicks;
    uint32_t                           timeScale;
    uint32_t                           reserved[12];
} NV_ENC_CONFIG_H264_VUI_PARAMETERS;

typedef struct _NVENC_EXTERNAL_ME_HINT_COUNTS_PER_BLOCKTYPE {
    uint32_t numCandsPerBlk16x16 : 4;
    uint32_t numCandsPerBlk16x8  : 4;
    uint32_t numCandsPerBlk8x16  : 4;
    uint32_t numCandsPerBlk8x8   : 4;
    uint32_t numCandsPerSb       : 8;
    uint32_t reserved            : 8;
    uint32_t reserved1[3];
} NVENC_EXTERNAL_ME_HINT_COUNTS_PER_BLOCKTYPE;

typedef struct _NV_ENC_CONFIG_H264 {
    uint32_t enableTemporalSVC               : 1;
    uint32_t enableStereoMVC                 : 1;
    uint32_t hierarchicalPFrames             : 1;
    uint32_t hierarchicalBFrames             : 1;
    uint32_t outputBufferingPeriodSEI        : 1;
    uint32_t outputPictureTimingSEI          : 1;
    uint32_t outputAUD                       : 1;
    uint32_t disableSPSPPS                   : 1;
    uint32_t outputFramePackingSEI           : 1;
    uint32_t outputRecoveryPointSEI          : 1;
    uint32_t enableIntraRefresh              : 1;
    uint32_t enableConstrainedEncoding       : 1;
    uint32_t repeatSPSPPS                    : 1;
    uint32_t enableVFR                       : 1;
    uint32_t enableLTR                       : 1;
    uint32_t qpPrimeYZeroTransformBypassFlag : 1;
    uint32_t useConstrainedIntraPred         : 1;
    uint32_t enableFillerDataInsertion       : 1;
    uint32_t disableSVCPrefixNalu            : 1;
    uint32_t enableScalabilityInfoSEI        : 1;
    uint32_t singleSliceIntraRefresh         : 1;
    uint32_t enableTimeCode                  : 1;
    uint32_t reservedBitFields               : 10;
    uint32_t level;
    uint32_t idrPeriod;
    uint32_t separateColourPlaneFlag;
    uint32_t disableDeblockingFilterIDC;
    uint32_t numTemporalLayers;
    uint32_t spsId;
    uint32_t ppsId;
    NV_ENC_H264_ADAPTIVE_TRANSFORM_MODE adaptiveTransformMode;
    NV_ENC_H264_FMO_MODE                fmoMode;
    NV_ENC_H264_BDIRECT_MODE            bdirectMode;
    NV_ENC_H264_ENTROPY_CODING_MODE     entropyCodingMode;
    NV_ENC_STEREO_PACKING_MODE          stereoMode;
    uint32_t                            intraRefreshPeriod;
    uint32_t                            intraRefreshCnt;
    uint32_t                            maxNumRefFrames;
    uint32_t                            sliceMode;
    uint32_t                            sliceModeData;
    NV_ENC_CONFIG_H264_VUI_PARAMETERS   h264VUIParameters;
    uint32_t                            ltrNumFrames;
    uint32_t                            ltrTrustMode;
    uint32_t                            chromaFormatIDC;
    uint32_t                            maxTemporalLayers;
    NV_ENC_BFRAME_REF_MODE              useBFramesAsRef;
    NV_ENC_NUM_REF_FRAMES               numRefL0;
    NV_ENC_NUM_REF_FRAMES               numRefL1;
    uint32_t                            reserved1[267];
    void                               *reserved2[64];
} NV_ENC_CONFIG_H264;

/* The H.264 config is the largest member (1792 bytes on LP64): it fixes the size. */
typedef union _NV_ENC_CODEC_CONFIG {
    NV_ENC_CONFIG_H264 h264Config;
    uint32_t           reserved[320];
} NV_ENC_CODEC_CONFIG;

typedef struct _NV_ENC_CONFIG {
    uint32_t                       version;
    GUID                           profileGUID;
    uint32_t                       gopLength;
    int32_t                        frameIntervalP;
    uint32_t                       monoChromeEncoding;
    NV_ENC_PARAMS_FRAME_FIELD_MODE frameFieldMode;
    NV_ENC_MV_PRECISION            mvPrecision;
    NV_ENC_RC_PARAMS               rcParams;
    NV_ENC_CODEC_CONFIG            encodeCodecConfig;
    uint32_t                       reserved[278];
    void                          *reserved2[64];
} NV_ENC_CONFIG;

typedef struct _NV_ENC_INITIALIZE_PARAMS {
    uint32_t             version;
    GUID                 encodeGUID;
    GUID                 presetGUID;
    uint32_t             encodeWidth;
    uint32_t             encodeHeight;
    uint32_t             darWidth;
    uint32_t             darHeight;
    uint32_t             frameRateNum;
    uint32_t             frameRateDen;
    uint32_t             enableEncodeAsync;
    uint32_t             enablePTD;
    uint32_t             reportSliceOffsets       : 1;
    uint32_t             enableSubFrameWrite      : 1;
    uint32_t             enableExternalMEHints    : 1;
    uint32_t             enableMEOnlyMode         : 1;
    uint32_t             enableWeightedPrediction : 1;
    uint32_t             splitEncodeMode          : 4;
    uint32_t             enableOutputInVidmem     : 1;
    uint32_t             enableReconFrameOutput   : 1;
    uint32_t             enableOutputStats        : 1;
    uint32_t             reservedBitFields        : 20;
    uint32_t             privDataSize;
    void                *privData;
    NV_ENC_CONFIG       *encodeConfig;
    uint32_t             maxEncodeWidth;
    uint32_t             maxEncodeHeight;
    NVENC_EXTERNAL_ME_HINT_COUNTS_PER_BLOCKTYPE maxMEHintCountsPerBlock[2];
    NV_ENC_TUNING_INFO   tuningInfo;
    NV_ENC_BUFFER_FORMAT bufferFormat;
    uint32_t             numStateBuffers;
    NV_ENC_OUTPUT_STATS_LEVEL outputStatsLevel;
    uint32_t             reserved[285];
    void                *reserved2[64];
} NV_ENC_INITIALIZE_PARAMS;

typedef struct _NV_ENC_RECONFIGURE_PARAMS {
    uint32_t                 version;
    NV_ENC_INITIALIZE_PARAMS reInitEncodeParams;
    uint32_t                 resetEncoder : 1;
    uint32_t                 forceIDR     : 1;
    uint32_t                 reserved     : 30;
} NV_ENC_RECONFIGURE_PARAMS;

typedef struct _NV_ENC_PRESET_CONFIG {
    uint32_t      version;
    NV_ENC_CONFIG presetCfg;
    uint32_t      reserved1[255];
    void         *reserved2[64];
} NV_ENC_PRESET_CONFIG;

typedef struct _NV_ENC_PIC_PARAMS_MVC {
    uint32_t version;
    uint32_t viewID;
    uint32_t temporalID;
    uint32_t priorityID;
    uint32_t reserved1[12];
    void    *reserved2[8];
} NV_ENC_PIC_PARAMS_MVC;

typedef union _NV_ENC_PIC_PARAMS_H264_EXT {
    NV_ENC_PIC_PARAMS_MVC mvcPicParams;
    uint32_t              reserved1[32];
} NV_ENC_PIC_PARAMS_H264_EXT;

typedef struct _NV_ENC_SEI_PAYLOAD {
    uint32_t payloadSize;
    uint32_t payloadType;
    uint8_t *payload;
} NV_ENC_SEI_PAYLOAD;

typedef struct _NV_ENC_PIC_PARAMS_H264 {
    uint32_t displayPOCSyntax;
    uint32_t reserved3;
    uint32_t refPicFlag;
    uint32_t colourPlaneId;
    uint32_t forceIntraRefreshWithFrameCnt;
    uint32_t constrainedFrame    : 1;
    uint32_t sliceModeDataUpdate : 1;
    uint32_t ltrMarkFrame        : 1;
    uint32_t ltrUseFrames        : 1;
    uint32_t reservedBitFields   : 28;
    uint8_t *sliceTypeData;
    uint32_t sliceTypeArrayCnt;
    uint32_t seiPayloadArrayCnt;
    NV_ENC_SEI_PAYLOAD *seiPayloadArray;
    uint32_t sliceMode;
    uint32_t sliceModeData;
    uint32_t ltrMarkFrameIdx;
    uint32_t ltrUseFrameBitmap;
    uint32_t ltrUsageMode;
    uint32_t forceIntraSliceCount;
    uint32_t *forceIntraSliceIdx;
    NV_ENC_PIC_PARAMS_H264_EXT h264ExtPicParams;
    NV_ENC_TIME_CODE           timeCode;
    uint32_t reserved[203];
    void    *reserved2[61];
} NV_ENC_PIC_PARAMS_H264;

/* Declared only because it is the largest member of NV_ENC_CODEC_PIC_PARAMS. */
typedef struct _NV_ENC_PIC_PARAMS_AV1 {
    uint32_t displayPOCSyntax;
    uint32_t refPicFlag;
    uint32_t temporalId;
    uint32_t forceIntraRefreshWithFrameCnt;
    uint32_t goldenFrameFlag        : 1;
    uint32_t arfFrameFlag           : 1;
    uint32_t arf2FrameFlag          : 1;
    uint32_t bwdFrameFlag           : 1;
    uint32_t overlayFrameFlag       : 1;
    uint32_t showExistingFrameFlag  : 1;
    uint32_t errorResilientModeFlag : 1;
    uint32_t tileConfigUpdate       : 1;
    uint32_t enableCustomTileConfig : 1;
    uint32_t filmGrainParamsUpdate  : 1;
    uint32_t reservedBitFields      : 22;
    uint32_t numTileColumns;
    uint32_t numTileRows;
    uint32_t *tileWidths;
    uint32_t *tileHeights;
    uint32_t obuPayloadArrayCnt;
    uint32_t reserved;
    NV_ENC_SEI_PAYLOAD *obuPayloadArray;             /* NV_ENC_AV1_OBU_PAYLOAD */
    NV_ENC_FILM_GRAIN_PARAMS_AV1 *filmGrainParams;
    uint32_t reserved2[247];
    void    *reserved3[61];
} NV_ENC_PIC_PARAMS_AV1;

/* Sized by the AV1 member (1552 bytes on LP64), not by the reserved array (1024). */
typedef union _NV_ENC_CODEC_PIC_PARAMS {
    NV_ENC_PIC_PARAMS_H264 h264PicParams;
    NV_ENC_PIC_PARAMS_AV1  av1PicParams;
    uint32_t               reserved[256];
} NV_ENC_CODEC_PIC_PARAMS;

typedef struct _NV_ENC_PIC_PARAMS {
    uint32_t                version;
    uint32_t                inputWidth;
    uint32_t                inputHeight;
    uint32_t                inputPitch;
    uint32_t                encodePicFlags;
    uint32_t                frameIdx;
    uint64_t                inputTimeStamp;
    uint64_t                inputDuration;
    NV_ENC_INPUT_PTR        inputBuffer;
    NV_ENC_OUTPUT_PTR       outputBitstream;
    void                   *completionEvent;
    NV_ENC_BUFFER_FORMAT    bufferFmt;
    NV_ENC_PIC_STRUCT       pictureStruct;
    NV_ENC_PIC_TYPE         pictureType;
    NV_ENC_CODEC_PIC_PARAMS codecPicParams;
    NVENC_EXTERNAL_ME_HINT_COUNTS_PER_BLOCKTYPE meHintCountsPerBlock[2];
    NVENC_EXTERNAL_ME_HINT *meExternalHints;
    uint32_t                reserved1[6];
    void                   *reserved2[2];
    int8_t                 *qpDeltaMap;
    uint32_t                qpDeltaMapSize;
    uint32_t                reservedBitFields;
    uint16_t                meHintRefPicDist[2];
    NV_ENC_INPUT_PTR        alphaBuffer;
    NVENC_EXTERNAL_ME_SB_HINT *meExternalSbHints;
    uint32_t                meSbHintsCount;
    uint32_t                stateBufferIdx;
    NV_ENC_OUTPUT_PTR       outputReconBuffer;
    uint32_t                reserved3[284];
    void                   *reserved4[57];
} NV_ENC_PIC_PARAMS;

typedef struct _NV_ENC_LOCK_BITSTREAM {
    uint32_t          version;
    uint32_t          doNotWait         : 1;
    uint32_t          ltrFrame          : 1;
    uint32_t          getRCStats        : 1;
    uint32_t          reservedBitFields : 29;
    void             *outputBitstream;
    uint32_t         *sliceOffsets;
    uint32_t          frameIdx;
    uint32_t          hwEncodeStatus;
    uint32_t          numSlices;
    uint32_t          bitstreamSizeInBytes;
    uint64_t          outputTimeStamp;
    uint64_t          outputDuration;
    void             *bitstreamBufferPtr;
    NV_ENC_PIC_TYPE   pictureType;
    NV_ENC_PIC_STRUCT pictureStruct;
    uint32_t          frameAvgQP;
    uint32_t          frameSatd;
    uint32_t          ltrFrameIdx;
    uint32_t          ltrFrameBitmap;
    uint32_t          temporalId;
    uint32_t          intraMBCount;
    uint32_t          interMBCount;
    int32_t           averageMVX;
    int32_t           averageMVY;
    uint32_t          alphaLayerSizeInBytes;
    uint32_t          outputStatsPtrSize;
    void             *outputStatsPtr;
    uint32_t          frameIdxDisplay;
    uint32_t          reserved1[220];
    void             *reserved2[63];
    uint32_t          reservedInternal[8];
} NV_ENC_LOCK_BITSTREAM;

typedef struct _NV_ENC_MAP_INPUT_RESOURCE {
    uint32_t              version;
    uint32_t              subResourceIndex;
    void                 *inputResource;
    NV_ENC_REGISTERED_PTR registeredResource;
    NV_ENC_INPUT_PTR      mappedResource;
    NV_ENC_BUFFER_FORMAT  mappedBufferFmt;
    uint32_t              reserved1[251];
    void                 *reserved2[63];
} NV_ENC_MAP_INPUT_RESOURCE;

typedef struct _NV_ENC_REGISTER_RESOURCE {
    uint32_t                   version;
    NV_ENC_INPUT_RESOURCE_TYPE resourceType;
    uint32_t                   width;
    uint32_t                   height;
    uint32_t                   pitch;
    uint32_t                   subResourceIndex;
    void                      *resourceToRegister;
    NV_ENC_REGISTERED_PTR      registeredResource;
    NV_ENC_BUFFER_FORMAT       bufferFormat;
    NV_ENC_BUFFER_USAGE        bufferUsage;
    NV_ENC_FENCE_POINT_D3D12  *pInputFencePoint;
    uint32_t                   chromaOffset[2];
    uint32_t                   reserved1[245];
    void                      *reserved2[61];
} NV_ENC_REGISTER_RESOURCE;

typedef struct _NV_ENC_SEQUENCE_PARAM_PAYLOAD {
    uint32_t  version;
    uint32_t  inBufferSize;
    uint32_t  spsId;
    uint32_t  ppsId;
    void     *spsppsBuffer;
    uint32_t *outSPSPPSPayloadSize;
    uint32_t  reserved[250];
    void     *reserved2[64];
} NV_ENC_SEQUENCE_PARAM_PAYLOAD;

typedef struct _NV_ENC_OPEN_ENCODE_SESSIONEX_PARAMS {
    uint32_t           version;
    NV_ENC_DEVICE_TYPE deviceType;
    void              *device;
    void              *reserved;
    uint32_t           apiVersion;
    uint32_t           reserved1[253];
    void              *reserved2[64];
} NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS;

/* ------------------------------------------------------ the function table */

typedef NVENCSTATUS (*PNVENCOPENENCODESESSION)(void *device, uint32_t deviceType, void **encoder);
typedef NVENCSTATUS (*PNVENCGETENCODEGUIDCOUNT)(void *encoder, uint32_t *encodeGUIDCount);
typedef NVENCSTATUS (*PNVENCGETENCODEGUIDS)(void *encoder, GUID *GUIDs, uint32_t guidArraySize, uint32_t *GUIDCount);
typedef NVENCSTATUS (*PNVENCGETENCODEPROFILEGUIDCOUNT)(void *encoder, GUID encodeGUID, uint32_t *encodeProfileGUIDCount);
typedef NVENCSTATUS (*PNVENCGETENCODEPROFILEGUIDS)(void *encoder, GUID encodeGUID, GUID *profileGUIDs, uint32_t guidArraySize, uint32_t *GUIDCount);
typedef NVENCSTATUS (*PNVENCGETINPUTFORMATCOUNT)(void *encoder, GUID encodeGUID, uint32_t *inputFmtCount);
typedef NVENCSTATUS (*PNVENCGETINPUTFORMATS)(void *encoder, GUID encodeGUID, NV_ENC_BUFFER_FORMAT *inputFmts, uint32_t inputFmtArraySize, uint32_t *inputFmtCount);
typedef NVENCSTATUS (*PNVENCGETENCODECAPS)(void *encoder, GUID encodeGUID, NV_ENC_CAPS_PARAM *capsParam, int *capsVal);
typedef NVENCSTATUS (*PNVENCGETENCODEPRESETCOUNT)(void *encoder, GUID encodeGUID, uint32_t *encodePresetGUIDCount);
typedef NVENCSTATUS (*PNVENCGETENCODEPRESETGUIDS)(void *encoder, GUID encodeGUID, GUID *presetGUIDs, uint32_t guidArraySize, uint32_t *encodePresetGUIDCount);
typedef NVENCSTATUS (*PNVENCGETENCODEPRESETCONFIG)(void *encoder, GUID encodeGUID, GUID presetGUID, NV_ENC_PRESET_CONFIG *presetConfig);
typedef NVENCSTATUS (*PNVENCGETENCODEPRESETCONFIGEX)(void *encoder, GUID encodeGUID, GUID presetGUID, NV_ENC_TUNING_INFO tuningInfo, NV_ENC_PRESET_CONFIG *presetConfig);
typedef NVENCSTATUS (*PNVENCINITIALIZEENCODER)(void *encoder, NV_ENC_INITIALIZE_PARAMS *createEncodeParams);
typedef NVENCSTATUS (*PNVENCCREATEINPUTBUFFER)(void *encoder, NV_ENC_CREATE_INPUT_BUFFER *createInputBufferParams);
typedef NVENCSTATUS (*PNVENCDESTROYINPUTBUFFER)(void *encoder, NV_ENC_INPUT_PTR inputBuffer);
typedef NVENCSTATUS (*PNVENCCREATEBITSTREAMBUFFER)(void *encoder, NV_ENC_CREATE_BITSTREAM_BUFFER *createBitstreamBufferParams);
typedef NVENCSTATUS (*PNVENCDESTROYBITSTREAMBUFFER)(void *encoder, NV_ENC_OUTPUT_PTR bitstreamBuffer);
typedef NVENCSTATUS (*PNVENCENCODEPICTURE)(void *encoder, NV_ENC_PIC_PARAMS *encodePicParams);
typedef NVENCSTATUS (*PNVENCLOCKBITSTREAM)(void *encoder, NV_ENC_LOCK_BITSTREAM *lockBitstreamBufferParams);
typedef NVENCSTATUS (*PNVENCUNLOCKBITSTREAM)(void *encoder, NV_ENC_OUTPUT_PTR bitstreamBuffer);
typedef NVENCSTATUS (*PNVENCLOCKINPUTBUFFER)(void *encoder, NV_ENC_LOCK_INPUT_BUFFER *lockInputBufferParams);
typedef NVENCSTATUS (*PNVENCUNLOCKINPUTBUFFER)(void *encoder, NV_ENC_INPUT_PTR inputBuffer);
typedef NVENCSTATUS (*PNVENCGETENCODESTATS)(void *encoder, NV_ENC_STAT *encodeStats);
typedef NVENCSTATUS (*PNVENCGETSEQUENCEPARAMS)(void *encoder, NV_ENC_SEQUENCE_PARAM_PAYLOAD *sequenceParamPayload);
typedef NVENCSTATUS (*PNVENCREGISTERASYNCEVENT)(void *encoder, NV_ENC_EVENT_PARAMS *eventParams);
typedef NVENCSTATUS (*PNVENCUNREGISTERASYNCEVENT)(void *encoder, NV_ENC_EVENT_PARAMS *eventParams);
typedef NVENCSTATUS (*PNVENCMAPINPUTRESOURCE)(void *encoder, NV_ENC_MAP_INPUT_RESOURCE *mapInputResParams);
typedef NVENCSTATUS (*PNVENCUNMAPINPUTRESOURCE)(void *encoder, NV_ENC_INPUT_PTR mappedInputBuffer);
typedef NVENCSTATUS (*PNVENCDESTROYENCODER)(void *encoder);
typedef NVENCSTATUS (*PNVENCINVALIDATEREFFRAMES)(void *encoder, uint64_t invalidRefFrameTimeStamp);
typedef NVENCSTATUS (*PNVENCOPENENCODESESSIONEX)(NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS *openSessionExParams, void **encoder);
typedef NVENCSTATUS (*PNVENCREGISTERRESOURCE)(void *encoder, NV_ENC_REGISTER_RESOURCE *registerResParams);
typedef NVENCSTATUS (*PNVENCUNREGISTERRESOURCE)(void *encoder, NV_ENC_REGISTERED_PTR registeredRes);
typedef NVENCSTATUS (*PNVENCRECONFIGUREENCODER)(void *encoder, NV_ENC_RECONFIGURE_PARAMS *reInitEncodeParams);
typedef NVENCSTATUS (*PNVENCCREATEMVBUFFER)(void *encoder, NV_ENC_CREATE_MV_BUFFER *createMVBufferParams);
typedef NVENCSTATUS (*PNVENCDESTROYMVBUFFER)(void *encoder, NV_ENC_OUTPUT_PTR mvBuffer);
typedef NVENCSTATUS (*PNVENCRUNMOTIONESTIMATIONONLY)(void *encoder, NV_ENC_MEONLY_PARAMS *meOnlyParams);
typedef const char *(*PNVENCGETLASTERROR)(void *encoder);
typedef NVENCSTATUS (*PNVENCSETIOCUDASTREAMS)(void *encoder, NV_ENC_CUSTREAM_PTR inputStream, NV_ENC_CUSTREAM_PTR outputStream);
typedef NVENCSTATUS (*PNVENCGETSEQUENCEPARAMEX)(void *encoder, NV_ENC_INITIALIZE_PARAMS *encInitParams, NV_ENC_SEQUENCE_PARAM_PAYLOAD *sequenceParamPayload);
typedef NVENCSTATUS (*PNVENCRESTOREENCODERSTATE)(void *encoder, NV_ENC_RESTORE_ENCODER_STATE_PARAMS *restoreState);
typedef NVENCSTATUS (*PNVENCLOOKAHEADPICTURE)(void *encoder, NV_ENC_LOOKAHEAD_PIC_PARAMS *lookaheadParams);

/* NB: the header types the profile-GUID slots with the preset-count/GUID pointer
 * types; we mirror that exactly (the ABI check compares the field types). */
typedef struct _NV_ENCODE_API_FUNCTION_LIST {
    uint32_t                      version;
    uint32_t                      reserved;
    PNVENCOPENENCODESESSION       nvEncOpenEncodeSession;
    PNVENCGETENCODEGUIDCOUNT      nvEncGetEncodeGUIDCount;
    PNVENCGETENCODEPRESETCOUNT    nvEncGetEncodeProfileGUIDCount;
    PNVENCGETENCODEPRESETGUIDS    nvEncGetEncodeProfileGUIDs;
    PNVENCGETENCODEGUIDS          nvEncGetEncodeGUIDs;
    PNVENCGETINPUTFORMATCOUNT     nvEncGetInputFormatCount;
    PNVENCGETINPUTFORMATS         nvEncGetInputFormats;
    PNVENCGETENCODECAPS           nvEncGetEncodeCaps;
    PNVENCGETENCODEPRESETCOUNT    nvEncGetEncodePresetCount;
    PNVENCGETENCODEPRESETGUIDS    nvEncGetEncodePresetGUIDs;
    PNVENCGETENCODEPRESETCONFIG   nvEncGetEncodePresetConfig;
    PNVENCINITIALIZEENCODER       nvEncInitializeEncoder;
    PNVENCCREATEINPUTBUFFER       nvEncCreateInputBuffer;
    PNVENCDESTROYINPUTBUFFER      nvEncDestroyInputBuffer;
    PNVENCCREATEBITSTREAMBUFFER   nvEncCreateBitstreamBuffer;
    PNVENCDESTROYBITSTREAMBUFFER  nvEncDestroyBitstreamBuffer;
    PNVENCENCODEPICTURE           nvEncEncodePicture;
    PNVENCLOCKBITSTREAM           nvEncLockBitstream;
    PNVENCUNLOCKBITSTREAM         nvEncUnlockBitstream;
    PNVENCLOCKINPUTBUFFER         nvEncLockInputBuffer;
    PNVENCUNLOCKINPUTBUFFER       nvEncUnlockInputBuffer;
    PNVENCGETENCODESTATS          nvEncGetEncodeStats;
    PNVENCGETSEQUENCEPARAMS       nvEncGetSequenceParams;
    PNVENCREGISTERASYNCEVENT      nvEncRegisterAsyncEvent;
    PNVENCUNREGISTERASYNCEVENT    nvEncUnregisterAsyncEvent;
    PNVENCMAPINPUTRESOURCE        nvEncMapInputResource;
    PNVENCUNMAPINPUTRESOURCE      nvEncUnmapInputResource;
    PNVENCDESTROYENCODER          nvEncDestroyEncoder;
    PNVENCINVALIDATEREFFRAMES     nvEncInvalidateRefFrames;
    PNVENCOPENENCODESESSIONEX     nvEncOpenEncodeSessionEx;
    PNVENCREGISTERRESOURCE        nvEncRegisterResource;
    PNVENCUNREGISTERRESOURCE      nvEncUnregisterResource;
    PNVENCRECONFIGUREENCODER      nvEncReconfigureEncoder;
    void                         *reserved1;
    PNVENCCREATEMVBUFFER          nvEncCreateMVBuffer;
    PNVENCDESTROYMVBUFFER         nvEncDestroyMVBuffer;
    PNVENCRUNMOTIONESTIMATIONONLY nvEncRunMotionEstimationOnly;
    PNVENCGETLASTERROR            nvEncGetLastErrorString;
    PNVENCSETIOCUDASTREAMS        nvEncSetIOCudaStreams;
    PNVENCGETENCODEPRESETCONFIGEX nvEncGetEncodePresetConfigEx;
    PNVENCGETSEQUENCEPARAMEX      nvEncGetSequenceParamEx;
    PNVENCRESTOREENCODERSTATE     nvEncRestoreEncoderState;
    PNVENCLOOKAHEADPICTURE        nvEncLookaheadPicture;
    void                         *reserved2[275];
} NV_ENCODE_API_FUNCTION_LIST;

/* ------------------------------------------- the library's exported entry points */

NVENCSTATUS NvEncodeAPIGetMaxSupportedVersion(uint32_t *version);
NVENCSTATUS NvEncodeAPICreateInstance(NV_ENCODE_API_FUNCTION_LIST *functionList);
