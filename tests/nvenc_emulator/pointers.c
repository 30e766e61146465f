/*
 * What memory nvEncRegisterResource accepts, and whether a registration still
 * describes the allocation it was made for.
 *
 * A real driver registers NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR memory only when
 * it is device memory of the session's device and context, and not memory of a
 * stream-ordered pool (cuMemAllocAsync): docs/nvenc_emulator.md cites where each
 * refusal is reported. The questions are the driver's cuPointerGetAttribute
 * questions; on a machine with libcuda they are asked for real, and in CI a test
 * answers them through a table of described ranges (emu_describe_pointer), which
 * also wins on a GPU machine so that tests can stage what the hardware cannot.
 * An address nobody describes is accepted as device memory of the session's device,
 * so CI's host addresses keep working.
 */
#include <string.h>

#include "emu.h"

static int find_range(uint64_t addr)
{
    for (int i = 0; i < g_emu.npointers; i++) {
        const emu_ptr_desc *d = &g_emu.pointers[i];
        if (addr >= d->start && addr - d->start < d->size)
            return i;
    }
    return -1;
}

int pointer_lookup(const void *ptr, emu_ptr_desc *out)
{
    int i = find_range((uint64_t)(uintptr_t)ptr);
    if (i >= 0) {
        *out = g_emu.pointers[i];
        return 1;
    }
    return cuda_describe_pointer(ptr, out);
}

static const char *kind_name(int kind)
{
    return kind == PTR_HOST ? "host" : kind == PTR_MANAGED ? "managed" : "device";
}

/* The context and device a session's memory must belong to. */
static void session_identity(const emu_session *s, uint64_t *ctx, int *device)
{
    *ctx = g_emu.session_context_set ? g_emu.session_context : (uint64_t)(uintptr_t)s->device;
    *device = g_emu.session_device;
    int ordinal;
    if (!g_emu.session_context_set && cuda_context_device(s->device, &ordinal) == 0)
        *device = ordinal;
}

NVENCSTATUS pointer_check_registration(emu_session *s, emu_resource *r)
{
    emu_ptr_desc d;
    if (!pointer_lookup(r->ptr, &d))
        return NV_ENC_SUCCESS;
    uint64_t ctx;
    int device;
    session_identity(s, &ctx, &device);
    if (d.kind == PTR_HOST)
        return api_fail(s, NV_ENC_ERR_RESOURCE_REGISTER_FAILED,
                        "resourceToRegister %p is host memory (CU_MEMORYTYPE_HOST); "
                        "NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR needs device memory (cuMemAlloc/cuMemAllocPitch)",
                        r->ptr);
    if (d.mempool)
        return api_fail(s, NV_ENC_ERR_RESOURCE_REGISTER_FAILED,
                        "resourceToRegister %p is stream-ordered pool memory (cuMemAllocAsync/cudaMallocAsync: "
                        "CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE is set), which cannot be registered; copy it into a "
                        "cuMemAlloc'd surface",
                        r->ptr);
    if (d.device != device)
        return api_fail(s, NV_ENC_ERR_RESOURCE_REGISTER_FAILED,
                        "resourceToRegister %p is %s memory of device %d; this session's context is on device %d",
                        r->ptr, kind_name(d.kind), d.device, device);
    if (d.context && d.context != ctx)
        return api_fail(s, NV_ENC_ERR_RESOURCE_REGISTER_FAILED,
                        "resourceToRegister %p belongs to CUDA context 0x%llx; this session was opened with context 0x%llx",
                        r->ptr, (unsigned long long)d.context, (unsigned long long)ctx);
    r->described = 1;
    r->alloc = d;
    return NV_ENC_SUCCESS;
}

void pointer_check_stale(emu_resource *r)
{
    if (!r->described || r->stale_counted)
        return;
    emu_ptr_desc now;
    if (pointer_lookup(r->ptr, &now) && now.buffer_id == r->alloc.buffer_id && now.start == r->alloc.start &&
        now.size == r->alloc.size)
        return;
    r->stale_counted = 1;
    g_emu.totals.stale_registrations++;
}

/* ------------------------------------------------------------ test control */

/* Describes [ptr, ptr + size) as cuPointerGetAttribute would; a range overlapping an
 * earlier one replaces it (the old allocation was freed). 0, or -1 when the table is
 * full or the arguments are invalid. */
EMU_EXPORT int emu_describe_pointer(uint64_t ptr, uint64_t size, int kind, int device, uint64_t context,
                                    int mempool, uint64_t buffer_id)
{
    if (size == 0 || ptr + size < ptr || kind < PTR_DEVICE || kind > PTR_MANAGED)
        return -1;
    pthread_mutex_lock(&g_emu.lock);
    int k = 0;
    for (int i = 0; i < g_emu.npointers; i++) {
        const emu_ptr_desc *d = &g_emu.pointers[i];
        if (ptr < d->start + d->size && d->start < ptr + size)
            continue; /* overlapped: dropped */
        g_emu.pointers[k++] = *d;
    }
    g_emu.npointers = k;
    int rc = -1;
    if (k < EMU_MAX_POINTERS) {
        g_emu.pointers[g_emu.npointers++] = (emu_ptr_desc){ ptr, size, kind, device, context, mempool != 0, buffer_id };
        rc = 0;
    }
    pthread_mutex_unlock(&g_emu.lock);
    return rc;
}

/* Removes the described range containing `ptr` (its memory was freed); 0, or -1 if none. */
EMU_EXPORT int emu_forget_pointer(uint64_t ptr)
{
    pthread_mutex_lock(&g_emu.lock);
    int i = find_range(ptr);
    if (i >= 0)
        g_emu.pointers[i] = g_emu.pointers[--g_emu.npointers];
    pthread_mutex_unlock(&g_emu.lock);
    return i >= 0 ? 0 : -1;
}

/* What the emulator believes about `ptr`: kind, device, context, mempool, buffer_id,
 * start, size into `out`; returns 1, or 0 when nothing describes it. */
EMU_EXPORT int emu_pointer_info(uint64_t ptr, int64_t *out)
{
    pthread_mutex_lock(&g_emu.lock);
    emu_ptr_desc d;
    int known = pointer_lookup((const void *)(uintptr_t)ptr, &d);
    pthread_mutex_unlock(&g_emu.lock);
    if (known) {
        int64_t v[7] = { d.kind, d.device, (int64_t)d.context, d.mempool, (int64_t)d.buffer_id,
                         (int64_t)d.start, (int64_t)d.size };
        memcpy(out, v, sizeof v);
    }
    return known;
}

/* The context (and device ordinal) that registered memory must belong to, instead of
 * the `device` each session was opened with; `set` 0 goes back to that. */
EMU_EXPORT void emu_set_session_context(uint64_t context, int set, int device)
{
    pthread_mutex_lock(&g_emu.lock);
    g_emu.session_context_set = set != 0;
    g_emu.session_context = set ? context : 0;
    g_emu.session_device = device;
    pthread_mutex_unlock(&g_emu.lock);
}
