/*
 * upscale_math.cuh — PyTorch's bilinear (align_corners=False, no antialias)
 * taps and the 2×2 blend of upscale.cu as __host__ __device__ functions, so
 * that kernels/test/host_test.cu checks them on the host against a plain
 * statement of the formula.
 *
 * Every operation is a single IEEE-rounded fp32 op: on the device through the
 * _rn intrinsics, which nvcc never contracts into FMAs. The taps and blends
 * therefore round exactly as the CPU reference (sam/nn/cpu/mask.go,
 * linearTable/resize, whose Go code on amd64 is not fused either) and as a
 * host evaluation of the same expressions.
 */
#ifndef SAMK_UPSCALE_MATH_CUH
#define SAMK_UPSCALE_MATH_CUH

#include <stdint.h>

#include "common.cuh"

namespace samk {

__host__ __device__ __forceinline__ float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}
__host__ __device__ __forceinline__ float sub_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}
__host__ __device__ __forceinline__ float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
__host__ __device__ __forceinline__ float div_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}

/* One output index of a 1-D linear resize: out = l0·in[i0] + l1·in[i1]. */
struct LinearTap {
    int i0, i1;
    float l0, l1;
};

/* scale = (float)in / (float)out, as PyTorch's area_pixel_compute_scale for
 * align_corners=False without an explicit scale factor. */
__host__ __device__ __forceinline__ float linear_scale(int in, int out) { return div_rn(float(in), float(out)); }

/* PyTorch (aten/src/ATen/native/UpSample.h): area_pixel_compute_source_index
 * and guard_index_and_lambda, in fp32:
 *   src = max(scale·(i + 0.5) − 0.5, 0)
 *   i0  = min(⌊src⌋, in − 1),  i1 = i0 + (i0 < in − 1)
 *   l1  = clamp(src − i0, 0, 1),  l0 = 1 − l1 */
__host__ __device__ __forceinline__ LinearTap linear_tap(int i, int in, float scale) {
    float src = sub_rn(mul_rn(scale, add_rn(float(i), 0.5f)), 0.5f);
    if (!(src > 0.0f)) src = 0.0f;
    int i0 = int(src); // src ≥ 0: truncation is floor
    if (i0 > in - 1) i0 = in - 1;
    LinearTap t;
    t.i0 = i0;
    t.i1 = i0 < in - 1 ? i0 + 1 : i0;
    float l1 = sub_rn(src, float(i0));
    l1 = l1 < 0.0f ? 0.0f : (l1 > 1.0f ? 1.0f : l1);
    t.l1 = l1;
    t.l0 = sub_rn(1.0f, l1);
    return t;
}

/* The 2×2 blend in the evaluation order of PyTorch's CPU kernel (and of the
 * Go reference): ly0·(lx0·a + lx1·b) + ly1·(lx0·c + lx1·d), where a = s[y0, x0],
 * b = s[y0, x1], c = s[y1, x0], d = s[y1, x1]. */
__host__ __device__ __forceinline__ float bilinear_blend(const LinearTap &ty, const LinearTap &tx, float a, float b,
                                                         float c, float d) {
    const float top = add_rn(mul_rn(tx.l0, a), mul_rn(tx.l1, b));
    const float bot = add_rn(mul_rn(tx.l0, c), mul_rn(tx.l1, d));
    return add_rn(mul_rn(ty.l0, top), mul_rn(ty.l1, bot));
}

/* The geometry of the fused two-stage resize: input (h, w) → (pad, pad),
 * crop (in_h, in_w) → (out_h, out_w); s1y = scale(h → pad),
 * s1x = scale(w → pad), s2y = scale(in_h → out_h), s2x = scale(in_w → out_w). */
struct UpscaleGeom {
    int h, w, in_h, in_w;
    float s1y, s1x, s2y, s2x;
};

__host__ __device__ inline UpscaleGeom upscale_geom(int h, int w, int pad, int in_h, int in_w, int out_h, int out_w) {
    UpscaleGeom g;
    g.h = h;
    g.w = w;
    g.in_h = in_h;
    g.in_w = in_w;
    g.s1y = linear_scale(h, pad);
    g.s1x = linear_scale(w, pad);
    g.s2y = linear_scale(in_h, out_h);
    g.s2x = linear_scale(in_w, out_w);
    return g;
}

/* Intermediate value mid[y, x] (y < in_h, x < in_w) of the first resize of
 * one plane (h, w), exactly as the separate first resize computes it. */
template <typename T>
__host__ __device__ __forceinline__ float upscale_mid(const T *plane, const UpscaleGeom &g, int y, int x) {
    const LinearTap ty = linear_tap(y, g.h, g.s1y);
    const LinearTap tx = linear_tap(x, g.w, g.s1x);
    const T *r0 = plane + int64_t(ty.i0) * g.w;
    const T *r1 = plane + int64_t(ty.i1) * g.w;
    return bilinear_blend(ty, tx, to_f32(r0[tx.i0]), to_f32(r0[tx.i1]), to_f32(r1[tx.i0]), to_f32(r1[tx.i1]));
}

/* Output pixel (oy, ox) of the fused resize → crop → resize of one plane: the
 * second resize's blend of the four intermediate values it reads. */
template <typename T>
__host__ __device__ __forceinline__ float upscale_pixel(const T *plane, const UpscaleGeom &g, int oy, int ox) {
    const LinearTap ty = linear_tap(oy, g.in_h, g.s2y);
    const LinearTap tx = linear_tap(ox, g.in_w, g.s2x);
    return bilinear_blend(ty, tx, upscale_mid(plane, g, ty.i0, tx.i0), upscale_mid(plane, g, ty.i0, tx.i1),
                          upscale_mid(plane, g, ty.i1, tx.i0), upscale_mid(plane, g, ty.i1, tx.i1));
}

} // namespace samk

#endif /* SAMK_UPSCALE_MATH_CUH */
