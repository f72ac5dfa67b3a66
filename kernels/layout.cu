/*
 * layout.cu — data movement around the GEMMs and attention: window
 * partition/unpartition, batched transpose, im2col, ConvTranspose scatter.
 *
 * Computes (unfused formulas, all tensors dense row-major):
 *   samk_window reverse=0 (window_partition):
 *     x (B, H, W, C) zero-padded bottom/right to (nh·win, nw·win),
 *     out[(b·nh + wy)·nw + wx, ty·win + tx, c] = xpad[b, wy·win + ty, wx·win + tx, c]
 *   samk_window reverse=1 (window_unpartition): the inverse, padding dropped,
 *     out (B, H, W, C); nh = ceil(H/win), nw = ceil(W/win).
 *   samk_transpose: out[b, j, i] = in[b, i, j]  (batch, rows, cols) → (batch, cols, rows)
 *   samk_im2col: out[(b·OH + oy)·OW + ox, (c·k + ky)·k + kx]
 *                  = x[b, oy·s − pad + ky, ox·s − pad + kx, c]  (0 outside)
 *     so that Conv2d = GEMM(out, weight (Cout, Cin·k·k)ᵀ) + bias.
 *   samk_convt_scatter (ConvTranspose2d, kernel == stride == k):
 *     out[b, i·k + p, j·k + q, o] = act(g[(b·H + i)·W + j, (o·k + p)·k + q] + bias[o])
 *
 * Variants: F32, BF16 (pure copies, except convt_scatter's bias + act in fp32).
 * Mapping: one thread per *output* element in grid-stride loops (gathers: every
 * output written exactly once, coalesced stores), the index maps in
 * layout_math.cuh. The transpose stages 32×32 tiles in shared memory (padded to
 * 33 columns: no bank conflicts) so that both its loads and stores are
 * coalesced; one 32×8-thread block per tile, blockIdx.x = (batch, row tile,
 * column tile) flattened.
 *
 * Tested by the CUDA-tagged Go tests in sam/nn/gpu against the CPU backend
 * (WindowPartition/Unpartition with padding 8→9 and 16→21, Transpose, Conv2D
 * patch-embed / 3×3 pad 1 / 2×2 stride 2, ConvTranspose2D); the index maps by
 * kernels/test/host_test.cu against forward loops.
 */
#include <limits.h>

#include "common.cuh"
#include "layout_math.cuh"

namespace {

using samk::bf16;

template <typename T>
__global__ void window_partition_kernel(const T *__restrict__ in, T *__restrict__ out, int64_t total, int h, int w,
                                        int c, int win, int nh, int nw) {
    for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
        const int64_t s = samk::window_partition_src(o, h, w, c, win, nh, nw);
        out[o] = s >= 0 ? in[s] : samk::from_f32<T>(0.0f);
    }
}

template <typename T>
__global__ void window_unpartition_kernel(const T *__restrict__ in, T *__restrict__ out, int64_t total, int h, int w,
                                          int c, int win, int nh, int nw) {
    for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
        out[o] = in[samk::window_unpartition_src(o, h, w, c, win, nh, nw)];
    }
}

constexpr int kTile = 32, kTileRows = 8;

template <typename T>
__global__ void __launch_bounds__(kTile *kTileRows) transpose_kernel(const T *__restrict__ in, T *__restrict__ out,
                                                                     int rows, int cols, int row_tiles, int col_tiles) {
    __shared__ T tile[kTile][kTile + 1];
    int64_t t = blockIdx.x;
    const int ct = int(t % col_tiles);
    t /= col_tiles;
    const int rt = int(t % row_tiles);
    const int64_t b = t / row_tiles;
    const T *src = in + b * int64_t(rows) * cols;
    T *dst = out + b * int64_t(rows) * cols;
    const int r0 = rt * kTile, c0 = ct * kTile;
    /* Load in[r0 + ty, c0 + tx] into tile[ty][tx] (rows of 32: coalesced). */
    for (int ty = threadIdx.y; ty < kTile; ty += kTileRows) {
        const int r = r0 + ty, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[ty][threadIdx.x] = src[int64_t(r) * cols + c];
    }
    __syncthreads();
    /* Store out[c0 + ty, r0 + tx] = tile[tx][ty] (the output row is the input column). */
    for (int ty = threadIdx.y; ty < kTile; ty += kTileRows) {
        const int c = c0 + ty, r = r0 + threadIdx.x;
        if (r < rows && c < cols) dst[int64_t(c) * rows + r] = tile[threadIdx.x][ty];
    }
}

template <typename T>
__global__ void im2col_kernel(const T *__restrict__ in, T *__restrict__ out, int64_t total, int h, int w, int c, int k,
                              int stride, int pad, int oh, int ow) {
    for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
        const int64_t s = samk::im2col_src(o, h, w, c, k, stride, pad, oh, ow);
        out[o] = s >= 0 ? in[s] : samk::from_f32<T>(0.0f);
    }
}

