/*
 * The test suite's stand-in libcuda.so.1, for machines without an NVIDIA driver (CI, the
 * development VM). Test infrastructure only; never on a machine with a driver.
 * Built by tests/support/standin_libcuda.py (linked -Bsymbolic: its own references never
 * bind to another libcuda in the process) and put first on a child process's
 * LD_LIBRARY_PATH (the dynamic loader reads it at process start). It has two users:
 *
 * - FFmpeg's h264_nvenc (PyAV) against the NVENC emulator (tests/latency,
 *   tests/encoders/pyav_on_the_emulator.py, tests/gpu/test_status.py). FFmpeg loads
 *   libcuda before libnvidia-encode; its dynlink loader dlsym()s about sixty driver
 *   symbols and fails if any is missing. It checks the device's compute capability,
 *   creates (or retains) a context and pushes/pops it around every NVENC call.
 * - nvencffi's PrimaryContext (tests/nvencffi/standin_calls.py, bench_overhead.py):
 *   cuda-python resolves every entry point through cuGetProcAddress_v2, and the
 *   binding's per-frame calls are counted (standin_calls) so that a test can assert
 *   how many a frame costs.
 *
 * What it answers, for both: one device ("rfb stand-in CUDA device", compute capability
 * 8.9); contexts, created or primary, that are one opaque token (its address), the
 * primary one reference counted with its flags; a per-thread current-context stack, as
 * the driver keeps; cuPointerGetAttribute(s) for ONE described range (standin_describe);
 * cuStreamSynchronize of the default streams. Everything that needs a GPU (memory,
 * copies, streams, events, kernels, modules, graphics interop) exists only so that
 * FFmpeg's loader succeeds, and returns CUDA_ERROR_NOT_SUPPORTED: it fails loudly
 * instead of pretending.
 *
 * Host memory for the NVENC emulator, which dlopen()s libcuda.so.1 too and reads a
 * surface as device memory only when cuPointerGetAttribute(CU_POINTER_ATTRIBUTE_MEMORY_TYPE)
 * says so: that question is never answered here (CUDA_ERROR_INVALID_VALUE, as the driver
 * says for memory it does not know), so every pointer, described or not, is host memory
 * to the emulator and it never calls cuMemcpyDtoH (refused here anyway). The singular
 * call answers only CU_POINTER_ATTRIBUTE_BUFFER_ID of the described range (the binding's
 * per-frame question); cuPointerGetAttributes (plural, the binding's once-per-allocation
 * query) describes the range as device memory of device 0 in the primary context.
 *
 * It replaced two stand-ins, one per user. Where they differed, one behaviour serves
 * both, so there is no mode:
 * - cuPointerGetAttribute: FFmpeg's stand-in had none (so the emulator found no usable
 *   libcuda and read host memory); here it exists but never answers the memory type,
 *   which the emulator reads the same way (above).
 * - The current-context stack is per thread, as the driver's (FFmpeg's stand-in had
 *   one for the process; FFmpeg pushes and pops on one thread, as a driver needs).
 * - cuStreamSynchronize (refused by FFmpeg's stand-in, never called by FFmpeg there)
 *   succeeds and counts for the NULL, legacy and per-thread default streams with a
 *   context current: no stream can be created and no work can be queued here, so there
 *   is nothing to wait for. Any other handle is CUDA_ERROR_INVALID_HANDLE, no current
 *   context CUDA_ERROR_INVALID_CONTEXT.
 * - cuGetProcAddress_v2 lets cuda-python bind in FFmpeg's processes too, so rfb's
 *   gpu_available() there sees the one device FFmpeg is told about (no test in those
 *   processes depends on it); every memory operation is still refused. The table holds,
 *   by base name, the entry points answered here whose signature is the same at every
 *   API version (not cuCtxCreate: CUDA 13's cuCtxCreate_v4 takes other arguments than
 *   cuCtxCreate_v2); any other name is "not found", which cuda-python raises as a
 *   RuntimeError when it is called: loud as well.
 *
 * The call counters are plain increments: exact for one thread at a time, which is how
 * the tests that read them call.
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
    CUDA_ERROR_INVALID_HANDLE = 400,
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
enum { STACK_MAX = 64 };
#define CU_STREAM_LEGACY ((CUstream)0x1)
#define CU_STREAM_PER_THREAD ((CUstream)0x2)

static char context_token; /* the one context's handle: its address */
static int initialised;
static unsigned int primary_flags;
static int primary_refs;
static _Thread_local CUcontext stack[STACK_MAX];
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

/* Control: how often `name` was called (-1: a name not counted); standin_reset_calls zeroes all. */
EXPORT long long standin_calls(const char *name)
{
    for (int i = 0; i < C_COUNT; i++)
        if (strcmp(name, call_names[i]) == 0)
            return (long long)calls[i];
    return -1;
}

EXPORT void standin_reset_calls(void) { memset(calls, 0, sizeof calls); }

