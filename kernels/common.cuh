/*
 * common.cuh — internal helpers shared by the kernel files (not part of the
 * C ABI; cgo never sees this header).
 *
 *   - status/error reporting: samk::fail() records the thread-local detail
 *     message that samk_last_error() returns; samk::check_launch() turns
 *     cudaGetLastError() after a launch into SAMK_ERR_CUDA with
 *     "<op>: <cudaGetErrorName>: <cudaGetErrorString>";
 *   - element access: load/store of float and __nv_bfloat16 through fp32
 *     (all arithmetic is fp32; bf16 is a storage format only);
 *   - the exact-erf GELU and ReLU used by every fused activation;
 *   - grid sizing for grid-stride loops over int64 element counts.
 */
#ifndef SAMK_COMMON_CUH
#define SAMK_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "samkernels.h"

namespace samk {

/* ------------------------------------------------------------ status */

/* Records the detail message for samk_last_error() on this thread and
 * returns s (so launchers can `return fail(...)`). printf-style. */
samk_status fail(samk_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Clears the thread's detail message (a launcher that succeeds leaves it
 * empty) and discards a stale, non-sticky CUDA error left behind by an
 * earlier, unrelated runtime call on this thread (a failed cudaMalloc the Go
 * side already handled must not be reported as this op's launch failure;
 * sticky errors — a kernel fault — persist and are reported by the next
 * launch check anyway). Call it once at the top of every launcher, before
 * validation. */
void begin(void);

/* cudaGetLastError() after the launches of op: SAMK_OK, or SAMK_ERR_CUDA
 * with "<op>: <name>: <string>". */
samk_status check_launch(const char *op);

/* Records a CUDA runtime error e of op: "<op>: <name>: <string>". */
samk_status fail_cuda(const char *op, cudaError_t e);

/* Makes a launch of func with `bytes` of dynamic shared memory possible:
 * nothing below the 48 KB default; above it, fails with SAMK_ERR_UNSUPPORTED
 * when the device's cudaDevAttrMaxSharedMemoryPerBlockOptin is smaller, and
 * otherwise opts the kernel in (cudaFuncAttributeMaxDynamicSharedMemorySize)
 * to that device maximum — once per kernel and device, under a lock, so that
 * backends launching the same kernel from several threads (forks on one
 * device) never race on the attribute, and later launches make no attribute
 * call at all. Host-side calls only: no allocation, no synchronisation. */
samk_status ensure_dynamic_smem(const char *op, const void *func, size_t bytes);

/* Formats and records a cuBLAS status: "<op>: <what>: <status name>". */
samk_status fail_cublas(const char *op, const char *what, int cublas_status);

/* Validation shorthand: return fail(status, "<op>: " fmt) unless cond. */
#define SAMK_CHECK(cond, status, op, ...)                                                                              \
    do {                                                                                                               \
        if (!(cond)) return ::samk::fail_op((status), (op), __VA_ARGS__);                                              \
    } while (0)

samk_status fail_op(samk_status s, const char *op, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Bytes per element of a dtype, 0 when unknown. */
inline size_t dtype_size(samk_dtype t) {
    switch (t) {
    case SAMK_F32: return 4;
    case SAMK_BF16: return 2;
    }
    return 0;
}

inline bool dtype_valid(samk_dtype t) { return t == SAMK_F32 || t == SAMK_BF16; }
inline bool act_valid(samk_act a) { return a == SAMK_ACT_NONE || a == SAMK_ACT_GELU || a == SAMK_ACT_RELU; }

/* Whether p is aligned for elements of dtype t (NULL counts as aligned: the
 * null checks are separate). */
inline bool aligned_for(const void *p, samk_dtype t) {
    return (reinterpret_cast<uintptr_t>(p) % dtype_size(t)) == 0;
}

inline const char *dtype_name(samk_dtype t) {
    switch (t) {
    case SAMK_F32: return "f32";
    case SAMK_BF16: return "bf16";
    }
    return "?";
}

/* ------------------------------------------------------ element access */

typedef __nv_bfloat16 bf16;

__host__ __device__ __forceinline__ float to_f32(float x) { return x; }
/* bf16 → fp32 is exact: the bf16 bits are the upper half of the float's.
 * Written as a shift instead of cuda_bf16.h's __bfloat162float, whose device
 * path is inline PTX (`mov.b32 %f, {0,%rs}`) that the GPU simulator's PTX
 * parser rejects (../shared/gpusim/README.md); nvcc emits the same
 * instructions for both. */
__host__ __device__ __forceinline__ float to_f32(bf16 x) {
    const unsigned bits = unsigned(static_cast<__nv_bfloat16_raw>(x).x) << 16;
#if defined(__CUDA_ARCH__)
    return __uint_as_float(bits);
#else
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
#endif
}

template <typename T> __host__ __device__ __forceinline__ T from_f32(float x);
template <> __host__ __device__ __forceinline__ float from_f32<float>(float x) { return x; }
/* Round to nearest even (cuda_bf16.h's __float2bfloat16). */
template <> __host__ __device__ __forceinline__ bf16 from_f32<bf16>(float x) { return __float2bfloat16(x); }

/* The value x takes once stored as T (identity for float). */
template <typename T> __host__ __device__ __forceinline__ float round_to(float x) { return to_f32(from_f32<T>(x)); }

/* ----------------------------------------------------------- activation */

/* Exact GELU 0.5·x·(1 + erf(x/√2)) with erff (never the tanh form, never
 * fast-math), ReLU with NaN propagated as torch.relu. */
__host__ __device__ __forceinline__ float gelu_erf(float x) {
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
}
__host__ __device__ __forceinline__ float relu(float x) { return x < 0.0f ? 0.0f : x; }
__host__ __device__ __forceinline__ float apply_act(float x, int act) {
    if (act == SAMK_ACT_GELU) return gelu_erf(x);
    if (act == SAMK_ACT_RELU) return relu(x);
    return x;
}

/* -------------------------------------------------------------- grids */

constexpr int kThreads = 256;

/* Blocks for a grid-stride loop over n elements with kThreads per block:
 * enough to fill any current GPU many times over, capped well below the
 * 2^31−1 limit of gridDim.x. n ≥ 1. */
inline unsigned grid_for(int64_t n, int threads = kThreads) {
    int64_t blocks = (n + threads - 1) / threads;
    const int64_t cap = int64_t(1) << 20;
    if (blocks > cap) blocks = cap;
    if (blocks < 1) blocks = 1;
    return static_cast<unsigned>(blocks);
}

inline cudaStream_t as_stream(samk_stream s) { return static_cast<cudaStream_t>(s); }

/* Strided bias + activation over a batch of row-major (m, n) matrices with
 * row stride ldc and batch stride stride_c (elements):
 *   c[b, i, j] = act(c[b, i, j] + bias[j]). bias may be NULL.
 * Used by samk_bias_act (dense case) and by samk_gemm's epilogue. Launches
 * only; the caller checks the launch. */
samk_status launch_bias_act(samk_dtype dtype, void *c, const void *bias, int batch, int64_t m, int64_t n, int64_t ldc,
                            int64_t stride_c, samk_act act, cudaStream_t stream);

/* samk_gemm's parameter checks, shared by the cuBLASLt path and the
 * reference kernel: SAMK_OK with *empty set when there is nothing to do
 * (m, n or batch 0), else the first problem found. */
samk_status check_gemm(const char *op, const samk_gemm_params *p, bool *empty);

/* Launches the reference GEMM (gemm_ref.cu) for checked params, non-empty.
 * Launches only; the caller checks the launch. */
samk_status launch_gemm_ref(const samk_gemm_params *p, cudaStream_t st);

/* Counts one samk_gemm that fell back to the reference kernel. */
void count_gemm_fallback(void);

} // namespace samk

#endif /* SAMK_COMMON_CUH */
