/*
 * attention.cu — fused multi-head attention with SAM's decomposed relative-
 * position bias (flash-style online softmax; no Nq×Nk matrix in memory).
 *
 * Computes, for batch b, head h, query row i (unfused formula):
 *   S[i, j]  = scale · q_i·k_j + bias_ij                      j < nk
 *   out_i    = Σ_j softmax_j(S[i, :]) · v_j
 *   q_i = q[b, i, h·d : (h+1)·d], k_j, v_j likewise (heads = contiguous chunks)
 * and with rel_h/rel_w (nq == nk == qh·qw, i = (ih, iw), j = (jh, jw) row-major)
 *   bias_ij = rel_h_i[jh] + rel_w_i[jw]
 *   rel_h_i[jh] = Σ_c q_i[c]·rel_h[ih − jh + qh − 1, c]   (unscaled q)
 *   rel_w_i[jw] = Σ_c q_i[c]·rel_w[iw − jw + qw − 1, c]
 * added in the order (scale·q·k + rel_h) + rel_w, as add_decomposed_rel_pos;
 * or, with bias_table (TinyViT, nq == nk == ws², a ws×ws window row-major):
 *   bias_ij = bias_table[h, |ih − jh|·ws + |iw − jw|]     after the scale.
 * nk == 0 gives out = 0 (torch: softmax over no keys is empty, empty·v = 0).
 *
 * Layouts: token t of batch b at ptr + b·batch_stride + t·row_stride (elements)
 * for q, k, v, out independently, so a packed qkv projection (B, N, 3·heads·d)
 * is read in place (q = qkv, k = qkv + heads·d, v = qkv + 2·heads·d, row
 * stride 3·heads·d). rel_h (2·qh−1, d) and rel_w (2·qw−1, d) dense.
 *
 * Variants: head dims 4, 8, 16, 32, 64, 80, 128 (template parameter D; the
 * small test models use 4 and 8, SAM's decoder 16 and 32, the ViT-B/L
 * encoders 64, ViT-H 80), d == dv only; F32 or BF16 storage; arbitrary nq, nk
 * (odd sizes, 7 tokens vs 4096 image tokens and back). Other head dims, or
 * d != dv, return SAMK_ERR_UNSUPPORTED.
 *
 * Mapping (correctness first; tensor cores come with the performance issue):
 *   grid: one CTA per (batch, head, tile of BQ = 16 query rows), flattened in
 *         blockIdx.x (tile fastest);
 *   CTA:  4 warps, each owning R = 4 query rows;
 *   keys: tiles of BK = 32 keys (one key per lane) staged in shared memory
 *         as fp32 (K rows padded to d+1 floats, so that lane j reading
 *         K[j][c] hits bank (j·(d+1) + c) mod 32: conflict-free).
 *   per tile and row: lane j computes logit S[i, k0+j] (q from shared memory,
 *         a broadcast read), the warp reduces the tile max and the sum of
 *         exp, the running (max m, sum l, accumulator o) are rescaled by
 *         exp(m_old − m_new) (online softmax, fp32, expf — never __expf), the
 *         probabilities go to a per-warp shared row and lane c accumulates
 *         o[c] += p_j·v_j[c] for its output channels c = lane + 32·u.
 *   end:  out_i = o / l.
 * Shared memory (floats): Q BQ·d + K BK·(d+1) + V BK·d + P BQ·BK
 *   + rel tables BQ·(qh + qw) (rel_h_i, rel_w_i of the tile's rows, computed
 *   once per CTA). d = 128 with rel-pos needs > 48 KB: the launcher then opts
 *   in to the larger dynamic shared memory (cudaFuncSetAttribute), or returns
 *   SAMK_ERR_UNSUPPORTED when the device cannot give it.
 *
 * Tested by the CUDA-tagged Go tests in sam/nn/gpu against the CPU backend
 * (Attention, AttentionQKV, rel-pos on/off, head dims 4…128, nq/nk 1, 7, 97,
 * 4096, bf16 by normalised error); the online-softmax merge and the rel-pos
 * index math by kernels/test/host_test.cu.
 */
#include <limits.h>
#include <math.h>

#include "attention_math.cuh"
#include "common.cuh"

