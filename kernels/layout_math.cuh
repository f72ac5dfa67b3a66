/*
 * layout_math.cuh — the index maps of layout.cu as __host__ __device__
 * functions: for one element of an op's output, where it comes from. Checked
 * on the host by kernels/test/host_test.cu against the forward loops of the
 * unfused definitions (segment_anything window_partition/unpartition,
 * torch conv weight order, ConvTranspose2d with kernel == stride).
 * All indices are element offsets into dense row-major tensors.
 */
#ifndef SAMK_LAYOUT_MATH_CUH
#define SAMK_LAYOUT_MATH_CUH

#include <stdint.h>

namespace samk {

/* window_partition: output element o of (B·nh·nw, win·win, C) →
 * offset in x (B, H, W, C), or −1 in the zero padding. Windows are ordered
 * (b, wy, wx), tokens inside a window (ty, tx). */
__host__ __device__ __forceinline__ int64_t window_partition_src(int64_t o, int h, int w, int c, int win, int nh,
                                                                 int nw) {
    const int64_t ch = o % c;
    int64_t t = o / c;
    const int tok = int(t % (int64_t(win) * win));
    t /= int64_t(win) * win; // window index (b, wy, wx)
    const int wx = int(t % nw);
    t /= nw;
    const int wy = int(t % nh);
    const int64_t b = t / nh;
    const int y = wy * win + tok / win;
    const int x = wx * win + tok % win;
    if (y >= h || x >= w) return -1;
    return ((b * h + y) * w + x) * c + ch;
}

/* window_unpartition: output element o of (B, H, W, C) → offset in the
 * windows tensor (B·nh·nw, win·win, C) (padding dropped). */
__host__ __device__ __forceinline__ int64_t window_unpartition_src(int64_t o, int h, int w, int c, int win, int nh,
                                                                   int nw) {
    const int64_t ch = o % c;
    int64_t t = o / c;
    const int x = int(t % w);
    t /= w;
    const int y = int(t % h);
    const int64_t b = t / h;
    const int wy = y / win, ty = y % win, wx = x / win, tx = x % win;
    return (((b * nh + wy) * nw + wx) * (int64_t(win) * win) + ty * win + tx) * c + ch;
}

/* im2col: output element o of (B·OH·OW, C·k·k), columns ordered (c, ky, kx)
 * → offset in x (B, H, W, C), or −1 in the zero padding. */
__host__ __device__ __forceinline__ int64_t im2col_src(int64_t o, int h, int w, int c, int k, int stride, int pad,
                                                       int oh, int ow) {
    const int64_t kk = int64_t(c) * k * k;
    const int64_t col = o % kk;
    int64_t row = o / kk;
    const int kx = int(col % k);
    const int ky = int((col / k) % k);
    const int64_t ch = col / (int64_t(k) * k);
    const int ox = int(row % ow);
    row /= ow;
    const int oy = int(row % oh);
    const int64_t b = row / oh;
    const int y = oy * stride - pad + ky;
    const int x = ox * stride - pad + kx;
    if (y < 0 || y >= h || x < 0 || x >= w) return -1;
    return ((b * h + y) * w + x) * c + ch;
}

/* ConvTranspose2d (kernel == stride == k) scatter: output element o of
 * (B, H·k, W·k, Cout) → offset in the GEMM result g (B·H·W, Cout·k·k) with
 * columns (oc, p, q); *oc receives the output channel (the bias index). */
__host__ __device__ __forceinline__ int64_t convt_src(int64_t o, int h, int w, int cout, int k, int *oc) {
    const int ch = int(o % cout);
    int64_t t = o / cout;
    const int64_t wk = int64_t(w) * k, hk = int64_t(h) * k;
    const int X = int(t % wk);
    t /= wk;
    const int Y = int(t % hk);
    const int64_t b = t / hk;
    const int i = Y / k, p = Y % k, j = X / k, q = X % k;
    *oc = ch;
    return ((b * h + i) * w + j) * (int64_t(cout) * k * k) + (int64_t(ch) * k + p) * k + q;
}

} // namespace samk

#endif /* SAMK_LAYOUT_MATH_CUH */