/* ------------------------------------------------------------------ the device */

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
    if (device != 0)
        return CUDA_ERROR_INVALID_DEVICE;
    snprintf(name, (size_t)len, "rfb stand-in CUDA device (no GPU)");
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceComputeCapability(int *major, int *minor, CUdevice device)
{
    if (device != 0)
        return CUDA_ERROR_INVALID_DEVICE;
    *major = 8;
    *minor = 9;
    return CUDA_SUCCESS;
}

/* Every attribute is 0 (no feature, no limit): FFmpeg only reads a few to pick options. */
EXPORT CUresult cuDeviceGetAttribute(int *value, int attribute, CUdevice device)
{
    (void)attribute;
    if (device != 0)
        return CUDA_ERROR_INVALID_DEVICE;
    *value = 0;
    return CUDA_SUCCESS;
}

/* ----------------------------------------------------------------- contexts */

static CUresult push(CUcontext ctx)
{
    if (ctx != &context_token || depth == STACK_MAX)
        return CUDA_ERROR_INVALID_CONTEXT;
    stack[depth++] = ctx;
    return CUDA_SUCCESS;
}

/* A created context is the same token as the primary one, made current on this thread. */
EXPORT CUresult cuCtxCreate_v2(CUcontext *ctx, unsigned int flags, CUdevice device)
{
    (void)flags;
    if (device != 0)
        return CUDA_ERROR_INVALID_DEVICE;
    if (!initialised)
        return CUDA_ERROR_NOT_INITIALIZED;
    CUresult rc = push(&context_token);
    if (rc == CUDA_SUCCESS)
        *ctx = &context_token;
    return rc;
}

EXPORT CUresult cuCtxDestroy_v2(CUcontext ctx) { return ctx == &context_token ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT; }

