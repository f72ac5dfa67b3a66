/*
 * mask_downsample.cu — the prompt encoder's mask_downscaling stack, fused
 * into one kernel.
 *
 * Computes (unfused, segment_anything modeling/prompt_encoder.py):
 *   h1 = conv2x2/2(mask; conv1_w (c1, 1, 2, 2), conv1_b)     (B, H/2, W/2, c1)
 *   h1 = GELU(LayerNorm2d(h1; ln1_w, ln1_b, eps))              over c1
 *   h2 = conv2x2/2(h1; conv2_w (c2, c1, 2, 2), conv2_b)       (B, H/4, W/4, c2)
 *   h2 = GELU(LayerNorm2d(h2; ln2_w, ln2_b, eps))              over c2
 *   out = conv1x1(h2; conv3_w (c, c2, 1, 1), conv3_b)         (B, H/4, W/4, c)
 * LayerNorm2d: biased variance over channels, fp32 two-pass; GELU exact erf.
 * Because both strided convs have kernel == stride, an output pixel (oy, ox)
 * depends only on its own 4×4 input patch mask[b, 4oy : 4oy+4, 4ox : 4ox+4]:
 *   conv1 at the 2×2 positions (py, px) of the patch (mask rows 4oy + 2py + ky),
 *   conv2 over those 4 positions × c1, then conv3 — no halo, no intermediate
 *   tensors in global memory.
 *
 * Layouts: mask (B, H, W) (one channel, H and W multiples of 4), out
 * (B, H/4, W/4, c) channels-last; conv weights in torch layout.
 * Variants: F32, BF16 storage (mask, weights and out share the dtype); fp32
 * arithmetic. SAM: c1 = mask_in_chans/4 = 4, c2 = 16, c = 256.
 *
 * Mapping: one CTA (256 threads) per tile of kPix = 32 output pixels. Shared
 * memory holds all weights (fp32, conv weights transposed so that consecutive
 * threads — consecutive output channels — read consecutive banks) and the
 * tile's patches (kPix·16), h1 (kPix·4·c1) and h2 (kPix·c2). Five phases
 * separated by __syncthreads(), each a block-strided loop over its elements:
 * conv1 → LN1+GELU (one thread per (pixel, position) row) → conv2 →
 * LN2+GELU (one thread per pixel) → conv3 + store (coalesced over c).
 * SAM needs ≈ 22 KB; above 48 KB the launcher opts in to more dynamic shared
 * memory, above the device's limit it returns SAMK_ERR_UNSUPPORTED.
 * No workspace (samk_mask_downsample_workspace_bytes() = 0).
 *
 * Tested by the CUDA-tagged Go tests in sam/nn/gpu against the CPU backend
 * (MaskDownsample with the fixtures' weights and random ones, B > 1, non-square
 * H ≠ W), bf16 by normalised error.
 */
#include <math.h>

#include "common.cuh"

namespace {

using samk::bf16;

constexpr int kPix = 32;       // output pixels per CTA
constexpr int kThreadsMD = 256;

struct MDArgs {
    const void *mask;
    void *out;
    const void *w1, *b1, *g1, *be1, *w2, *b2, *g2, *be2, *w3, *b3;
    int64_t npix; // B·(H/4)·(W/4)
    int h, w, c1, c2, c;
    float eps;
};

/* Shared-memory floats: weights (transposed), then the tile's activations. */
__host__ __device__ inline int64_t md_weight_floats(int c1, int c2, int c) {
    return 4 * int64_t(c1) + 3 * int64_t(c1) + 4 * int64_t(c1) * c2 + 3 * int64_t(c2) + int64_t(c2) * c + c;
}
__host__ __device__ inline int64_t md_smem_floats(int c1, int c2, int c) {
    return md_weight_floats(c1, c2, c) + kPix * (16 + 4 * int64_t(c1) + c2);
}

/* LayerNorm over n values in place, then GELU (one thread per row). */
__device__ __forceinline__ void ln_gelu_row(float *v, int n, const float *g, const float *be, float eps) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += v[i];
    const float mean = s / float(n);
    float ss = 0.0f;
    for (int i = 0; i < n; i++) {
        const float d = v[i] - mean;
        ss += d * d;
    }
    const float rstd = 1.0f / sqrtf(ss / float(n) + eps);
    for (int i = 0; i < n; i++) v[i] = samk::gelu_erf((v[i] - mean) * rstd * g[i] + be[i]);
}

