/*
 * A stand-in libcuda.so.1 for measuring and testing nvencffi's per-frame CUDA calls on a
 * machine without an NVIDIA driver (CI, the development VM).
 *
 * nvencffi's PrimaryContext reaches libcuda two ways: cuda-python (cuda.bindings.driver,
 * which resolves every entry point through cuGetProcAddress_v2) for setup, and its own
 * cffi binding for the per-frame calls. This library answers both, with the few entry
 * points they use: one device, its primary context as an opaque token, a per-thread
 * current-context stack, cuPointerGetAttribute(s) for ONE described range
 * (standin_describe), and a cuStreamSynchronize that only counts. Every entry point
 * counts its calls (standin_calls), so a test can assert how many calls a frame costs.
 *
 * The NVENC emulator dlopen()s libcuda.so.1 too. To keep it reading host memory, the
 * singular cuPointerGetAttribute answers only CU_POINTER_ATTRIBUTE_BUFFER_ID (the
 * binding's per-frame question); the emulator's first question, the memory type, gets
 * CUDA_ERROR_INVALID_VALUE, which it reads as "host memory", as with no libcuda at all.
 * cuPointerGetAttributes (plural, the binding's once-per-allocation query) describes the
 * range as device memory of device 0 in the primary context.
 *
 * Test infrastructure only; never on a machine with a driver.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;
typedef void *CUstream;
typedef unsigned long long CUdeviceptr;

enum {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_NOT_INITIALIZED = 3,
    CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_INVALID_CONTEXT = 201,
    CUDA_ERROR_NOT_FOUND = 500,
    CUDA_ERROR_NOT_SUPPORTED = 801,
};
enum {
    ATTR_CONTEXT = 1,
    ATTR_MEMORY_TYPE = 2,
    ATTR_BUFFER_ID = 7,
    ATTR_DEVICE_ORDINAL = 9,
    ATTR_RANGE_START_ADDR = 11,
    ATTR_RANGE_SIZE = 12,
    ATTR_MEMPOOL_HANDLE = 17,
};

static char primary_token; /* the primary context's handle: its address */
static int initialised, primary_refs;
static _Thread_local CUcontext stack[64];
static _Thread_local int depth;
static CUdeviceptr range_start, range_size;
static unsigned long long range_id;

enum { C_PUSH, C_POP, C_GET_CURRENT, C_POINTER_ATTRIBUTE, C_POINTER_ATTRIBUTES, C_STREAM_SYNC, C_COUNT };
static const char *const call_names[C_COUNT] = {
    "cuCtxPushCurrent", "cuCtxPopCurrent", "cuCtxGetCurrent",
    "cuPointerGetAttribute", "cuPointerGetAttributes", "cuStreamSynchronize",
};
static unsigned long long calls[C_COUNT];

/* Control: describe [start, start + size) as one allocation with id `buffer_id` (size 0: none). */
EXPORT void standin_describe(CUdeviceptr start, CUdeviceptr size, unsigned long long buffer_id)
{
    range_start = start;
    range_size = size;
    range_id = buffer_id;
}

/* Control: how often `name` was called (-1: unknown name); standin_reset_calls zeroes all. */
EXPORT long long standin_calls(const char *name)
{
    for (int i = 0; i < C_COUNT; i++)
        if (strcmp(name, call_names[i]) == 0)
            return (long long)calls[i];
    return -1;
}

EXPORT void standin_reset_calls(void) { memset(calls, 0, sizeof calls); }