EXPORT CUresult cuCtxPushCurrent_v2(CUcontext ctx)
{
    calls[C_PUSH]++;
    return push(ctx);
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

EXPORT CUresult cuDevicePrimaryCtxGetState(CUdevice device, unsigned int *flags, int *active)
{
    if (device != 0)
        return CUDA_ERROR_INVALID_DEVICE;
    *flags = primary_flags;
    *active = primary_refs > 0;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice device, unsigned int flags)
{
    if (device != 0)
        return CUDA_ERROR_INVALID_DEVICE;
    primary_flags = flags;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxSetFlags(CUdevice device, unsigned int flags)
{
    return cuDevicePrimaryCtxSetFlags_v2(device, flags);
}

EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice device)
{
    if (device != 0)
        return CUDA_ERROR_INVALID_DEVICE;
    if (!initialised)
        return CUDA_ERROR_NOT_INITIALIZED;
    primary_refs++;
    *ctx = &context_token;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice device)
{
    if (device != 0 || primary_refs == 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    primary_refs--;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxRelease(CUdevice device) { return cuDevicePrimaryCtxRelease_v2(device); }

/* ----------------------------------------------------- streams and pointers */

EXPORT CUresult cuStreamSynchronize(CUstream stream)
{
    calls[C_STREAM_SYNC]++;
    if (stream != NULL && stream != CU_STREAM_LEGACY && stream != CU_STREAM_PER_THREAD)
        return CUDA_ERROR_INVALID_HANDLE; /* cuStreamCreate is refused: no other stream exists */
    return depth ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}

static int described(CUdeviceptr ptr) { return range_size && ptr >= range_start && ptr - range_start < range_size; }

EXPORT CUresult cuPointerGetAttribute(void *data, int attribute, CUdeviceptr ptr)
{
    calls[C_POINTER_ATTRIBUTE]++;
    if (attribute != ATTR_BUFFER_ID || !described(ptr))
        return CUDA_ERROR_INVALID_VALUE; /* MEMORY_TYPE included: the emulator reads host memory */
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
        case ATTR_CONTEXT: *(CUcontext *)data[i] = known ? &context_token : NULL; break;
        case ATTR_MEMPOOL_HANDLE: *(void **)data[i] = NULL; break;
        case ATTR_BUFFER_ID: *(unsigned long long *)data[i] = known ? range_id : 0; break;
        case ATTR_RANGE_START_ADDR: *(CUdeviceptr *)data[i] = known ? range_start : 0; break;
        case ATTR_RANGE_SIZE: *(size_t *)data[i] = known ? (size_t)range_size : 0; break;
        default: return CUDA_ERROR_INVALID_VALUE;
        }
    }
    return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------ errors */

EXPORT CUresult cuGetErrorName(CUresult error, const char **text)
{
    switch (error) {
    case CUDA_SUCCESS: *text = "CUDA_SUCCESS"; break;
    case CUDA_ERROR_INVALID_VALUE: *text = "CUDA_ERROR_INVALID_VALUE"; break;
    case CUDA_ERROR_NOT_INITIALIZED: *text = "CUDA_ERROR_NOT_INITIALIZED"; break;
    case CUDA_ERROR_INVALID_DEVICE: *text = "CUDA_ERROR_INVALID_DEVICE"; break;
    case CUDA_ERROR_INVALID_CONTEXT: *text = "CUDA_ERROR_INVALID_CONTEXT"; break;
    case CUDA_ERROR_INVALID_HANDLE: *text = "CUDA_ERROR_INVALID_HANDLE"; break;
    case CUDA_ERROR_NOT_FOUND: *text = "CUDA_ERROR_NOT_FOUND"; break;
    case CUDA_ERROR_NOT_SUPPORTED: *text = "CUDA_ERROR_NOT_SUPPORTED"; break;
    default: *text = "CUDA_ERROR (stand-in libcuda)"; break;
    }
    return CUDA_SUCCESS;
}

EXPORT CUresult cuGetErrorString(CUresult error, const char **text)
{
    if (error == CUDA_ERROR_NOT_SUPPORTED) {
        *text = "not supported by the stand-in libcuda (there is no GPU)";
        return CUDA_SUCCESS;
    }
    return cuGetErrorName(error, text);
}

/* --------------------------------------- present for the loader, refused when called */

/* The emulator wants it present before it uses libcuda at all; nothing here is device memory. */
EXPORT CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n)
{
    (void)dst;
    (void)src;
    (void)n;
    return CUDA_ERROR_NOT_SUPPORTED;
}

#define UNSUPPORTED(name) EXPORT CUresult name(void) { return CUDA_ERROR_NOT_SUPPORTED; }

UNSUPPORTED(cuCtxSetLimit)
UNSUPPORTED(cuDevicePrimaryCtxReset)
UNSUPPORTED(cuMemAlloc_v2)
UNSUPPORTED(cuMemAllocPitch_v2)
UNSUPPORTED(cuMemAllocManaged)
UNSUPPORTED(cuMemsetD8Async)
UNSUPPORTED(cuMemFree_v2)
UNSUPPORTED(cuMemcpy)
UNSUPPORTED(cuMemcpyAsync)
UNSUPPORTED(cuMemcpy2D_v2)
UNSUPPORTED(cuMemcpy2DAsync_v2)
UNSUPPORTED(cuMemcpyHtoD_v2)
UNSUPPORTED(cuMemcpyHtoDAsync_v2)
UNSUPPORTED(cuMemcpyDtoHAsync_v2)
UNSUPPORTED(cuMemcpyDtoD_v2)
UNSUPPORTED(cuMemcpyDtoDAsync_v2)
UNSUPPORTED(cuStreamCreate)
UNSUPPORTED(cuStreamQuery)
UNSUPPORTED(cuStreamDestroy_v2)
UNSUPPORTED(cuStreamAddCallback)
UNSUPPORTED(cuStreamWaitEvent)
UNSUPPORTED(cuEventCreate)
UNSUPPORTED(cuEventDestroy_v2)
UNSUPPORTED(cuEventSynchronize)
UNSUPPORTED(cuEventQuery)
UNSUPPORTED(cuEventRecord)
UNSUPPORTED(cuLaunchKernel)
UNSUPPORTED(cuLinkCreate)
UNSUPPORTED(cuLinkAddData)
UNSUPPORTED(cuLinkComplete)
UNSUPPORTED(cuLinkDestroy)
UNSUPPORTED(cuModuleLoadData)
UNSUPPORTED(cuModuleUnload)
UNSUPPORTED(cuModuleGetFunction)
UNSUPPORTED(cuModuleGetGlobal)
UNSUPPORTED(cuTexObjectCreate)
UNSUPPORTED(cuTexObjectDestroy)
UNSUPPORTED(cuGLGetDevices_v2)
UNSUPPORTED(cuGraphicsGLRegisterImage)
UNSUPPORTED(cuGraphicsUnregisterResource)
UNSUPPORTED(cuGraphicsMapResources)
UNSUPPORTED(cuGraphicsUnmapResources)
UNSUPPORTED(cuGraphicsSubResourceGetMappedArray)
UNSUPPORTED(cuGraphicsResourceGetMappedPointer_v2)
UNSUPPORTED(cuArrayCreate_v2)
UNSUPPORTED(cuArray3DCreate_v2)
UNSUPPORTED(cuArrayDestroy)

/* ------------------------------------------------ cuda-python's way in */

static const struct {
    const char *name;
    void *fn;
} table[] = {
    { "cuInit", (void *)cuInit },
    { "cuDriverGetVersion", (void *)cuDriverGetVersion },
    { "cuDeviceGetCount", (void *)cuDeviceGetCount },
    { "cuDeviceGet", (void *)cuDeviceGet },
    { "cuDeviceGetName", (void *)cuDeviceGetName },
    { "cuDeviceGetAttribute", (void *)cuDeviceGetAttribute },
    { "cuDevicePrimaryCtxGetState", (void *)cuDevicePrimaryCtxGetState },
    { "cuDevicePrimaryCtxSetFlags", (void *)cuDevicePrimaryCtxSetFlags_v2 },
    { "cuDevicePrimaryCtxRetain", (void *)cuDevicePrimaryCtxRetain },
    { "cuDevicePrimaryCtxRelease", (void *)cuDevicePrimaryCtxRelease_v2 },
    { "cuCtxDestroy", (void *)cuCtxDestroy_v2 },
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