template <typename T>
__global__ void convt_scatter_kernel(const T *__restrict__ g, const T *__restrict__ bias, T *__restrict__ out,
                                     int64_t total, int h, int w, int cout, int k, int act) {
    for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
        int oc = 0;
        const int64_t s = samk::convt_src(o, h, w, cout, k, &oc);
        float v = samk::to_f32(g[s]);
        if (bias != nullptr) v += samk::to_f32(bias[oc]);
        out[o] = samk::from_f32<T>(samk::apply_act(v, act));
    }
}

} // namespace

extern "C" {

samk_status samk_window(const samk_window_params *p, samk_stream stream) {
    static const char op[] = "samk_window";
    samk::begin();
    SAMK_CHECK(p != nullptr, SAMK_ERR_INVALID_ARG, op, "null params");
    SAMK_CHECK(samk::dtype_valid(p->dtype), SAMK_ERR_INVALID_ARG, op, "unknown dtype %d", int(p->dtype));
    SAMK_CHECK(p->batch >= 0 && p->h >= 0 && p->w >= 0 && p->c >= 0, SAMK_ERR_INVALID_ARG, op,
               "negative size (batch %d, h %d, w %d, c %d)", p->batch, p->h, p->w, p->c);
    SAMK_CHECK(p->win >= 1, SAMK_ERR_INVALID_ARG, op, "win %d: want >= 1", p->win);
    const int nh = (p->h + p->win - 1) / p->win, nw = (p->w + p->win - 1) / p->win;
    const int64_t total = p->reverse ? int64_t(p->batch) * p->h * p->w * p->c
                                     : int64_t(p->batch) * nh * nw * int64_t(p->win) * p->win * p->c;
    if (total == 0) return SAMK_OK;
    SAMK_CHECK(p->in != nullptr && p->out != nullptr, SAMK_ERR_INVALID_ARG, op, "null in or out");
    SAMK_CHECK(samk::aligned_for(p->in, p->dtype) && samk::aligned_for(p->out, p->dtype), SAMK_ERR_INVALID_ARG, op,
               "misaligned pointer");
    cudaStream_t st = samk::as_stream(stream);
    const unsigned g = samk::grid_for(total);
    if (p->dtype == SAMK_F32) {
        const float *in = static_cast<const float *>(p->in);
        float *out = static_cast<float *>(p->out);
        if (p->reverse) window_unpartition_kernel<<<g, samk::kThreads, 0, st>>>(in, out, total, p->h, p->w, p->c, p->win, nh, nw);
        else window_partition_kernel<<<g, samk::kThreads, 0, st>>>(in, out, total, p->h, p->w, p->c, p->win, nh, nw);
    } else {
        const bf16 *in = static_cast<const bf16 *>(p->in);
        bf16 *out = static_cast<bf16 *>(p->out);
        if (p->reverse) window_unpartition_kernel<<<g, samk::kThreads, 0, st>>>(in, out, total, p->h, p->w, p->c, p->win, nh, nw);
        else window_partition_kernel<<<g, samk::kThreads, 0, st>>>(in, out, total, p->h, p->w, p->c, p->win, nh, nw);
    }
    return samk::check_launch(op);
}

samk_status samk_transpose(samk_dtype dtype, const void *in, void *out, int batch, int rows, int cols,
                           samk_stream stream) {
    static const char op[] = "samk_transpose";
    samk::begin();
    SAMK_CHECK(samk::dtype_valid(dtype), SAMK_ERR_INVALID_ARG, op, "unknown dtype %d", int(dtype));
    SAMK_CHECK(batch >= 0 && rows >= 0 && cols >= 0, SAMK_ERR_INVALID_ARG, op,
               "negative size (batch %d, rows %d, cols %d)", batch, rows, cols);
    if (batch == 0 || rows == 0 || cols == 0) return SAMK_OK;
    SAMK_CHECK(in != nullptr && out != nullptr, SAMK_ERR_INVALID_ARG, op, "null in or out");
    SAMK_CHECK(in != out, SAMK_ERR_INVALID_ARG, op, "in-place transpose is not supported");
    SAMK_CHECK(samk::aligned_for(in, dtype) && samk::aligned_for(out, dtype), SAMK_ERR_INVALID_ARG, op,
               "misaligned pointer");
    const int row_tiles = (rows + kTile - 1) / kTile, col_tiles = (cols + kTile - 1) / kTile;
    const int64_t blocks = int64_t(batch) * row_tiles * col_tiles;
    SAMK_CHECK(blocks <= INT_MAX, SAMK_ERR_UNSUPPORTED, op, "%lld tiles exceed the grid limit", (long long)blocks);
    cudaStream_t st = samk::as_stream(stream);
    const dim3 block(kTile, kTileRows);
    if (dtype == SAMK_F32) {
        transpose_kernel<float><<<unsigned(blocks), block, 0, st>>>(static_cast<const float *>(in),
                                                                    static_cast<float *>(out), rows, cols, row_tiles,
                                                                    col_tiles);
    } else {
        transpose_kernel<bf16><<<unsigned(blocks), block, 0, st>>>(static_cast<const bf16 *>(in),
                                                                   static_cast<bf16 *>(out), rows, cols, row_tiles,
                                                                   col_tiles);
    }
    return samk::check_launch(op);
}

samk_status samk_im2col(const samk_im2col_params *p, samk_stream stream) {
    static const char op[] = "samk_im2col";
    samk::begin();
    SAMK_CHECK(p != nullptr, SAMK_ERR_INVALID_ARG, op, "null params");
    SAMK_CHECK(samk::dtype_valid(p->dtype), SAMK_ERR_INVALID_ARG, op, "unknown dtype %d", int(p->dtype));
    SAMK_CHECK(p->batch >= 0 && p->h >= 0 && p->w >= 0 && p->c >= 0, SAMK_ERR_INVALID_ARG, op,
               "negative size (batch %d, h %d, w %d, c %d)", p->batch, p->h, p->w, p->c);
    SAMK_CHECK(p->k >= 1 && p->stride >= 1 && p->pad >= 0, SAMK_ERR_INVALID_ARG, op,
               "k %d, stride %d, pad %d: want k, stride >= 1, pad >= 0", p->k, p->stride, p->pad);
    const int hp = p->h + 2 * p->pad, wp = p->w + 2 * p->pad;
    SAMK_CHECK(hp >= p->k && wp >= p->k, SAMK_ERR_INVALID_ARG, op, "kernel %d larger than the padded %dx%d input",
               p->k, hp, wp);
    const int oh = (hp - p->k) / p->stride + 1, ow = (wp - p->k) / p->stride + 1;
    const int64_t total = int64_t(p->batch) * oh * ow * int64_t(p->c) * p->k * p->k;
    if (total == 0) return SAMK_OK;
    SAMK_CHECK(p->in != nullptr && p->out != nullptr, SAMK_ERR_INVALID_ARG, op, "null in or out");
    SAMK_CHECK(samk::aligned_for(p->in, p->dtype) && samk::aligned_for(p->out, p->dtype), SAMK_ERR_INVALID_ARG, op,
               "misaligned pointer");
    cudaStream_t st = samk::as_stream(stream);
    const unsigned g = samk::grid_for(total);
    if (p->dtype == SAMK_F32) {
        im2col_kernel<float><<<g, samk::kThreads, 0, st>>>(static_cast<const float *>(p->in), static_cast<float *>(p->out),
                                                           total, p->h, p->w, p->c, p->k, p->stride, p->pad, oh, ow);
    } else {
        im2col_kernel<bf16><<<g, samk::kThreads, 0, st>>>(static_cast<const bf16 *>(p->in), static_cast<bf16 *>(p->out),
                                                          total, p->h, p->w, p->c, p->k, p->stride, p->pad, oh, ow);
    }
    return samk::check_launch(op);
}

samk_status samk_convt_scatter(const samk_convt_scatter_params *p, samk_stream stream) {
    static const char op[] = "samk_convt_scatter";
    samk::begin();
    SAMK_CHECK(p != nullptr, SAMK_ERR_INVALID_ARG, op, "null params");
    SAMK_CHECK(samk::dtype_valid(p->dtype), SAMK_ERR_INVALID_ARG, op, "unknown dtype %d", int(p->dtype));
    SAMK_CHECK(samk::act_valid(p->act), SAMK_ERR_INVALID_ARG, op, "unknown activation %d", int(p->act));
    SAMK_CHECK(p->batch >= 0 && p->h >= 0 && p->w >= 0 && p->cout >= 0, SAMK_ERR_INVALID_ARG, op,
               "negative size (batch %d, h %d, w %d, cout %d)", p->batch, p->h, p->w, p->cout);
    SAMK_CHECK(p->k >= 1, SAMK_ERR_INVALID_ARG, op, "k %d: want >= 1", p->k);
    const int64_t total = int64_t(p->batch) * p->h * p->w * int64_t(p->cout) * p->k * p->k;
    if (total == 0) return SAMK_OK;
    SAMK_CHECK(p->in != nullptr && p->out != nullptr, SAMK_ERR_INVALID_ARG, op, "null in or out");
    SAMK_CHECK(p->in != p->out, SAMK_ERR_INVALID_ARG, op, "in-place scatter is not supported");
    SAMK_CHECK(samk::aligned_for(p->in, p->dtype) && samk::aligned_for(p->out, p->dtype) &&
                   samk::aligned_for(p->bias, p->dtype),
               SAMK_ERR_INVALID_ARG, op, "misaligned pointer");
    cudaStream_t st = samk::as_stream(stream);
    const unsigned g = samk::grid_for(total);
    if (p->dtype == SAMK_F32) {
        convt_scatter_kernel<float><<<g, samk::kThreads, 0, st>>>(
            static_cast<const float *>(p->in), static_cast<const float *>(p->bias), static_cast<float *>(p->out), total,
            p->h, p->w, p->cout, p->k, int(p->act));
    } else {
        convt_scatter_kernel<bf16><<<g, samk::kThreads, 0, st>>>(
            static_cast<const bf16 *>(p->in), static_cast<const bf16 *>(p->bias), static_cast<bf16 *>(p->out), total,
            p->h, p->w, p->cout, p->k, int(p->act));
    }
    return samk::check_launch(op);
}

} // extern "C"
