/*
 * Reading input surfaces that may live in CUDA device memory.
 *
 * On the GPU machine the binding registers real device pointers (CuPy arrays);
 * in CI there is no libcuda and the tests register host addresses. libcuda is
 * opened lazily with dlopen and only the few entry points used here are
 * declared (their prototypes are stable parts of the CUDA driver API). A
 * pointer that libcuda does not know, or any pointer in a process that never
 * initialised CUDA, is host memory and is read directly.
 *
 * The library handle is process-global and deliberately never closed: the
 * driver library does not support being unloaded while contexts exist.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "emu.h"

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
typedef void *CUcontext;

enum {
    CUDA_SUCCESS = 0,
    CU_POINTER_ATTRIBUTE_CONTEXT = 1,
    CU_POINTER_ATTRIBUTE_MEMORY_TYPE = 2,
    CU_POINTER_ATTRIBUTE_BUFFER_ID = 7,
    CU_POINTER_ATTRIBUTE_IS_MANAGED = 8,
    CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL = 9,
    CU_POINTER_ATTRIBUTE_RANGE_START_ADDR = 11,
    CU_POINTER_ATTRIBUTE_RANGE_SIZE = 12,
    CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE = 17,
    CU_MEMORYTYPE_HOST = 1,
    CU_MEMORYTYPE_DEVICE = 2,
    CU_MEMORYTYPE_ARRAY = 3,
    CU_MEMORYTYPE_UNIFIED = 4,
};

static struct {
    pthread_once_t once;
    void *lib;
    CUresult (*pointer_get_attribute)(void *data, int attribute, CUdeviceptr ptr);
    CUresult (*memcpy_dtoh)(void *dst, CUdeviceptr src, size_t n);
    CUresult (*ctx_push)(CUcontext ctx);
    CUresult (*ctx_pop)(CUcontext *ctx);
    CUresult (*get_error_string)(CUresult error, const char **str);
    CUresult (*ctx_get_device)(int *device);
} cu = { PTHREAD_ONCE_INIT, NULL, NULL, NULL, NULL, NULL, NULL, NULL };

static void *sym(const char *name)
{
    return cu.lib ? dlsym(cu.lib, name) : NULL;
}

static void cuda_load(void)
{
    cu.lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!cu.lib)
        return;
    *(void **)&cu.pointer_get_attribute = sym("cuPointerGetAttribute");
    *(void **)&cu.memcpy_dtoh = sym("cuMemcpyDtoH_v2");
    *(void **)&cu.ctx_push = sym("cuCtxPushCurrent_v2");
    *(void **)&cu.ctx_pop = sym("cuCtxPopCurrent_v2");
    *(void **)&cu.get_error_string = sym("cuGetErrorString");
    *(void **)&cu.ctx_get_device = sym("cuCtxGetDevice");
    if (!cu.pointer_get_attribute || !cu.memcpy_dtoh || !cu.ctx_push || !cu.ctx_pop)
        cu.pointer_get_attribute = NULL; /* unusable: treat all memory as host */
}

int cuda_is_device_pointer(const void *ptr)
{
    pthread_once(&cu.once, cuda_load);
    if (!cu.pointer_get_attribute)
        return 0;
    unsigned int type = 0;
    CUresult rc = cu.pointer_get_attribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)(uintptr_t)ptr);
    if (rc != CUDA_SUCCESS) /* not initialised, or not a CUDA allocation: host memory */
        return 0;
    return type == CU_MEMORYTYPE_DEVICE || type == CU_MEMORYTYPE_UNIFIED || type == CU_MEMORYTYPE_ARRAY;
}

int cuda_describe_pointer(const void *ptr, emu_ptr_desc *out)
{
    pthread_once(&cu.once, cuda_load);
    if (!cu.pointer_get_attribute)
        return 0;
    CUdeviceptr p = (CUdeviceptr)(uintptr_t)ptr;
    unsigned int type = 0;
    if (cu.pointer_get_attribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, p) != CUDA_SUCCESS)
        return 0; /* not initialised, or an address CUDA does not know */
    emu_ptr_desc d = { 0 };
    unsigned int managed = 0;
    cu.pointer_get_attribute(&managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, p);
    d.kind = managed ? PTR_MANAGED : type == CU_MEMORYTYPE_HOST ? PTR_HOST : PTR_DEVICE;
    int ordinal = -1;
    if (cu.pointer_get_attribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, p) == CUDA_SUCCESS)
        d.device = ordinal;
    CUcontext ctx = NULL;
    if (cu.pointer_get_attribute(&ctx, CU_POINTER_ATTRIBUTE_CONTEXT, p) == CUDA_SUCCESS)
        d.context = (uint64_t)(uintptr_t)ctx;
    void *pool = NULL; /* drivers before CUDA 11.3 do not know the attribute: no pools there */
    if (cu.pointer_get_attribute(&pool, CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE, p) == CUDA_SUCCESS)
        d.mempool = pool != NULL;
    unsigned long long id = 0;
    if (cu.pointer_get_attribute(&id, CU_POINTER_ATTRIBUTE_BUFFER_ID, p) == CUDA_SUCCESS)
        d.buffer_id = id;
    CUdeviceptr start = 0;
    size_t size = 0;
    if (cu.pointer_get_attribute(&start, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, p) == CUDA_SUCCESS &&
        cu.pointer_get_attribute(&size, CU_POINTER_ATTRIBUTE_RANGE_SIZE, p) == CUDA_SUCCESS) {
        d.start = start;
        d.size = size;
    }
    if (d.kind == PTR_HOST && !d.size)
        return 0; /* pageable memory the driver can see (HMM) but did not allocate: not judged */
    *out = d;
    return 1;
}

int cuda_context_device(void *ctx, int *ordinal)
{
    pthread_once(&cu.once, cuda_load);
    if (!cu.pointer_get_attribute || !cu.ctx_get_device || !ctx || cu.ctx_push(ctx) != CUDA_SUCCESS)
        return -1;
    int dev = -1;
    CUresult rc = cu.ctx_get_device(&dev);
    CUcontext popped;
    cu.ctx_pop(&popped);
    if (rc != CUDA_SUCCESS)
        return -1;
    *ordinal = dev;
    return 0;
}

int cuda_copy_to_host(void *ctx, void *dst, const void *src, size_t n, char *err, size_t errcap)
{
    pthread_once(&cu.once, cuda_load);
    if (!cu.pointer_get_attribute) {
        snprintf(err, errcap, "libcuda.so.1 is not available to read device memory");
        return -1;
    }
    CUresult rc;
    if (ctx && (rc = cu.ctx_push(ctx)) != CUDA_SUCCESS) {
        snprintf(err, errcap, "cuCtxPushCurrent(%p) failed with CUresult %d", ctx, rc);
        return rc;
    }
    rc = cu.memcpy_dtoh(dst, (CUdeviceptr)(uintptr_t)src, n);
    if (ctx) {
        CUcontext popped;
        cu.ctx_pop(&popped);
    }
    if (rc != CUDA_SUCCESS) {
        const char *text = "unknown error";
        if (cu.get_error_string)
            cu.get_error_string(rc, &text);
        snprintf(err, errcap, "cuMemcpyDtoH(%zu bytes from %p) failed with CUresult %d (%s)", n, src, rc, text);
        return rc;
    }
    return 0;
}