template <typename T> __global__ void __launch_bounds__(kThreadsMD) mask_downsample_kernel(MDArgs a) {
    extern __shared__ float sm[];
    const int c1 = a.c1, c2 = a.c2, c = a.c;
    /* Weights, fp32. */
    float *w1t = sm;                  // (4, c1):      w1t[pos·c1 + ch]       = conv1_w[ch, 0, ky, kx], pos = ky·2 + kx
    float *b1 = w1t + 4 * c1;         // (c1)
    float *g1 = b1 + c1;              // (c1)  ln1 weight
    float *be1 = g1 + c1;             // (c1)  ln1 bias
    float *w2t = be1 + c1;            // (c1·4, c2):  w2t[(ch·4 + pos)·c2 + o] = conv2_w[o, ch, ky, kx]
    float *b2 = w2t + 4 * c1 * c2;    // (c2)
    float *g2 = b2 + c2;              // (c2)
    float *be2 = g2 + c2;             // (c2)
    float *w3t = be2 + c2;            // (c2, c):     w3t[ch·c + o]          = conv3_w[o, ch, 0, 0]
    float *b3 = w3t + c2 * c;         // (c)
    /* The tile's activations. */
    float *patch = b3 + c;            // (kPix, 16):    patch[pix·16 + dy·4 + dx]
    float *h1 = patch + kPix * 16;    // (kPix, 4, c1): h1[(pix·4 + pos)·c1 + ch]
    float *h2 = h1 + kPix * 4 * c1;   // (kPix, c2)

    const int tid = threadIdx.x;
    const T *W1 = static_cast<const T *>(a.w1);
    const T *W2 = static_cast<const T *>(a.w2);
    const T *W3 = static_cast<const T *>(a.w3);
    for (int i = tid; i < 4 * c1; i += kThreadsMD) {
        const int pos = i / c1, ch = i % c1;
        w1t[i] = samk::to_f32(W1[ch * 4 + pos]);
    }
    for (int i = tid; i < c1; i += kThreadsMD) {
        b1[i] = samk::to_f32(static_cast<const T *>(a.b1)[i]);
        g1[i] = samk::to_f32(static_cast<const T *>(a.g1)[i]);
        be1[i] = samk::to_f32(static_cast<const T *>(a.be1)[i]);
    }
    for (int i = tid; i < 4 * c1 * c2; i += kThreadsMD) {
        const int o = i % c2, chpos = i / c2; // chpos = ch·4 + pos
        w2t[i] = samk::to_f32(W2[o * 4 * c1 + chpos]);
    }
    for (int i = tid; i < c2; i += kThreadsMD) {
        b2[i] = samk::to_f32(static_cast<const T *>(a.b2)[i]);
        g2[i] = samk::to_f32(static_cast<const T *>(a.g2)[i]);
        be2[i] = samk::to_f32(static_cast<const T *>(a.be2)[i]);
    }
    for (int i = tid; i < c2 * c; i += kThreadsMD) {
        const int o = i % c, ch = i / c;
        w3t[i] = samk::to_f32(W3[o * c2 + ch]);
    }
    for (int i = tid; i < c; i += kThreadsMD) b3[i] = samk::to_f32(static_cast<const T *>(a.b3)[i]);

    /* Input patches. Pixels past npix read nothing (0) and are not stored. */
    const int oh = a.h / 4, ow = a.w / 4;
    const int64_t pix0 = int64_t(blockIdx.x) * kPix;
    const T *M = static_cast<const T *>(a.mask);
    for (int i = tid; i < kPix * 16; i += kThreadsMD) {
        const int pix = i / 16, e = i % 16;
        const int64_t gp = pix0 + pix;
        float v = 0.0f;
        if (gp < a.npix) {
            const int64_t b = gp / (int64_t(oh) * ow);
            const int r = int(gp - b * oh * ow);
            const int oy = r / ow, ox = r % ow;
            const int y = 4 * oy + e / 4, x = 4 * ox + e % 4;
            v = samk::to_f32(M[(b * a.h + y) * a.w + x]);
        }
        patch[i] = v;
    }
    __syncthreads();

    /* conv1: h1[pix, (py, px), ch] = b1[ch] + Σ_{ky,kx} w1[ch, ky, kx]·patch[pix, 2py + ky, 2px + kx]. */
    for (int i = tid; i < kPix * 4 * c1; i += kThreadsMD) {
        const int ch = i % c1, pp = i / c1; // pp = pix·4 + pos
        const int pos = pp % 4, pix = pp / 4;
        const int py = pos / 2, px = pos % 2;
        const float *pt = patch + pix * 16;
        float v = b1[ch];
#pragma unroll
        for (int kp = 0; kp < 4; kp++) {
            const int ky = kp / 2, kx = kp % 2;
            v += w1t[kp * c1 + ch] * pt[(2 * py + ky) * 4 + 2 * px + kx];
        }
        h1[i] = v;
    }
    __syncthreads();

    /* LayerNorm2d over c1 + GELU, per (pixel, position). */
    for (int i = tid; i < kPix * 4; i += kThreadsMD) ln_gelu_row(h1 + i * c1, c1, g1, be1, a.eps);
    __syncthreads();

    /* conv2: h2[pix, o] = b2[o] + Σ_{ch, pos} w2[o, ch, pos]·h1[pix, pos, ch]. */
    for (int i = tid; i < kPix * c2; i += kThreadsMD) {
        const int o = i % c2, pix = i / c2;
        const float *hp = h1 + pix * 4 * c1;
        float v = b2[o];
        for (int ch = 0; ch < c1; ch++) {
#pragma unroll
            for (int pos = 0; pos < 4; pos++) v += w2t[(ch * 4 + pos) * c2 + o] * hp[pos * c1 + ch];
        }
        h2[i] = v;
    }
    __syncthreads();

    /* LayerNorm2d over c2 + GELU, per pixel. */
    for (int i = tid; i < kPix; i += kThreadsMD) ln_gelu_row(h2 + i * c2, c2, g2, be2, a.eps);
    __syncthreads();

    /* conv3 (1×1): out[pix, o] = b3[o] + Σ_ch w3[o, ch]·h2[pix, ch]. */
    T *O = static_cast<T *>(a.out);
    for (int i = tid; i < kPix * c; i += kThreadsMD) {
        const int o = i % c, pix = i / c;
        const int64_t gp = pix0 + pix;
        if (gp >= a.npix) continue;
        const float *hp = h2 + pix * c2;
        float v = b3[o];
        for (int ch = 0; ch < c2; ch++) v += w3t[ch * c + o] * hp[ch];
        O[gp * c + o] = samk::from_f32<T>(v);
    }
}

} // namespace