namespace {

using samk::bf16;

constexpr int kWarps = 4;
constexpr int kRows = 4;               // query rows per warp
constexpr int kBQ = kWarps * kRows;    // query rows per CTA
constexpr int kBK = 32;                // keys per tile (one per lane)
constexpr int kThreadsAttn = kWarps * 32;

struct AttnArgs {
    const void *q, *k, *v;
    void *out;
    const void *rel_h, *rel_w;
    const void *tab; // offset bias (heads, ws·ws) or NULL
    int ws;
    int64_t q_bs, q_rs, k_bs, k_rs, v_bs, v_rs, o_bs, o_rs;
    int heads, nq, nk, qh, qw, tiles;
    float scale;
};

/* Shared memory floats for head dim D (rel: qh + qw table entries per row). */
__host__ __device__ constexpr int smem_floats_fixed(int D) { return kBQ * D + kBK * (D + 1) + kBK * D + kBQ * kBK; }

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

template <typename T, int D> __global__ void __launch_bounds__(kThreadsAttn) attention_kernel(AttnArgs a) {
    constexpr int KS = D + 1;            // padded K row stride (floats)
    constexpr int U = (D + 31) / 32;     // output channels per lane
    extern __shared__ float smem[];
    float *sQ = smem;                    // (BQ, D)   unscaled q rows
    float *sK = sQ + kBQ * D;            // (BK, D+1) key tile
    float *sV = sK + kBK * KS;           // (BK, D)   value tile
    float *sP = sV + kBK * D;            // (BQ, BK)  probabilities, per warp rows
    float *sRH = sP + kBQ * kBK;         // (BQ, qh)  rel_h_i[jh]   (rel only)
    float *sRW = sRH + kBQ * a.qh;       // (BQ, qw)  rel_w_i[jw]   (rel only)

    const int tid = threadIdx.x;
    const int warp = tid >> 5, lane = tid & 31;
    const int tile = blockIdx.x % a.tiles;
    const int bh = blockIdx.x / a.tiles;
    const int h = bh % a.heads;
    const int b = bh / a.heads;
    const int q0 = tile * kBQ;
    const bool rel = a.rel_h != nullptr;

    const T *qb = static_cast<const T *>(a.q) + b * a.q_bs + int64_t(h) * D;
    const T *kb = static_cast<const T *>(a.k) + b * a.k_bs + int64_t(h) * D;
    const T *vb = static_cast<const T *>(a.v) + b * a.v_bs + int64_t(h) * D;
    T *ob = static_cast<T *>(a.out) + b * a.o_bs + int64_t(h) * D;

    /* Q tile (rows past nq are zero: they compute harmless values and are
     * never written). */
    for (int idx = tid; idx < kBQ * D; idx += kThreadsAttn) {
        const int r = idx / D, c = idx % D;
        const int i = q0 + r;
        sQ[idx] = i < a.nq ? samk::to_f32(qb[int64_t(i) * a.q_rs + c]) : 0.0f;
    }
    __syncthreads();

    /* Decomposed rel-pos terms of the tile's rows, once per CTA. Rows past nq
     * would index outside the tables: they get 0. */
    if (rel) {
        const T *th = static_cast<const T *>(a.rel_h);
        const T *tw = static_cast<const T *>(a.rel_w);
        for (int idx = tid; idx < kBQ * a.qh; idx += kThreadsAttn) {
            const int r = idx / a.qh, jh = idx - r * a.qh;
            const int i = q0 + r;
            float acc = 0.0f;
            if (i < a.nq) {
                const T *row = th + int64_t(samk::relpos_row(i / a.qw, jh, a.qh)) * D;
                for (int c = 0; c < D; c++) acc += sQ[r * D + c] * samk::to_f32(row[c]);
            }
            sRH[idx] = acc;
        }
        for (int idx = tid; idx < kBQ * a.qw; idx += kThreadsAttn) {
            const int r = idx / a.qw, jw = idx - r * a.qw;
            const int i = q0 + r;
            float acc = 0.0f;
            if (i < a.nq) {
                const T *row = tw + int64_t(samk::relpos_row(i % a.qw, jw, a.qw)) * D;
                for (int c = 0; c < D; c++) acc += sQ[r * D + c] * samk::to_f32(row[c]);
            }
            sRW[idx] = acc;
        }
    }

    /* Running softmax state of the warp's rows (fp32). */
    float m[kRows], l[kRows], o[kRows][U];
#pragma unroll
    for (int r = 0; r < kRows; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int u = 0; u < U; u++) o[r][u] = 0.0f;
    }
    const int row0 = warp * kRows; // first of this warp's rows within the tile

