/*
 * elementwise.cu — dtype conversion, broadcast add, bias + activation.
 *
 * Computes (unfused formulas; i over all elements):
 *   samk_convert:  dst[i] = (dst_dtype) src[i]        F32→BF16 rounds to nearest even
 *   samk_add:      out[i] = a[i] + b[i mod nb]         b broadcast over leading dims
 *   samk_bias_act: x[r, c] = act(x[r, c] + bias[c])    act ∈ {none, exact-erf GELU, ReLU}
 * and, internally, the strided batched form of bias_act that samk_gemm runs
 * after cuBLASLt when an activation is requested (cuBLASLt's GELU epilogue is
 * the tanh approximation, SAM's nn.GELU() is the erf form):
 *   c[b, i, j] = act(c[b, i, j] (+ bias[j]))   c + b·stride_c + i·ldc + j
 *
 * Layouts: dense 1-D views of any tensor; bias_act on row-major (rows, cols)
 * matrices (the gemm variant with arbitrary ldc and batch stride).
 * Variants: F32 and BF16 storage (arithmetic in fp32, one rounding at the
 * store). out may alias a (add); bias_act is in place.
 * Mapping: grid-stride loops, one element per thread per step, 256 threads
 * per block; memory bound, no shared memory. (Vectorised 16-byte accesses are
 * left for the performance issue.)
 *
 * Tested by the CUDA-tagged Go tests in sam/nn/gpu against the CPU backend
 * (Add, Activation, Linear with bias and GELU/ReLU, Upload/Download through
 * convert); the GELU/ReLU formulas by kernels/test/host_test.cu.
 */
#include "common.cuh"

namespace {

using samk::bf16;

template <typename S, typename D> __global__ void convert_kernel(const S *__restrict__ src, D *__restrict__ dst, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        dst[i] = samk::from_f32<D>(samk::to_f32(src[i]));
    }
}

/* out may alias a: each element is read and written by the same thread, so
 * neither pointer is __restrict__. */
template <typename T> __global__ void add_kernel(const T *a, const T *b, T *out, int64_t n, int64_t nb) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        out[i] = samk::from_f32<T>(samk::to_f32(a[i]) + samk::to_f32(b[i % nb]));
    }
}

/* c[b, i, j] = act(c[b, i, j] + bias[j]) over batch × m × n elements. */
template <typename T>
__global__ void bias_act_kernel(T *c, const T *__restrict__ bias, int64_t total, int64_t m, int64_t n, int64_t ldc,
                                int64_t stride_c, int act) {
    const int64_t mn = m * n;
    for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
         idx += int64_t(gridDim.x) * blockDim.x) {
        const int64_t b = idx / mn;
        const int64_t r = idx - b * mn;
        const int64_t i = r / n;
        const int64_t j = r - i * n;
        T *p = c + b * stride_c + i * ldc + j;
        float v = samk::to_f32(*p);
        if (bias != nullptr) v += samk::to_f32(bias[j]);
        *p = samk::from_f32<T>(samk::apply_act(v, act));
    }
}

template <typename S>
void launch_convert_from(const S *src, samk_dtype dst_dtype, void *dst, int64_t n, cudaStream_t st) {
    const unsigned g = samk::grid_for(n);
    if (dst_dtype == SAMK_F32) {
        convert_kernel<S, float><<<g, samk::kThreads, 0, st>>>(src, static_cast<float *>(dst), n);
    } else {
        convert_kernel<S, bf16><<<g, samk::kThreads, 0, st>>>(src, static_cast<bf16 *>(dst), n);
    }
}

} // namespace

namespace samk {

samk_status launch_bias_act(samk_dtype dtype, void *c, const void *bias, int batch, int64_t m, int64_t n, int64_t ldc,
                            int64_t stride_c, samk_act act, cudaStream_t st) {
    const int64_t total = int64_t(batch) * m * n;
    if (total <= 0) return SAMK_OK;
    const unsigned g = grid_for(total);
    if (dtype == SAMK_F32) {
        bias_act_kernel<float><<<g, kThreads, 0, st>>>(static_cast<float *>(c), static_cast<const float *>(bias), total,
                                                       m, n, ldc, stride_c, static_cast<int>(act));
    } else {
        bias_act_kernel<bf16><<<g, kThreads, 0, st>>>(static_cast<bf16 *>(c), static_cast<const bf16 *>(bias), total, m,
                                                      n, ldc, stride_c, static_cast<int>(act));
    }
    return SAMK_OK;
}

} // namespace samk

