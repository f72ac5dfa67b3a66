/*
 * gemm_ref.cu — the reference GEMM: samk_gemm's product, transposes,
 * batching and epilogues computed by a plain tiled SIMT kernel of our own,
 * without cuBLASLt.
 *
 * Computes, for every batch b (unfused formula, all row-major):
 *   C[b] = act(alpha · op(A[b]) · op(B[b]) + beta · C[b] + bias)
 * with exactly samk_gemm's parameters and checks (samk::check_gemm): op(A)
 * m×k (A stored m×k, or k×m when trans_a), op(B) k×n (B stored k×n, or n×k
 * when trans_b), batch strides (0 broadcasts A or B), bias of n elements or
 * NULL, beta == 0 leaves C unread, act the exact-erf GELU or ReLU.
 *
 * Why it exists:
 *   - the GPU simulator (../shared/gpusim) cannot run cuBLAS/cuBLASLt, which
 *     are closed and talk to the real driver: under it every GEMM runs here
 *     (the Go backend selects it with SAMGO_GEMM=reference, and then never
 *     creates a cuBLASLt handle);
 *   - samk_gemm falls back to it when cuBLASLt has no algorithm for a
 *     problem or its matmul fails (the heuristic may refuse operands with a
 *     dimension of 1, which every single-prompt decoder Linear has);
 *   - on a real GPU it is the yardstick cuBLASLt is compared against
 *     (sam/nn/gpu TestGemmCuBLASLtVsReference, make gpu-check).
 *
 * Numerics: operands widened to fp32 as they are staged, one fp32 fmaf chain
 * per output in the order k = 0, 1, …, k−1, then alpha, beta·C, bias and act
 * in fp32 and one rounding at the store (bf16 outputs). No tensor cores, no
 * TF32, no fast math.
 *
 * Mapping: 256 threads (16 × 16) per CTA, each with a TM × TN register tile
 * (rows ty + 16·r, columns tx + 16·c: neighbouring threads read
 * neighbouring shared-memory columns, conflict-free), so a CTA computes
 * (16·TM) × (16·TN) outputs; TM and TN are 4 for extents of 33 and more, 2
 * up to 32 and 1 up to 16 (variants gemm_ref_kernel<T, TM, TN>), so that
 * the decoder's few-token products do not run mostly idle threads. K is
 * staged BK = 16 at a time into shared memory as fp32, op(A) k-major and
 * op(B) k-major, with the global loads ordered along each operand's
 * contiguous dimension (coalesced for both transposes). Tiles past m, n, k
 * are zero-filled. The (batch, tile) pairs are flattened and walked with a
 * grid-stride loop, so any batch and any m, n fit the grid limits.
 * Throughput is not the point (cuBLASLt is the fast path); the kernel stays
 * small enough to read and to run under the simulator.
 *
 * Tested by the CUDA-tagged Go tests in sam/nn/gpu (every GEMM op against
 * the CPU backend under SAMGO_GEMM=reference, in CI under the simulator; the
 * samk_gemm cases with trans_a, beta ≠ 0, batch stride 0, odd m/n/k, bias
 * fallback and bias+act by TestGemmVariants; cuBLASLt vs this kernel on a
 * real GPU) and its argument checks by kernels/test/host_test.cu.
 */
#include <atomic>

#include "common.cuh"