    for (int k0 = 0; k0 < a.nk; k0 += kBK) {
        /* Everyone is done with the previous tile (and the rel tables and Q
         * are complete before the first). */
        __syncthreads();
        for (int idx = tid; idx < kBK * D; idx += kThreadsAttn) {
            const int jj = idx / D, c = idx % D;
            const int j = k0 + jj;
            float kv = 0.0f, vv = 0.0f;
            if (j < a.nk) {
                kv = samk::to_f32(kb[int64_t(j) * a.k_rs + c]);
                vv = samk::to_f32(vb[int64_t(j) * a.v_rs + c]);
            }
            sK[jj * KS + c] = kv;
            sV[jj * D + c] = vv;
        }
        __syncthreads();

        /* Logits of key j = k0 + lane for the warp's rows. */
        const int j = k0 + lane;
        const bool valid = j < a.nk;
        float s[kRows];
#pragma unroll
        for (int r = 0; r < kRows; r++) s[r] = 0.0f;
#pragma unroll 8
        for (int c = 0; c < D; c++) {
            const float kc = sK[lane * KS + c];
#pragma unroll
            for (int r = 0; r < kRows; r++) s[r] += sQ[(row0 + r) * D + c] * kc;
        }
        int jh = 0, jw = 0;
        if (rel && valid) {
            jh = j / a.qw;
            jw = j - jh * a.qw;
        }
        const T *tab = static_cast<const T *>(a.tab);
        int jy = 0, jx = 0;
        if (tab != nullptr && valid) {
            jy = j / a.ws;
            jx = j - jy * a.ws;
        }
#pragma unroll
        for (int r = 0; r < kRows; r++) {
            float x = s[r] * a.scale;
            if (rel && valid) {
                x = x + sRH[(row0 + r) * a.qh + jh];
                x = x + sRW[(row0 + r) * a.qw + jw];
            }
            const int i = q0 + row0 + r;
            if (tab != nullptr && valid && i < a.nq) { // rows past nq would index past the table
                const int iy = i / a.ws, ix = i - (i / a.ws) * a.ws;
                const int dy = iy > jy ? iy - jy : jy - iy, dx = ix > jx ? ix - jx : jx - ix;
                x = x + samk::to_f32(tab[int64_t(h) * a.ws * a.ws + dy * a.ws + dx]);
            }
            x = valid ? x : -INFINITY;
            /* Online softmax step (samk::softmax_rescale has the algebra).
             * Lane 0's key is always valid, so the tile max is finite and
             * exp(−inf − m) gives 0 for masked keys. */
            const float corr = samk::softmax_rescale(m[r], warp_max(x));
            const float pj = expf(x - m[r]);
            l[r] = l[r] * corr + warp_sum(pj);
#pragma unroll
            for (int u = 0; u < U; u++) o[r][u] *= corr;
            sP[(row0 + r) * kBK + lane] = pj;
        }
        __syncwarp();

        /* o[c] += Σ_j p_j · v_j[c] over the tile's valid keys. */
        const int jn = min(kBK, a.nk - k0);
        for (int jj = 0; jj < jn; jj++) {
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int c = lane + 32 * u;
                const float vc = c < D ? sV[jj * D + c] : 0.0f;
#pragma unroll
                for (int r = 0; r < kRows; r++) o[r][u] += sP[(row0 + r) * kBK + jj] * vc;
            }
        }
        /* sP is rewritten only after the __syncthreads() at the loop top. */
    }

#pragma unroll
    for (int r = 0; r < kRows; r++) {
        const int i = q0 + row0 + r;
        if (i >= a.nq) continue;
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f; // nk == 0: zeros
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = lane + 32 * u;
            if (c < D) ob[int64_t(i) * a.o_rs + c] = samk::from_f32<T>(o[r][u] * inv);
        }
    }
}

