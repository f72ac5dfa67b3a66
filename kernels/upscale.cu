/*
 * upscale.cu — Sam.postprocess_masks fused: two bilinear resizes with a crop
 * in between, optionally thresholded to a binary mask.
 *
 * Computes, per plane (unfused, segment_anything modeling/sam.py):
 *   mid = F.interpolate(in (h, w), (pad, pad), "bilinear", align_corners=False)
 *   mid = mid[:in_h, :in_w]
 *   res = F.interpolate(mid, (out_h, out_w), "bilinear", align_corners=False)
 *   out = res (out_mode 0, float32)  or  out = res > threshold (out_mode 1, uint8 0/1)
 * with PyTorch's taps (upscale_math.cuh): scale = (float)in/(float)out,
 * src = max((i + 0.5)·scale − 0.5, 0), i0 = min(⌊src⌋, in−1),
 * i1 = i0 + (i0 < in−1), λ1 = src − i0, λ0 = 1 − λ1, blended as
 * λy0·(λx0·a + λx1·b) + λy1·(λx0·c + λx1·d).
 *
 * The pad×pad intermediate is never materialised: each output pixel needs the
 * 2×2 intermediate values at its second-stage taps (rows ty.i0/ty.i1 < in_h,
 * columns tx.i0/tx.i1 < in_w), and each of those is recomputed from its 2×2
 * input pixels with the first-stage taps. Each intermediate value is an fp32
 * number computed exactly as the separate first resize computes it (same
 * taps, same single-rounding ops, no FMA contraction), so the result is bit
 * for bit the two separate resizes. The CPU reference evaluates the same
 * formula in Go, which may contract a·b + c into an FMA (it does on arm64
 * and with GOAMD64=v3), so against it the GPU agrees to the last bit or two
 * of fp32, not always bit for bit (the tests allow 1e-5 of the scale).
 * No workspace (samk_upscale_masks_workspace_bytes() = 0).
 *
 * Layouts: in (planes, h, w) of dtype (F32 or BF16, widened to fp32); out
 * (planes, out_h, out_w) float32 or uint8.
 * Mapping: one thread per output pixel, grid-stride over planes·out_h·out_w
 * (x fastest: coalesced stores; the 16 gathered loads per pixel hit L1/L2, a
 * 256×256 fp32 plane is 256 KB). Recomputing the intermediate costs ~4× the
 * arithmetic of a materialised one; a shared-memory tiled version is left for
 * the performance issue.
 *
 * Tested by the CUDA-tagged Go tests in sam/nn/gpu against the CPU backend
 * (UpscaleMasks with the fixtures' sizes: 32→128 crop 95×128 → 119×161,
 * 256→1024 crop 1024×768 → 1365×1024, down-scaling second stage) and
 * TestUpscaleMasksThreshold (the uint8 output equals logits > threshold);
 * the taps and the blend by kernels/test/host_test.cu.
 */
#include "common.cuh"
#include "upscale_math.cuh"

namespace {

using samk::bf16;

struct UpArgs {
    const void *in;
    void *out;
    int64_t total; // planes·out_h·out_w
    int out_h, out_w;
    samk::UpscaleGeom g;
    int out_mode;
    float threshold;
};

template <typename T> __global__ void upscale_kernel(UpArgs a) {
    const T *in = static_cast<const T *>(a.in);
    const int64_t plane_px = int64_t(a.out_h) * a.out_w;
    const int64_t plane_in = int64_t(a.g.h) * a.g.w;
    for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < a.total; o += int64_t(gridDim.x) * blockDim.x) {
        const int64_t pl = o / plane_px;
        const int r = int(o - pl * plane_px);
        const float v = samk::upscale_pixel(in + pl * plane_in, a.g, r / a.out_w, r % a.out_w);
        if (a.out_mode == 0) {
            static_cast<float *>(a.out)[o] = v;
        } else {
            static_cast<uint8_t *>(a.out)[o] = v > a.threshold ? 1 : 0;
        }
    }
}

} // namespace

extern "C" {

size_t samk_upscale_masks_workspace_bytes(const samk_upscale_params *p) {
    (void)p;
    return 0;
}

samk_status samk_upscale_masks(const samk_upscale_params *p, void *workspace, size_t workspace_bytes,
                               samk_stream stream) {
    static const char op[] = "samk_upscale_masks";
    samk::begin();
    SAMK_CHECK(p != nullptr, SAMK_ERR_INVALID_ARG, op, "null params");
    SAMK_CHECK(samk::dtype_valid(p->dtype), SAMK_ERR_INVALID_ARG, op, "unknown dtype %d", int(p->dtype));
    SAMK_CHECK(p->out_mode == 0 || p->out_mode == 1, SAMK_ERR_INVALID_ARG, op, "out_mode %d: want 0 or 1",
               p->out_mode);
    SAMK_CHECK(p->planes >= 0, SAMK_ERR_INVALID_ARG, op, "negative planes %d", p->planes);
    SAMK_CHECK(p->h >= 1 && p->w >= 1 && p->pad >= 1 && p->in_h >= 1 && p->in_w >= 1 && p->in_h <= p->pad &&
                   p->in_w <= p->pad && p->out_h >= 1 && p->out_w >= 1,
               SAMK_ERR_INVALID_ARG, op,
               "sizes h %d, w %d, pad %d, in %dx%d, out %dx%d: want all >= 1 and in_h, in_w <= pad", p->h, p->w,
               p->pad, p->in_h, p->in_w, p->out_h, p->out_w);
    const int64_t total = int64_t(p->planes) * p->out_h * p->out_w;
    if (total == 0) return SAMK_OK;
    SAMK_CHECK(p->in != nullptr && p->out != nullptr, SAMK_ERR_INVALID_ARG, op, "null in or out");
    SAMK_CHECK(samk::aligned_for(p->in, p->dtype) && (p->out_mode == 1 || samk::aligned_for(p->out, SAMK_F32)),
               SAMK_ERR_INVALID_ARG, op, "misaligned pointer");

    UpArgs a;
    a.in = p->in;
    a.out = p->out;
    a.total = total;
    a.out_h = p->out_h;
    a.out_w = p->out_w;
    a.g = samk::upscale_geom(p->h, p->w, p->pad, p->in_h, p->in_w, p->out_h, p->out_w);
    a.out_mode = p->out_mode;
    a.threshold = p->threshold;
    cudaStream_t st = samk::as_stream(stream);
    const unsigned g = samk::grid_for(total);
    if (p->dtype == SAMK_F32) {
        upscale_kernel<float><<<g, samk::kThreads, 0, st>>>(a);
    } else {
        upscale_kernel<bf16><<<g, samk::kThreads, 0, st>>>(a);
    }
    return samk::check_launch(op);
}

} // extern "C"
