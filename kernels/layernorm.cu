/*
 * layernorm.cu — LayerNorm over the last dim, with an optional fused residual
 * add (nn.LayerNorm; LayerNorm2d on channels-last maps).
 *
 * Computes, for each row r of cols elements (unfused formula):
 *   y      = x[r] + residual[r]     (residual != NULL; written to sum if sum != NULL)
 *   y      = x[r]                   (residual == NULL)
 *   mean   = Σ y / cols,  var = Σ (y − mean)² / cols   (biased, two-pass, fp32)
 *   out[r] = (y − mean) / sqrt(var + eps) · weight + bias
 * With BF16 storage the sum is rounded to bf16 before it is normalised, so that
 * out == LN(sum) for the sum actually stored (as a bf16 residual stream in
 * torch would give); statistics and the affine are fp32 either way.
 *
 * Layouts: dense row-major (rows, cols); weight, bias (cols). out may alias x,
 * sum may alias x or residual (every element is read and written by one lane,
 * and all reads of a row's statistics passes finish before its writes: the
 * warp reductions in between synchronise the lanes).
 * Variants: F32, BF16; with/without residual; with/without sum output.
 *
 * Mapping: one warp per row (8 rows per 256-thread block, grid-stride over
 * rows); lanes stride over the columns; three passes over the row (sum; sum
 * of squared deviations; normalise + write), the re-reads served by L1/L2.
 * SAM's rows are 32…1280 wide. No shared memory.
 *
 * Tested by the CUDA-tagged Go tests in sam/nn/gpu against the CPU backend
 * (LayerNorm, AddLayerNorm, LayerNorm2d; odd widths like 7 and 1025; large
 * common offsets), bf16 by normalised error.
 */
#include <math.h>

#include "common.cuh"

namespace {

using samk::bf16;

constexpr int kWarpsLN = 8;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

/* The row value y[c] (x + residual rounded to T, or x). */
template <typename T> __device__ __forceinline__ float row_value(const T *x, const T *res, int c) {
    if (res == nullptr) return samk::to_f32(x[c]);
    return samk::round_to<T>(samk::to_f32(x[c]) + samk::to_f32(res[c]));
}

/* No __restrict__: out/sum may alias x/residual. */
template <typename T>
__global__ void __launch_bounds__(kWarpsLN * 32) layernorm_kernel(const T *x, const T *res, T *sum, T *out,
                                                                  const T *__restrict__ w, const T *__restrict__ b,
                                                                  int64_t rows, int cols, float eps) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const float inv_cols = 1.0f / float(cols);
    for (int64_t row = int64_t(blockIdx.x) * kWarpsLN + warp; row < rows; row += int64_t(gridDim.x) * kWarpsLN) {
        const int64_t off = row * cols;
        const T *xr = x + off;
        const T *rr = res != nullptr ? res + off : nullptr;
        float s = 0.0f;
        for (int c = lane; c < cols; c += 32) s += row_value(xr, rr, c);
        const float mean = warp_sum(s) * inv_cols;
        float ss = 0.0f;
        for (int c = lane; c < cols; c += 32) {
            const float d = row_value(xr, rr, c) - mean;
            ss += d * d;
        }
        const float var = warp_sum(ss) * inv_cols;
        const float rstd = 1.0f / sqrtf(var + eps); // IEEE sqrt and division (no rsqrtf)
        T *sr = sum != nullptr ? sum + off : nullptr;
        T *orow = out + off;
        for (int c = lane; c < cols; c += 32) {
            const float y = row_value(xr, rr, c);
            if (sr != nullptr) sr[c] = samk::from_f32<T>(y);
            orow[c] = samk::from_f32<T>((y - mean) * rstd * samk::to_f32(w[c]) + samk::to_f32(b[c]));
        }
    }
}

template <typename T> void launch(const samk_layernorm_params *p, cudaStream_t st) {
    const unsigned grid = samk::grid_for(p->rows, kWarpsLN);
    layernorm_kernel<T><<<grid, kWarpsLN * 32, 0, st>>>(
        static_cast<const T *>(p->x), static_cast<const T *>(p->residual), static_cast<T *>(p->sum),
        static_cast<T *>(p->out), static_cast<const T *>(p->weight), static_cast<const T *>(p->bias), p->rows, p->cols,
        p->eps);
}

} // namespace

extern "C" samk_status samk_layernorm(const samk_layernorm_params *p, samk_stream stream) {
    static const char op[] = "samk_layernorm";
    samk::begin();
    SAMK_CHECK(p != nullptr, SAMK_ERR_INVALID_ARG, op, "null params");
    SAMK_CHECK(samk::dtype_valid(p->dtype), SAMK_ERR_INVALID_ARG, op, "unknown dtype %d", int(p->dtype));
    SAMK_CHECK(p->rows >= 0, SAMK_ERR_INVALID_ARG, op, "negative rows %lld", (long long)p->rows);
    SAMK_CHECK(p->cols >= 1, SAMK_ERR_INVALID_ARG, op, "cols %d: want >= 1", p->cols);
    SAMK_CHECK(p->eps >= 0.0f, SAMK_ERR_INVALID_ARG, op, "eps %g < 0", double(p->eps));
    if (p->rows == 0) return SAMK_OK;
    SAMK_CHECK(p->x != nullptr && p->out != nullptr && p->weight != nullptr && p->bias != nullptr,
               SAMK_ERR_INVALID_ARG, op, "null pointer (x %p, out %p, weight %p, bias %p)", p->x, p->out, p->weight,
               p->bias);
    SAMK_CHECK(p->sum == nullptr || p->residual != nullptr, SAMK_ERR_INVALID_ARG, op, "sum given without residual");
    const samk_dtype t = p->dtype;
    SAMK_CHECK(samk::aligned_for(p->x, t) && samk::aligned_for(p->residual, t) && samk::aligned_for(p->sum, t) &&
                   samk::aligned_for(p->out, t) && samk::aligned_for(p->weight, t) && samk::aligned_for(p->bias, t),
               SAMK_ERR_INVALID_ARG, op, "pointer not aligned to its %s elements", samk::dtype_name(t));
    cudaStream_t st = samk::as_stream(stream);
    if (t == SAMK_F32) {
        launch<float>(p, st);
    } else {
        launch<bf16>(p, st);
    }
    return samk::check_launch(op);
}
