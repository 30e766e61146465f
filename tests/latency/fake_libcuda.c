/*
 * A stand-in libcuda.so.1 for machines without an NVIDIA driver (CI), so that FFmpeg's
 * h264_nvenc can open a session against the NVENC emulator and encode HOST frames.
 *
 * FFmpeg loads libcuda before libnvidia-encode (its dynlink loader resolves about sixty
 * driver symbols and fails if any is missing), checks the device's compute capability,
 * creates a context, and pushes/pops it around every NVENC call. For host frames it never
 * touches device memory: nvEncCreateInputBuffer/LockInputBuffer hand it host memory.
 *
 * So this library answers exactly that much: one device ("rfb fake CUDA device", compute
 * capability 8.9), contexts that are opaque tokens, and a current-context stack. Every
 * other entry point exists only so that the loader succeeds, and returns
 * CUDA_ERROR_NOT_SUPPORTED: anything that needs a real GPU fails loudly instead of
 * pretending. It deliberately has no cuPointerGetAttribute, so the emulator treats all
 * memory as host memory. Test infrastructure only; never on a machine with a driver.
 */
#include <stdio.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;

enum { CUDA_SUCCESS = 0, CUDA_ERROR_INVALID_VALUE = 1, CUDA_ERROR_INVALID_CONTEXT = 201,
       CUDA_ERROR_INVALID_DEVICE = 101, CUDA_ERROR_NOT_SUPPORTED = 801 };

static char context_token; /* the one context's handle: its address */
static CUcontext stack[64];
static int depth;

EXPORT CUresult cuInit(unsigned int flags) { return flags == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE; }
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
    snprintf(name, (size_t)len, "rfb fake CUDA device (no GPU)");
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceComputeCapability(int *major, int *minor, CUdevice device)
{
    (void)device;
    *major = 8;
    *minor = 9;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetAttribute(int *value, int attribute, CUdevice device)
{
    (void)attribute;
    (void)device;
    *value = 0;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxCreate_v2(CUcontext *ctx, unsigned int flags, CUdevice device)
{
    (void)flags;
    (void)device;
    *ctx = &context_token;
    if (depth < 64)
        stack[depth++] = *ctx;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxDestroy_v2(CUcontext ctx) { return ctx == &context_token ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT; }

EXPORT CUresult cuCtxPushCurrent_v2(CUcontext ctx)
{
    if (ctx != &context_token || depth == 64)
        return CUDA_ERROR_INVALID_CONTEXT;
    stack[depth++] = ctx;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxPopCurrent_v2(CUcontext *ctx)
{
    if (depth == 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    CUcontext top = stack[--depth];
    if (ctx)
        *ctx = top;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxGetCurrent(CUcontext *ctx)
{
    *ctx = depth ? stack[depth - 1] : NULL;
    return CUDA_SUCCESS;
}

/* The device's primary context: the same token, reference counted, with its flags. */
static unsigned int primary_flags;
static int primary_refs;

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

EXPORT CUresult cuDevicePrimaryCtxRelease(CUdevice device)
{
    return cuDevicePrimaryCtxRelease_v2(device);
}

EXPORT CUresult cuCtxGetDevice(CUdevice *device)
{
    if (depth == 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    *device = 0;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuGetErrorName(CUresult error, const char **text)
{
    *text = error == CUDA_ERROR_NOT_SUPPORTED ? "CUDA_ERROR_NOT_SUPPORTED" : "CUDA_ERROR (fake libcuda)";
    return CUDA_SUCCESS;
}

EXPORT CUresult cuGetErrorString(CUresult error, const char **text)
{
    *text = error == CUDA_ERROR_NOT_SUPPORTED ? "not supported by the fake libcuda (there is no GPU)"
                                              : "error (fake libcuda)";
    return CUDA_SUCCESS;
}

/* Present for the loader, refused when called. */
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
UNSUPPORTED(cuMemcpyDtoH_v2)
UNSUPPORTED(cuMemcpyDtoHAsync_v2)
UNSUPPORTED(cuMemcpyDtoD_v2)
UNSUPPORTED(cuMemcpyDtoDAsync_v2)
UNSUPPORTED(cuStreamCreate)
UNSUPPORTED(cuStreamQuery)
UNSUPPORTED(cuStreamSynchronize)
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