template <typename T, int D> samk_status launch(const char *op, const AttnArgs &a, int batch, cudaStream_t st) {
    const size_t smem =
        sizeof(float) * (size_t(smem_floats_fixed(D)) + (a.rel_h != nullptr ? size_t(kBQ) * (a.qh + a.qw) : 0));
    samk_status s = samk::ensure_dynamic_smem(op, reinterpret_cast<const void *>(&attention_kernel<T, D>), smem);
    if (s != SAMK_OK) return s;
    const int64_t blocks = int64_t(a.tiles) * a.heads * batch;
    attention_kernel<T, D><<<unsigned(blocks), kThreadsAttn, smem, st>>>(a);
    return SAMK_OK;
}

template <typename T> samk_status dispatch(const char *op, int d, const AttnArgs &a, int batch, cudaStream_t st) {
    switch (d) {
    case 4: return launch<T, 4>(op, a, batch, st);
    case 8: return launch<T, 8>(op, a, batch, st);
    case 16: return launch<T, 16>(op, a, batch, st);
    case 32: return launch<T, 32>(op, a, batch, st);
    case 64: return launch<T, 64>(op, a, batch, st);
    case 80: return launch<T, 80>(op, a, batch, st);
    case 128: return launch<T, 128>(op, a, batch, st);
    }
    return samk::fail_op(SAMK_ERR_UNSUPPORTED, op, "head_dim %d unsupported (have 4, 8, 16, 32, 64, 80, 128)", d);
}

bool head_dim_supported(int d) {
    return d == 4 || d == 8 || d == 16 || d == 32 || d == 64 || d == 80 || d == 128;
}

} // namespace

extern "C" int samk_attention_supports(int head_dim, int head_dim_v) {
    return head_dim == head_dim_v && head_dim_supported(head_dim) ? 1 : 0;
}