extern "C" {

samk_status samk_convert(const void *src, samk_dtype src_dtype, void *dst, samk_dtype dst_dtype, int64_t n,
                         samk_stream stream) {
    static const char op[] = "samk_convert";
    samk::begin();
    SAMK_CHECK(samk::dtype_valid(src_dtype) && samk::dtype_valid(dst_dtype), SAMK_ERR_INVALID_ARG, op,
               "unknown dtype (src %d, dst %d)", int(src_dtype), int(dst_dtype));
    SAMK_CHECK(n >= 0, SAMK_ERR_INVALID_ARG, op, "negative size %lld", (long long)n);
    if (n == 0) return SAMK_OK;
    SAMK_CHECK(src != nullptr && dst != nullptr, SAMK_ERR_INVALID_ARG, op, "null pointer (src %p, dst %p)", src, dst);
    SAMK_CHECK(samk::aligned_for(src, src_dtype) && samk::aligned_for(dst, dst_dtype), SAMK_ERR_INVALID_ARG, op,
               "misaligned pointer");
    cudaStream_t st = samk::as_stream(stream);
    if (src_dtype == SAMK_F32) {
        launch_convert_from(static_cast<const float *>(src), dst_dtype, dst, n, st);
    } else {
        launch_convert_from(static_cast<const bf16 *>(src), dst_dtype, dst, n, st);
    }
    return samk::check_launch(op);
}

samk_status samk_add(samk_dtype dtype, const void *a, const void *b, void *out, int64_t n, int64_t nb,
                     samk_stream stream) {
    static const char op[] = "samk_add";
    samk::begin();
    SAMK_CHECK(samk::dtype_valid(dtype), SAMK_ERR_INVALID_ARG, op, "unknown dtype %d", int(dtype));
    SAMK_CHECK(n >= 0 && nb >= 1, SAMK_ERR_INVALID_ARG, op, "sizes n %lld, nb %lld: want n >= 0, nb >= 1", (long long)n,
               (long long)nb);
    SAMK_CHECK(n % nb == 0, SAMK_ERR_INVALID_ARG, op, "nb %lld does not divide n %lld", (long long)nb, (long long)n);
    if (n == 0) return SAMK_OK;
    SAMK_CHECK(a != nullptr && b != nullptr && out != nullptr, SAMK_ERR_INVALID_ARG, op, "null pointer");
    SAMK_CHECK(samk::aligned_for(a, dtype) && samk::aligned_for(b, dtype) && samk::aligned_for(out, dtype),
               SAMK_ERR_INVALID_ARG, op, "misaligned pointer");
    cudaStream_t st = samk::as_stream(stream);
    const unsigned g = samk::grid_for(n);
    if (dtype == SAMK_F32) {
        add_kernel<float><<<g, samk::kThreads, 0, st>>>(static_cast<const float *>(a), static_cast<const float *>(b),
                                                         static_cast<float *>(out), n, nb);
    } else {
        add_kernel<bf16><<<g, samk::kThreads, 0, st>>>(static_cast<const bf16 *>(a), static_cast<const bf16 *>(b),
                                                        static_cast<bf16 *>(out), n, nb);
    }
    return samk::check_launch(op);
}

samk_status samk_bias_act(samk_dtype dtype, void *x, const void *bias, int64_t rows, int cols, samk_act act,
                          samk_stream stream) {
    static const char op[] = "samk_bias_act";
    samk::begin();
    SAMK_CHECK(samk::dtype_valid(dtype), SAMK_ERR_INVALID_ARG, op, "unknown dtype %d", int(dtype));
    SAMK_CHECK(samk::act_valid(act), SAMK_ERR_INVALID_ARG, op, "unknown activation %d", int(act));
    SAMK_CHECK(rows >= 0 && cols >= 0, SAMK_ERR_INVALID_ARG, op, "negative size (rows %lld, cols %d)",
               (long long)rows, cols);
    if (rows == 0 || cols == 0) return SAMK_OK;
    SAMK_CHECK(x != nullptr, SAMK_ERR_INVALID_ARG, op, "null x");
    SAMK_CHECK(samk::aligned_for(x, dtype) && samk::aligned_for(bias, dtype), SAMK_ERR_INVALID_ARG, op,
               "misaligned pointer");
    if (bias == nullptr && act == SAMK_ACT_NONE) return SAMK_OK;
    /* One "batch" of a (rows, cols) matrix with ldc = cols. */
    samk::launch_bias_act(dtype, x, bias, 1, rows, cols, cols, 0, act, samk::as_stream(stream));
    return samk::check_launch(op);
}

} // extern "C"