EXPORT CUresult cuInit(unsigned int flags)
{
    if (flags)
        return CUDA_ERROR_INVALID_VALUE;
    initialised = 1;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDriverGetVersion(int *version) { *version = 13000; return CUDA_SUCCESS; }
EXPORT CUresult cuDeviceGetCount(int *count) { *count = 1; return CUDA_SUCCESS; }

EXPORT CUresult cuDeviceGet(CUdevice *device, int ordinal)
{
    if (ordinal != 0)
        return CUDA_ERROR_INVALID_DEVICE;
    *device = 0;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetName(char *name, int len, CUdevice device)
{
    (void)device;
    snprintf(name, (size_t)len, "rfb stand-in CUDA device (no GPU)");
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice device)
{
    if (device != 0)
        return CUDA_ERROR_INVALID_DEVICE;
    if (!initialised)
        return CUDA_ERROR_NOT_INITIALIZED;
    primary_refs++;
    *ctx = &primary_token;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice device)
{
    if (device != 0 || primary_refs == 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    primary_refs--;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxPushCurrent_v2(CUcontext ctx)
{
    calls[C_PUSH]++;
    if (ctx != &primary_token || depth == 64)
        return CUDA_ERROR_INVALID_CONTEXT;
    stack[depth++] = ctx;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxPopCurrent_v2(CUcontext *ctx)
{
    calls[C_POP]++;
    if (depth == 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    CUcontext top = stack[--depth];
    if (ctx)
        *ctx = top;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxGetCurrent(CUcontext *ctx)
{
    calls[C_GET_CURRENT]++;
    *ctx = depth ? stack[depth - 1] : NULL;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxGetDevice(CUdevice *device)
{
    if (depth == 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    *device = 0;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamSynchronize(CUstream stream)
{
    (void)stream;
    calls[C_STREAM_SYNC]++;
    return depth ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}

static int described(CUdeviceptr ptr) { return range_size && ptr >= range_start && ptr - range_start < range_size; }

EXPORT CUresult cuPointerGetAttribute(void *data, int attribute, CUdeviceptr ptr)
{
    calls[C_POINTER_ATTRIBUTE]++;
    if (attribute != ATTR_BUFFER_ID || !described(ptr))
        return CUDA_ERROR_INVALID_VALUE; /* the emulator reads this as host memory */
    *(unsigned long long *)data = range_id;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuPointerGetAttributes(unsigned int count, const int *attributes, void **data, CUdeviceptr ptr)
{
    calls[C_POINTER_ATTRIBUTES]++;
    int known = described(ptr);
    for (unsigned int i = 0; i < count; i++) {
        switch (attributes[i]) {
        case ATTR_MEMORY_TYPE: *(unsigned int *)data[i] = known ? 2 : 0; break; /* CU_MEMORYTYPE_DEVICE */
        case ATTR_DEVICE_ORDINAL: *(int *)data[i] = known ? 0 : -2; break;
        case ATTR_CONTEXT: *(CUcontext *)data[i] = known ? &primary_token : NULL; break;
        case ATTR_MEMPOOL_HANDLE: *(void **)data[i] = NULL; break;
        case ATTR_BUFFER_ID: *(unsigned long long *)data[i] = known ? range_id : 0; break;
        case ATTR_RANGE_START_ADDR: *(CUdeviceptr *)data[i] = known ? range_start : 0; break;
        case ATTR_RANGE_SIZE: *(size_t *)data[i] = known ? (size_t)range_size : 0; break;
        default: return CUDA_ERROR_INVALID_VALUE;
        }
    }
    return CUDA_SUCCESS;
}

EXPORT CUresult cuGetErrorName(CUresult error, const char **text)
{
    *text = error == CUDA_ERROR_INVALID_VALUE     ? "CUDA_ERROR_INVALID_VALUE"
            : error == CUDA_ERROR_INVALID_CONTEXT ? "CUDA_ERROR_INVALID_CONTEXT"
            : error == CUDA_ERROR_NOT_SUPPORTED   ? "CUDA_ERROR_NOT_SUPPORTED"
                                                  : "CUDA_ERROR (stand-in libcuda)";
    return CUDA_SUCCESS;
}

EXPORT CUresult cuGetErrorString(CUresult error, const char **text) { return cuGetErrorName(error, text); }

/* The emulator wants it present before it uses libcuda at all; nothing here is device memory. */
EXPORT CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n)
{
    (void)dst;
    (void)src;
    (void)n;
    return CUDA_ERROR_NOT_SUPPORTED;
}

/* cuda-python resolves entry points by their base name ("cuCtxPushCurrent") through this. */
static const struct {
    const char *name;
    void *fn;
} table[] = {
    { "cuInit", (void *)cuInit },
    { "cuDriverGetVersion", (void *)cuDriverGetVersion },
    { "cuDeviceGetCount", (void *)cuDeviceGetCount },
    { "cuDeviceGet", (void *)cuDeviceGet },
    { "cuDeviceGetName", (void *)cuDeviceGetName },
    { "cuDevicePrimaryCtxRetain", (void *)cuDevicePrimaryCtxRetain },
    { "cuDevicePrimaryCtxRelease", (void *)cuDevicePrimaryCtxRelease_v2 },
    { "cuCtxPushCurrent", (void *)cuCtxPushCurrent_v2 },
    { "cuCtxPopCurrent", (void *)cuCtxPopCurrent_v2 },
    { "cuCtxGetCurrent", (void *)cuCtxGetCurrent },
    { "cuCtxGetDevice", (void *)cuCtxGetDevice },
    { "cuStreamSynchronize", (void *)cuStreamSynchronize },
    { "cuPointerGetAttribute", (void *)cuPointerGetAttribute },
    { "cuPointerGetAttributes", (void *)cuPointerGetAttributes },
    { "cuGetErrorName", (void *)cuGetErrorName },
    { "cuGetErrorString", (void *)cuGetErrorString },
    { "cuMemcpyDtoH", (void *)cuMemcpyDtoH_v2 },
};

EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int version, unsigned long long flags, int *status)
{
    (void)version;
    (void)flags;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(symbol, table[i].name) == 0) {
            *pfn = table[i].fn;
            if (status)
                *status = 0; /* CU_GET_PROC_ADDRESS_SUCCESS */
            return CUDA_SUCCESS;
        }
    }
    *pfn = NULL;
    if (status)
        *status = 1; /* CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND */
    return CUDA_ERROR_NOT_FOUND;
}