namespace {

using samk::bf16;

/* 16 × 16 threads; each owns TM × TN outputs, so a CTA tile is
 * (16·TM) × (16·TN). */
constexpr int kBK = 16;
constexpr int kThreadsGemm = 256;
constexpr int64_t kMaxBlocks = int64_t(1) << 16;

std::atomic<int64_t> g_fallbacks{0};

struct GemmArgs {
    const void *a, *b;
    void *c;
    const void *bias;
    int64_t m, n, k, lda, ldb, ldc, sa, sb, sc;
    int64_t tiles_m, tiles_n, tiles; // tiles = batch · tiles_m · tiles_n
    int trans_a, trans_b, act;
    float alpha, beta;
};

template <typename T, int kTM, int kTN> __global__ void __launch_bounds__(kThreadsGemm) gemm_ref_kernel(GemmArgs g) {
    constexpr int kBM = 16 * kTM, kBN = 16 * kTN;
    __shared__ float sA[kBK][kBM + 1]; // op(A)[i0 + i][k0 + kk] at sA[kk][i]
    __shared__ float sB[kBK][kBN + 1]; // op(B)[k0 + kk][j0 + j] at sB[kk][j]
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const T *A0 = static_cast<const T *>(g.a);
    const T *B0 = static_cast<const T *>(g.b);
    T *C0 = static_cast<T *>(g.c);
    const T *bias = static_cast<const T *>(g.bias);

    for (int64_t t = blockIdx.x; t < g.tiles; t += gridDim.x) {
        const int64_t per_batch = g.tiles_m * g.tiles_n;
        const int64_t b = t / per_batch;
        const int64_t r = t - b * per_batch;
        const int64_t i0 = (r / g.tiles_n) * kBM, j0 = (r % g.tiles_n) * kBN;
        const T *A = A0 + b * g.sa;
        const T *B = B0 + b * g.sb;
        T *C = C0 + b * g.sc;

        float acc[kTM][kTN];
#pragma unroll
        for (int u = 0; u < kTM; u++)
#pragma unroll
            for (int v = 0; v < kTN; v++) acc[u][v] = 0.0f;

        for (int64_t k0 = 0; k0 < g.k; k0 += kBK) {
            /* Stage op(A) (BM × BK) and op(B) (BK × BN); consecutive threads
             * walk the operand's contiguous storage dimension. */
            for (int idx = tid; idx < kBM * kBK; idx += kThreadsGemm) {
                int ii, kk;
                if (g.trans_a) { // A stored k×m: i contiguous
                    ii = idx % kBM;
                    kk = idx / kBM;
                } else { // A stored m×k: k contiguous
                    kk = idx % kBK;
                    ii = idx / kBK;
                }
                const int64_t i = i0 + ii, k = k0 + kk;
                float x = 0.0f;
                if (i < g.m && k < g.k) x = samk::to_f32(g.trans_a ? A[k * g.lda + i] : A[i * g.lda + k]);
                sA[kk][ii] = x;
            }
            for (int idx = tid; idx < kBK * kBN; idx += kThreadsGemm) {
                int jj, kk;
                if (g.trans_b) { // B stored n×k: k contiguous
                    kk = idx % kBK;
                    jj = idx / kBK;
                } else { // B stored k×n: j contiguous
                    jj = idx % kBN;
                    kk = idx / kBN;
                }
                const int64_t j = j0 + jj, k = k0 + kk;
                float x = 0.0f;
                if (j < g.n && k < g.k) x = samk::to_f32(g.trans_b ? B[j * g.ldb + k] : B[k * g.ldb + j]);
                sB[kk][jj] = x;
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < kBK; kk++) {
                float av[kTM], bv[kTN];
#pragma unroll
                for (int u = 0; u < kTM; u++) av[u] = sA[kk][ty + 16 * u];
#pragma unroll
                for (int v = 0; v < kTN; v++) bv[v] = sB[kk][tx + 16 * v];
#pragma unroll
                for (int u = 0; u < kTM; u++)
#pragma unroll
                    for (int v = 0; v < kTN; v++) acc[u][v] = fmaf(av[u], bv[v], acc[u][v]);
            }
            __syncthreads(); // the tile is consumed before the next is staged
        }

#pragma unroll
        for (int u = 0; u < kTM; u++) {
            const int64_t i = i0 + ty + 16 * u;
            if (i >= g.m) continue;
#pragma unroll
            for (int v = 0; v < kTN; v++) {
                const int64_t j = j0 + tx + 16 * v;
                if (j >= g.n) continue;
                T *p = C + i * g.ldc + j;
                float x = g.alpha * acc[u][v];
                if (g.beta != 0.0f) x += g.beta * samk::to_f32(*p);
                if (bias != nullptr) x += samk::to_f32(bias[j]);
                *p = samk::from_f32<T>(samk::apply_act(x, g.act));
            }
        }
    }
}

/* The per-thread tile for an extent: 4 for 64 and more, else the
 * smallest of 1, 2, 4 whose 16-wide multiple covers it (the decoder's 7- and
 * 14-token products and 16-channel heads would otherwise leave most of a
 * 64-wide tile idle; under the simulator every idle thread's instructions
 * cost as much as useful ones). */
int tile_for(int64_t extent) { return extent <= 16 ? 1 : extent <= 32 ? 2 : 4; }

template <typename T, int TM, int TN> void launch_tiles(GemmArgs g, const samk_gemm_params *p, cudaStream_t st) {
    g.tiles_m = (p->m + 16 * TM - 1) / (16 * TM);
    g.tiles_n = (p->n + 16 * TN - 1) / (16 * TN);
    g.tiles = int64_t(p->batch) * g.tiles_m * g.tiles_n;
    const unsigned blocks = unsigned(g.tiles < kMaxBlocks ? g.tiles : kMaxBlocks);
    gemm_ref_kernel<T, TM, TN><<<blocks, kThreadsGemm, 0, st>>>(g);
}

template <typename T, int TM> void launch_n(GemmArgs g, const samk_gemm_params *p, cudaStream_t st) {
    switch (tile_for(p->n)) {
    case 1: launch_tiles<T, TM, 1>(g, p, st); break;
    case 2: launch_tiles<T, TM, 2>(g, p, st); break;
    default: launch_tiles<T, TM, 4>(g, p, st); break;
    }
}

template <typename T> void launch_mn(const GemmArgs &g, const samk_gemm_params *p, cudaStream_t st) {
    switch (tile_for(p->m)) {
    case 1: launch_n<T, 1>(g, p, st); break;
    case 2: launch_n<T, 2>(g, p, st); break;
    default: launch_n<T, 4>(g, p, st); break;
    }
}

} // namespace

