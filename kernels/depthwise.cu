/*
 * depthwise.cu — depthwise convolution (groups = channels) with bias and
 * activation fused: TinyViT's MBConv conv2, PatchMerging conv2 and the
 * blocks' local_conv (each a Conv2d_BN whose BatchNorm is folded into the
 * weight and bias at load).
 *
 * Computes (unfused formula):
 *   out[n, i, j, c] = act(bias[c] + Σ_{ky<k, kx<k} in[n, i·s+ky−pad, j·s+kx−pad, c]·w[c, 0, ky, kx])
 * with taps outside the map skipped (zero padding), the sum in fp32 in the
 * order ky, kx, one rounding at the store.
 *
 * Layouts: in (B, H, W, C) and out (B, OH, OW, C) channels-last, w (C, 1, k,
 * k) torch layout, bias (C) or NULL. Variants: F32, BF16 storage; act none,
 * exact-erf GELU, ReLU; any k, stride, pad.
 *
 * Mapping: one thread per output element, c fastest (neighbouring threads
 * read neighbouring channels of the same pixel: coalesced), grid-stride over
 * B·OH·OW·C. The k·k weights of a channel are read from global memory (L1
 * serves their reuse across the pixels of a warp's neighbours). Memory
 * bound; a shared-memory tiled version is left for the performance work.
 *
 * Tested by the CUDA-tagged Go tests in sam/nn/gpu (TestConvAct, against
 * the CPU backend, which is tested against float64 loops) and the argument
 * checks by kernels/test/host_test.cu.
 */
#include "common.cuh"

namespace {

using samk::bf16;

struct DwArgs {
    const void *in, *w, *bias;
    void *out;
    int64_t total;
    int h, w_in, c, k, stride, pad, oh, ow, act;
};

template <typename T> __global__ void depthwise_kernel(DwArgs a) {
    const T *in = static_cast<const T *>(a.in);
    const T *w = static_cast<const T *>(a.w);
    const T *bias = static_cast<const T *>(a.bias);
    T *out = static_cast<T *>(a.out);
    for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < a.total;
         idx += int64_t(gridDim.x) * blockDim.x) {
        const int c = int(idx % a.c);
        int64_t r = idx / a.c;
        const int j = int(r % a.ow);
        r /= a.ow;
        const int i = int(r % a.oh);
        const int64_t n = r / a.oh;
        float s = bias != nullptr ? samk::to_f32(bias[c]) : 0.0f;
        const T *wc = w + int64_t(c) * a.k * a.k;
        for (int ky = 0; ky < a.k; ky++) {
            const int iy = i * a.stride + ky - a.pad;
            if (iy < 0 || iy >= a.h) continue;
            const T *row = in + ((n * a.h + iy) * a.w_in) * int64_t(a.c) + c;
            for (int kx = 0; kx < a.k; kx++) {
                const int ix = j * a.stride + kx - a.pad;
                if (ix < 0 || ix >= a.w_in) continue;
                s = fmaf(samk::to_f32(row[int64_t(ix) * a.c]), samk::to_f32(wc[ky * a.k + kx]), s);
            }
        }
        out[idx] = samk::from_f32<T>(samk::apply_act(s, a.act));
    }
}

} // namespace

extern "C" samk_status samk_depthwise_conv(const samk_depthwise_params *p, samk_stream stream) {
    static const char op[] = "samk_depthwise_conv";
    samk::begin();
    SAMK_CHECK(p != nullptr, SAMK_ERR_INVALID_ARG, op, "null params");
    SAMK_CHECK(samk::dtype_valid(p->dtype), SAMK_ERR_INVALID_ARG, op, "unknown dtype %d", int(p->dtype));
    SAMK_CHECK(samk::act_valid(p->act), SAMK_ERR_INVALID_ARG, op, "unknown activation %d", int(p->act));
    SAMK_CHECK(p->batch >= 0 && p->h >= 1 && p->w_in >= 1 && p->c >= 1 && p->k >= 1 && p->stride >= 1 && p->pad >= 0,
               SAMK_ERR_INVALID_ARG, op, "sizes batch %d, %dx%dx%d, k %d, stride %d, pad %d", p->batch, p->h, p->w_in,
               p->c, p->k, p->stride, p->pad);
    SAMK_CHECK(p->h + 2 * p->pad >= p->k && p->w_in + 2 * p->pad >= p->k, SAMK_ERR_INVALID_ARG, op,
               "kernel %d larger than the padded %dx%d map", p->k, p->h, p->w_in);
    if (p->batch == 0) return SAMK_OK;
    SAMK_CHECK(p->in != nullptr && p->w != nullptr && p->out != nullptr, SAMK_ERR_INVALID_ARG, op,
               "null pointer (in %p, w %p, out %p)", p->in, p->w, p->out);
    const samk_dtype t = p->dtype;
    SAMK_CHECK(samk::aligned_for(p->in, t) && samk::aligned_for(p->w, t) && samk::aligned_for(p->bias, t) &&
                   samk::aligned_for(p->out, t),
               SAMK_ERR_INVALID_ARG, op, "pointer not aligned to its %s elements", samk::dtype_name(t));
    DwArgs a;
    a.in = p->in;
    a.w = p->w;
    a.bias = p->bias;
    a.out = p->out;
    a.h = p->h;
    a.w_in = p->w_in;
    a.c = p->c;
    a.k = p->k;
    a.stride = p->stride;
    a.pad = p->pad;
    a.oh = (p->h + 2 * p->pad - p->k) / p->stride + 1;
    a.ow = (p->w_in + 2 * p->pad - p->k) / p->stride + 1;
    a.act = int(p->act);
    a.total = int64_t(p->batch) * a.oh * a.ow * p->c;
    const unsigned g = samk::grid_for(a.total);
    cudaStream_t st = samk::as_stream(stream);
    if (t == SAMK_F32) {
        depthwise_kernel<float><<<g, samk::kThreads, 0, st>>>(a);
    } else {
        depthwise_kernel<bf16><<<g, samk::kThreads, 0, st>>>(a);
    }
    return samk::check_launch(op);
}