extern "C" {

size_t samk_mask_downsample_workspace_bytes(const samk_mask_downsample_params *p) {
    (void)p;
    return 0;
}

samk_status samk_mask_downsample(const samk_mask_downsample_params *p, void *workspace, size_t workspace_bytes,
                                 samk_stream stream) {
    static const char op[] = "samk_mask_downsample";
    samk::begin();
    SAMK_CHECK(p != nullptr, SAMK_ERR_INVALID_ARG, op, "null params");
    SAMK_CHECK(samk::dtype_valid(p->dtype), SAMK_ERR_INVALID_ARG, op, "unknown dtype %d", int(p->dtype));
    SAMK_CHECK(p->batch >= 0 && p->h >= 0 && p->w >= 0, SAMK_ERR_INVALID_ARG, op,
               "negative size (batch %d, h %d, w %d)", p->batch, p->h, p->w);
    SAMK_CHECK(p->h % 4 == 0 && p->w % 4 == 0, SAMK_ERR_INVALID_ARG, op, "mask %dx%d: H and W must be multiples of 4",
               p->h, p->w);
    SAMK_CHECK(p->c1 >= 1 && p->c2 >= 1 && p->c >= 1, SAMK_ERR_INVALID_ARG, op, "channels c1 %d, c2 %d, c %d",
               p->c1, p->c2, p->c);
    SAMK_CHECK(p->eps >= 0.0f, SAMK_ERR_INVALID_ARG, op, "eps %g < 0", double(p->eps));
    const int64_t npix = int64_t(p->batch) * (p->h / 4) * (p->w / 4);
    if (npix == 0) return SAMK_OK;
    SAMK_CHECK(p->mask != nullptr && p->out != nullptr, SAMK_ERR_INVALID_ARG, op, "null mask or out");
    const void *ws[] = {p->conv1_w, p->conv1_b, p->ln1_w, p->ln1_b, p->conv2_w, p->conv2_b,
                        p->ln2_w,   p->ln2_b,   p->conv3_w, p->conv3_b};
    for (const void *q : ws) {
        SAMK_CHECK(q != nullptr, SAMK_ERR_INVALID_ARG, op, "null weight or bias (all are required)");
        SAMK_CHECK(samk::aligned_for(q, p->dtype), SAMK_ERR_INVALID_ARG, op, "misaligned weight");
    }
    SAMK_CHECK(samk::aligned_for(p->mask, p->dtype) && samk::aligned_for(p->out, p->dtype), SAMK_ERR_INVALID_ARG, op,
               "misaligned mask or out");
    const int64_t smem64 = md_smem_floats(p->c1, p->c2, p->c) * int64_t(sizeof(float));
    SAMK_CHECK(smem64 <= INT32_MAX, SAMK_ERR_UNSUPPORTED, op, "channels too large");
    const size_t smem = size_t(smem64);
    const int64_t blocks = (npix + kPix - 1) / kPix;
    SAMK_CHECK(blocks <= INT32_MAX, SAMK_ERR_UNSUPPORTED, op, "%lld CTAs exceed the grid limit", (long long)blocks);

    MDArgs a;
    a.mask = p->mask;
    a.out = p->out;
    a.w1 = p->conv1_w;
    a.b1 = p->conv1_b;
    a.g1 = p->ln1_w;
    a.be1 = p->ln1_b;
    a.w2 = p->conv2_w;
    a.b2 = p->conv2_b;
    a.g2 = p->ln2_w;
    a.be2 = p->ln2_b;
    a.w3 = p->conv3_w;
    a.b3 = p->conv3_b;
    a.npix = npix;
    a.h = p->h;
    a.w = p->w;
    a.c1 = p->c1;
    a.c2 = p->c2;
    a.c = p->c;
    a.eps = p->eps;

    cudaStream_t st = samk::as_stream(stream);
    samk_status s;
    if (p->dtype == SAMK_F32) {
        s = samk::ensure_dynamic_smem(op, reinterpret_cast<const void *>(&mask_downsample_kernel<float>), smem);
        if (s != SAMK_OK) return s;
        mask_downsample_kernel<float><<<unsigned(blocks), kThreadsMD, smem, st>>>(a);
    } else {
        s = samk::ensure_dynamic_smem(op, reinterpret_cast<const void *>(&mask_downsample_kernel<bf16>), smem);
        if (s != SAMK_OK) return s;
        mask_downsample_kernel<bf16><<<unsigned(blocks), kThreadsMD, smem, st>>>(a);
    }
    return samk::check_launch(op);
}

} // extern "C"