namespace samk {

samk_status launch_gemm_ref(const samk_gemm_params *p, cudaStream_t st) {
    GemmArgs g;
    g.a = p->a;
    g.b = p->b;
    g.c = p->c;
    g.bias = p->bias;
    g.m = p->m;
    g.n = p->n;
    g.k = p->k;
    g.lda = p->lda;
    g.ldb = p->ldb;
    g.ldc = p->ldc;
    g.sa = p->batch > 1 ? p->stride_a : 0;
    g.sb = p->batch > 1 ? p->stride_b : 0;
    g.sc = p->batch > 1 ? p->stride_c : 0;
    g.trans_a = p->trans_a ? 1 : 0;
    g.trans_b = p->trans_b ? 1 : 0;
    g.act = static_cast<int>(p->act);
    g.alpha = p->alpha;
    g.beta = p->beta;
    if (p->dtype == SAMK_F32) {
        launch_mn<float>(g, p, st);
    } else {
        launch_mn<bf16>(g, p, st);
    }
    return SAMK_OK;
}

void count_gemm_fallback(void) { g_fallbacks.fetch_add(1, std::memory_order_relaxed); }

} // namespace samk

extern "C" {

samk_status samk_gemm_reference(const samk_gemm_params *p, samk_stream stream) {
    static const char op[] = "samk_gemm_reference";
    samk::begin();
    bool empty = false;
    samk_status s = samk::check_gemm(op, p, &empty);
    if (s != SAMK_OK || empty) return s;
    s = samk::launch_gemm_ref(p, samk::as_stream(stream));
    if (s != SAMK_OK) return s;
    return samk::check_launch(op);
}

int64_t samk_gemm_fallbacks(void) { return g_fallbacks.load(std::memory_order_relaxed); }

} // extern "C"
