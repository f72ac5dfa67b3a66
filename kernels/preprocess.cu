/*
 * preprocess.cu — SamPredictor.set_image's normalisation and padding.
 *
 * Computes (unfused, segment_anything predictor.py + sam.py preprocess):
 *   x   = (float32(rgb[y, x, c]) − mean[c]) / std[c]       y < h, x < w
 *   out = F.pad(x, (0, size − w, 0, size − h))            zeros bottom/right
 * in fp32 (one IEEE subtraction, one IEEE division: bit-exact with the fixtures'
 * `input` tensor and the CPU reference), then rounded to dtype.
 *
 * Layouts: rgb (h, w, 3) uint8 (the ResizeLongestSide output, HWC), out
 * (size, size, 3) channels-last (the patch-embed im2col reads it as (B, H, W, C)).
 * Variants: F32 or BF16 output.
 * Mapping: one thread per output element, grid-stride (memory bound).
 *
 * Tested by the CUDA-tagged Go tests in sam/nn/gpu against the CPU
 * preprocessing (and the fixtures' `input`, bit-exact in fp32).
 */
#include "common.cuh"
#include "upscale_math.cuh"

namespace {

using samk::bf16;

struct PreArgs {
    const uint8_t *rgb;
    void *out;
    int h, w, size;
    float mean[3], std[3];
};

template <typename T> __global__ void preprocess_kernel(PreArgs a) {
    const int64_t total = int64_t(a.size) * a.size * 3;
    T *out = static_cast<T *>(a.out);
    for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
        const int c = int(o % 3);
        const int64_t px = o / 3;
        const int x = int(px % a.size), y = int(px / a.size);
        float v = 0.0f;
        if (y < a.h && x < a.w) {
            const float u = float(a.rgb[(int64_t(y) * a.w + x) * 3 + c]);
            v = samk::div_rn(samk::sub_rn(u, a.mean[c]), a.std[c]);
        }
        out[o] = samk::from_f32<T>(v);
    }
}

} // namespace

extern "C" samk_status samk_preprocess(const samk_preprocess_params *p, samk_stream stream) {
    static const char op[] = "samk_preprocess";
    samk::begin();
    SAMK_CHECK(p != nullptr, SAMK_ERR_INVALID_ARG, op, "null params");
    SAMK_CHECK(samk::dtype_valid(p->dtype), SAMK_ERR_INVALID_ARG, op, "unknown dtype %d", int(p->dtype));
    SAMK_CHECK(p->h >= 0 && p->w >= 0 && p->size >= 0 && p->h <= p->size && p->w <= p->size, SAMK_ERR_INVALID_ARG, op,
               "image %dx%d does not fit the %dx%d square", p->h, p->w, p->size, p->size);
    SAMK_CHECK(p->std[0] != 0.0f && p->std[1] != 0.0f && p->std[2] != 0.0f, SAMK_ERR_INVALID_ARG, op, "zero std");
    if (p->size == 0) return SAMK_OK;
    SAMK_CHECK(p->out != nullptr, SAMK_ERR_INVALID_ARG, op, "null out");
    SAMK_CHECK(p->rgb != nullptr || p->h == 0 || p->w == 0, SAMK_ERR_INVALID_ARG, op, "null rgb");
    SAMK_CHECK(samk::aligned_for(p->out, p->dtype), SAMK_ERR_INVALID_ARG, op, "misaligned out");
    PreArgs a;
    a.rgb = p->rgb;
    a.out = p->out;
    a.h = p->h;
    a.w = p->w;
    a.size = p->size;
    for (int c = 0; c < 3; c++) {
        a.mean[c] = p->mean[c];
        a.std[c] = p->std[c];
    }
    cudaStream_t st = samk::as_stream(stream);
    const unsigned g = samk::grid_for(int64_t(p->size) * p->size * 3);
    if (p->dtype == SAMK_F32) {
        preprocess_kernel<float><<<g, samk::kThreads, 0, st>>>(a);
    } else {
        preprocess_kernel<bf16><<<g, samk::kThreads, 0, st>>>(a);
    }
    return samk::check_launch(op);
}