extern "C" samk_status samk_attention(const samk_attention_params *p, samk_stream stream) {
    static const char op[] = "samk_attention";
    samk::begin();
    SAMK_CHECK(p != nullptr, SAMK_ERR_INVALID_ARG, op, "null params");
    SAMK_CHECK(samk::dtype_valid(p->dtype), SAMK_ERR_INVALID_ARG, op, "unknown dtype %d", int(p->dtype));
    SAMK_CHECK(p->batch >= 0 && p->heads >= 0 && p->nq >= 0 && p->nk >= 0, SAMK_ERR_INVALID_ARG, op,
               "negative size (batch %d, heads %d, nq %d, nk %d)", p->batch, p->heads, p->nq, p->nk);
    SAMK_CHECK(p->head_dim >= 1 && p->head_dim_v >= 1, SAMK_ERR_INVALID_ARG, op, "head_dim %d, head_dim_v %d",
               p->head_dim, p->head_dim_v);
    SAMK_CHECK(p->head_dim == p->head_dim_v, SAMK_ERR_UNSUPPORTED, op, "head_dim %d != head_dim_v %d unsupported",
               p->head_dim, p->head_dim_v);
    SAMK_CHECK(head_dim_supported(p->head_dim), SAMK_ERR_UNSUPPORTED, op,
               "head_dim %d unsupported (have 4, 8, 16, 32, 64, 80, 128)", p->head_dim);
    const bool rel = p->rel_h != nullptr || p->rel_w != nullptr;
    if (rel) {
        SAMK_CHECK(p->rel_h != nullptr && p->rel_w != nullptr, SAMK_ERR_INVALID_ARG, op,
                   "rel_h and rel_w must both be set or both be NULL");
        SAMK_CHECK(p->qh >= 1 && p->qw >= 1, SAMK_ERR_INVALID_ARG, op, "rel-pos grid %dx%d", p->qh, p->qw);
        SAMK_CHECK(int64_t(p->qh) * p->qw == p->nq && p->nq == p->nk, SAMK_ERR_INVALID_ARG, op,
                   "rel-pos grid %dx%d needs nq = nk = %lld, have nq %d, nk %d", p->qh, p->qw,
                   (long long)p->qh * p->qw, p->nq, p->nk);
    }
    if (p->bias_table != nullptr) {
        SAMK_CHECK(!rel, SAMK_ERR_INVALID_ARG, op, "bias_table and rel-pos tables are exclusive");
        SAMK_CHECK(p->bias_ws >= 1 && int64_t(p->bias_ws) * p->bias_ws == p->nq && p->nq == p->nk,
                   SAMK_ERR_INVALID_ARG, op, "offset bias of a %d×%d window needs nq = nk = %lld, have nq %d, nk %d",
                   p->bias_ws, p->bias_ws, (long long)p->bias_ws * p->bias_ws, p->nq, p->nk);
    }
    if (p->batch == 0 || p->heads == 0 || p->nq == 0) return SAMK_OK;
    const int64_t cq = int64_t(p->heads) * p->head_dim; // channels of a q/k/v/out row
    SAMK_CHECK(p->q != nullptr && p->out != nullptr, SAMK_ERR_INVALID_ARG, op, "null q or out");
    SAMK_CHECK(p->nk == 0 || (p->k != nullptr && p->v != nullptr), SAMK_ERR_INVALID_ARG, op, "null k or v");
    SAMK_CHECK(p->q_batch_stride >= 0 && p->k_batch_stride >= 0 && p->v_batch_stride >= 0 &&
                   p->out_batch_stride >= 0,
               SAMK_ERR_INVALID_ARG, op, "negative batch stride");
    SAMK_CHECK(p->nq == 1 || p->q_row_stride >= cq, SAMK_ERR_INVALID_ARG, op, "q_row_stride %lld < heads*d %lld",
               (long long)p->q_row_stride, (long long)cq);
    SAMK_CHECK(p->nq == 1 || p->out_row_stride >= cq, SAMK_ERR_INVALID_ARG, op,
               "out_row_stride %lld < heads*d %lld", (long long)p->out_row_stride, (long long)cq);
    SAMK_CHECK(p->nk <= 1 || (p->k_row_stride >= cq && p->v_row_stride >= cq), SAMK_ERR_INVALID_ARG, op,
               "k_row_stride %lld / v_row_stride %lld < heads*d %lld", (long long)p->k_row_stride,
               (long long)p->v_row_stride, (long long)cq);
    SAMK_CHECK(p->q_row_stride >= 0 && p->k_row_stride >= 0 && p->v_row_stride >= 0 && p->out_row_stride >= 0,
               SAMK_ERR_INVALID_ARG, op, "negative row stride");
    SAMK_CHECK(p->batch == 1 || p->out_batch_stride >= (int64_t(p->nq) - 1) * p->out_row_stride + cq,
               SAMK_ERR_INVALID_ARG, op, "out_batch_stride %lld lets batches overlap", (long long)p->out_batch_stride);
    const samk_dtype t = p->dtype;
    SAMK_CHECK(samk::aligned_for(p->q, t) && samk::aligned_for(p->k, t) && samk::aligned_for(p->v, t) &&
                   samk::aligned_for(p->out, t) && samk::aligned_for(p->rel_h, t) && samk::aligned_for(p->rel_w, t) &&
                   samk::aligned_for(p->bias_table, t),
               SAMK_ERR_INVALID_ARG, op, "pointer not aligned to its %s elements", samk::dtype_name(t));

    AttnArgs a;
    a.q = p->q;
    a.k = p->k;
    a.v = p->v;
    a.out = p->out;
    a.rel_h = rel ? p->rel_h : nullptr;
    a.rel_w = rel ? p->rel_w : nullptr;
    a.tab = p->bias_table;
    a.ws = p->bias_table != nullptr ? p->bias_ws : 0;
    a.q_bs = p->q_batch_stride;
    a.q_rs = p->q_row_stride;
    a.k_bs = p->k_batch_stride;
    a.k_rs = p->k_row_stride;
    a.v_bs = p->v_batch_stride;
    a.v_rs = p->v_row_stride;
    a.o_bs = p->out_batch_stride;
    a.o_rs = p->out_row_stride;
    a.heads = p->heads;
    a.nq = p->nq;
    a.nk = p->nk;
    a.qh = rel ? p->qh : 0;
    a.qw = rel ? p->qw : 0;
    a.tiles = (p->nq + kBQ - 1) / kBQ;
    a.scale = p->scale;
    const int64_t blocks = int64_t(a.tiles) * p->heads * p->batch;
    SAMK_CHECK(blocks <= INT_MAX, SAMK_ERR_UNSUPPORTED, op, "%lld CTAs exceed the grid limit", (long long)blocks);

    cudaStream_t st = samk::as_stream(stream);
    samk_status s = t == SAMK_F32 ? dispatch<float>(op, p->head_dim, a, p->batch, st)
                                  : dispatch<bf16>(op, p->head_dim, a, p->batch, st);
    if (s != SAMK_OK) return s;
    return samk::check_launch(op);
}
