/* The dialect every h264_cuda kernel is written in: CUDA that is also plain C.
 *
 * On the GPU, NVRTC compiles the sources as CUDA C++ (CuPy RawModule). In the test
 * suite, a C compiler builds the same sources for the CPU, and a launcher runs every
 * thread of a grid one after another (tests/support/kernels_cpu.py), so CI checks the
 * kernels bit for bit against the golden model without a GPU. That only holds if no
 * thread of a launch depends on another thread of the same launch, hence the rules:
 *
 * - no shared memory and no __syncthreads (left undefined on the CPU: a compile error);
 *   a step that needs the results of other threads is a separate launch;
 * - atomics only where the result does not depend on the order of the threads
 *   (counters, sums, maxima);
 * - the common subset of C11 and C++17: fixed-width types from this header, no
 *   templates, no classes, no implicit void* conversions, casts written out;
 * - each kernel is declared on one line as `KERNEL name(params)`; both launchers read
 *   the parameter types from that line (i32, u32, i64 scalars; pointers to arrays).
 */
#ifndef RFB_H264CUDA_PORTABLE_H
#define RFB_H264CUDA_PORTABLE_H

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef short i16;
typedef int i32;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;

#ifdef __CUDACC_RTC__
#define KERNEL extern "C" __global__ void
#define DEVICE __device__ static inline
#define CONSTANT __constant__ static const
#else /* the CPU build of the test suite */
#define KERNEL void
#define DEVICE static inline
#define CONSTANT static const
typedef struct { u32 x, y, z; } rfb_dim3;
extern rfb_dim3 threadIdx, blockIdx, blockDim, gridDim;
DEVICE i32 atomicAdd(i32 *address, i32 value) { i32 old = *address; *address = old + value; return old; }
DEVICE u32 atomicOr(u32 *address, u32 value) { u32 old = *address; *address = old | value; return old; }
DEVICE i32 atomicMax(i32 *address, i32 value) { i32 old = *address; if (value > old) *address = value; return old; }
#endif

DEVICE i32 imin(i32 a, i32 b) { return a < b ? a : b; }
DEVICE i32 imax(i32 a, i32 b) { return a > b ? a : b; }
DEVICE i32 iclamp(i32 v, i32 lo, i32 hi) { return v < lo ? lo : (v > hi ? hi : v); }
DEVICE i32 iabs(i32 v) { return v < 0 ? -v : v; }

/* The index of this thread in a one-dimensional launch. */
DEVICE i32 global_index(void) { return (i32)(blockIdx.x * blockDim.x + threadIdx.x); }

#endif
