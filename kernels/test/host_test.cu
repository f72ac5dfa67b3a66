/*
 * host_test.cu — host-only tests of libsamkernels (no GPU needed).
 *
 * What runs here:
 *   - the pure index/weight math the kernels share with the host through
 *     __host__ __device__ functions (attention_math.cuh, layout_math.cuh,
 *     upscale_math.cuh, common.cuh), each against a straightforward statement
 *     of the unfused definition:
 *       bilinear taps (PyTorch align_corners=False) and the fused two-stage
 *         upscale vs two materialised resizes (bit-exact);
 *       window partition/unpartition vs forward loops, and their round trip;
 *       im2col + GEMM vs a direct convolution; the ConvTranspose scatter vs
 *         the ConvTranspose2d sum;
 *       the online-softmax merge vs two-pass softmax·v; the rel-pos table rows
 *         vs SAM's rel_h/rel_w broadcast;
 *       GELU/ReLU, bf16 round-to-nearest-even;
 *   - the launchers' argument validation (it runs before any CUDA call):
 *     status codes and samk_last_error() messages;
 *   - where the machine has no CUDA device: a launch reports SAMK_ERR_CUDA
 *     with "<op>: <cudaGetErrorName>: ...".
 * The kernels themselves are tested on a GPU by the CUDA-tagged Go tests in
 * sam/nn/gpu against the CPU backend.
 *
 * Build and run: cmake --build build && ctest --test-dir build
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "attention_math.cuh"
#include "common.cuh"
#include "layout_math.cuh"
#include "samkernels.h"
#include "upscale_math.cuh"

static int g_failures = 0;
static int g_checks = 0;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        g_checks++;                                                                                                    \
        if (!(cond)) {                                                                                                 \
            g_failures++;                                                                                              \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);                                   \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fprintf(stderr, "\n");                                                                                     \
        }                                                                                                              \
    } while (0)

/* Deterministic pseudo-random numbers (xorshift64*). */
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 2654435761u + 1) {}
    uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 2685821657736338717ull;
    }
    float uniform(float lo, float hi) { return lo + (hi - lo) * float(next() >> 40) / float(1 << 24); }
};

/* ------------------------------------------------------------ bilinear */

/* PyTorch's taps written out plainly (volatile: each op rounded on its own). */
static samk::LinearTap plain_tap(int i, int in, int out) {
    volatile float scale = float(in) / float(out);
    volatile float t = float(i) + 0.5f;
    volatile float prod = scale * t;
    volatile float src = prod - 0.5f;
    float s = src < 0.0f ? 0.0f : float(src);
    int i0 = int(floorf(s));
    if (i0 > in - 1) i0 = in - 1;
    samk::LinearTap r;
    r.i0 = i0;
    r.i1 = i0 < in - 1 ? i0 + 1 : i0;
    volatile float l1 = s - float(i0);
    float l = fminf(fmaxf(float(l1), 0.0f), 1.0f);
    r.l1 = l;
    r.l0 = 1.0f - l;
    return r;
}

static void test_linear_taps() {
    const int sizes[][2] = {{1, 1}, {1, 5}, {5, 1}, {2, 4}, {4, 2}, {3, 7},     {7, 3},     {32, 128},
                            {64, 256}, {256, 1024}, {95, 119}, {128, 161}, {1024, 1365}, {768, 1024}, {98, 101}, {16, 9}};
    for (auto &sz : sizes) {
        const int in = sz[0], out = sz[1];
        const float scale = samk::linear_scale(in, out);
        for (int i = 0; i < out; i++) {
            const samk::LinearTap a = samk::linear_tap(i, in, scale);
            const samk::LinearTap b = plain_tap(i, in, out);
            CHECK(a.i0 == b.i0 && a.i1 == b.i1 && a.l0 == b.l0 && a.l1 == b.l1,
                  "tap %d of %d→%d: (%d,%d,%.9g,%.9g) vs plain (%d,%d,%.9g,%.9g)", i, in, out, a.i0, a.i1, a.l0, a.l1,
                  b.i0, b.i1, b.l0, b.l1);
            CHECK(0 <= a.i0 && a.i0 <= a.i1 && a.i1 <= in - 1 && a.i1 - a.i0 <= 1, "tap %d of %d→%d indices %d %d", i,
                  in, out, a.i0, a.i1);
            CHECK(a.l0 >= 0.0f && a.l1 >= 0.0f && a.l0 <= 1.0f && a.l1 <= 1.0f, "weights %g %g", a.l0, a.l1);
            /* Against the real-valued source index: the sampled position
             * i0 + l1 equals the clamped src up to fp32 rounding. */
            double src = (i + 0.5) * double(in) / double(out) - 0.5;
            if (src < 0) src = 0;
            if (src > in - 1) src = in - 1;
            const double pos = a.i0 + (a.i1 > a.i0 ? double(a.l1) : 0.0);
            CHECK(fabs(pos - src) < 1e-4 * (1 + src), "tap %d of %d→%d samples %.7f, want %.7f", i, in, out, pos, src);
        }
    }
    /* Known values: 2 → 4 (scale 0.5): src = 0 (clamped), 0.25, 0.75, 1.25. */
    const float s = samk::linear_scale(2, 4);
    samk::LinearTap t0 = samk::linear_tap(0, 2, s), t1 = samk::linear_tap(1, 2, s), t3 = samk::linear_tap(3, 2, s);
    CHECK(t0.i0 == 0 && t0.i1 == 1 && t0.l1 == 0.0f, "2→4 tap 0");
    CHECK(t1.i0 == 0 && t1.i1 == 1 && t1.l1 == 0.25f && t1.l0 == 0.75f, "2→4 tap 1");
    CHECK(t3.i0 == 1 && t3.i1 == 1 && t3.l1 == 0.25f, "2→4 tap 3 (edge: i1 == i0)");
}

/* One materialised bilinear resize (rows/cols of the output may be a crop:
 * only the first out_h × out_w positions of an (full_h, full_w) resize). */
static std::vector<float> resize_plain(const std::vector<float> &src, int in_h, int in_w, int full_h, int full_w,
                                       int out_h, int out_w) {
    std::vector<float> dst(size_t(out_h) * out_w);
    for (int y = 0; y < out_h; y++) {
        const samk::LinearTap ty = plain_tap(y, in_h, full_h);
        for (int x = 0; x < out_w; x++) {
            const samk::LinearTap tx = plain_tap(x, in_w, full_w);
            volatile float a = tx.l0 * src[size_t(ty.i0) * in_w + tx.i0];
            volatile float b = tx.l1 * src[size_t(ty.i0) * in_w + tx.i1];
            volatile float top = a + b;
            volatile float c = tx.l0 * src[size_t(ty.i1) * in_w + tx.i0];
            volatile float d = tx.l1 * src[size_t(ty.i1) * in_w + tx.i1];
            volatile float bot = c + d;
            volatile float e = ty.l0 * top;
            volatile float f = ty.l1 * bot;
            dst[size_t(y) * out_w + x] = e + f;
        }
    }
    return dst;
}

static void test_upscale_fused() {
    struct Case {
        int h, w, pad, in_h, in_w, out_h, out_w;
    } cases[] = {
        {32, 32, 128, 95, 128, 119, 161},   // tiny image_0
        {32, 32, 128, 82, 128, 45, 70},     // tiny image_1 (second stage shrinks)
        {64, 64, 256, 98, 256, 101, 263},   // small image_0
        {64, 64, 256, 256, 164, 100, 64},   // small image_1
        {7, 5, 13, 13, 9, 4, 17},           // odd everything
        {1, 1, 3, 2, 3, 5, 1},              // degenerate planes
    };
    Rng rng(7);
    for (const Case &c : cases) {
        std::vector<float> in(size_t(c.h) * c.w);
        for (float &v : in) v = rng.uniform(-20.0f, 20.0f);
        std::vector<float> mid = resize_plain(in, c.h, c.w, c.pad, c.pad, c.in_h, c.in_w);
        std::vector<float> want = resize_plain(mid, c.in_h, c.in_w, c.out_h, c.out_w, c.out_h, c.out_w);
        const samk::UpscaleGeom g = samk::upscale_geom(c.h, c.w, c.pad, c.in_h, c.in_w, c.out_h, c.out_w);
        int bad = 0;
        for (int y = 0; y < c.out_h; y++) {
            for (int x = 0; x < c.out_w; x++) {
                const float got = samk::upscale_pixel(in.data(), g, y, x);
                const float w = want[size_t(y) * c.out_w + x];
                if (memcmp(&got, &w, sizeof got) != 0) {
                    if (bad++ < 3) fprintf(stderr, "  (%d,%d): fused %.9g, two resizes %.9g\n", y, x, got, w);
                }
            }
        }
        CHECK(bad == 0, "fused upscale %dx%d→%d crop %dx%d→%dx%d differs in %d pixels", c.h, c.w, c.pad, c.in_h, c.in_w,
              c.out_h, c.out_w, bad);
    }
}

/* -------------------------------------------------------------- layout */

static void test_window() {
    const int cases[][5] = {{1, 8, 8, 3, 3},   {2, 16, 16, 5, 7}, {1, 5, 7, 2, 4},
                            {1, 14, 14, 4, 14}, {3, 4, 9, 1, 2},   {1, 1, 1, 3, 5}};
    for (auto &cs : cases) {
        const int B = cs[0], H = cs[1], W = cs[2], C = cs[3], win = cs[4];
        const int nh = (H + win - 1) / win, nw = (W + win - 1) / win;
        const int Hp = nh * win, Wp = nw * win;
        std::vector<float> x(size_t(B) * H * W * C);
        for (size_t i = 0; i < x.size(); i++) x[i] = float(i + 1);
        /* Forward definition (segment_anything window_partition): pad, view
         * (B, nh, win, nw, win, C), permute (0, 1, 3, 2, 4, 5). */
        std::vector<float> want(size_t(B) * nh * nw * win * win * C, -1.0f);
        for (int b = 0; b < B; b++)
            for (int yy = 0; yy < Hp; yy++)
                for (int xx = 0; xx < Wp; xx++)
                    for (int c = 0; c < C; c++) {
                        const float v = (yy < H && xx < W) ? x[((size_t(b) * H + yy) * W + xx) * C + c] : 0.0f;
                        const int wy = yy / win, ty = yy % win, wx = xx / win, tx = xx % win;
                        want[((((size_t(b) * nh + wy) * nw + wx) * win + ty) * win + tx) * C + c] = v;
                    }
        std::vector<float> got(want.size());
        for (size_t o = 0; o < got.size(); o++) {
            const int64_t s = samk::window_partition_src(int64_t(o), H, W, C, win, nh, nw);
            got[o] = s >= 0 ? x[size_t(s)] : 0.0f;
        }
        CHECK(got == want, "window_partition B%d H%d W%d C%d win%d", B, H, W, C, win);
        /* Unpartition(partition(x)) == x. */
        std::vector<float> back(x.size());
        for (size_t o = 0; o < back.size(); o++) {
            back[o] = got[size_t(samk::window_unpartition_src(int64_t(o), H, W, C, win, nh, nw))];
        }
        CHECK(back == x, "window round trip B%d H%d W%d C%d win%d", B, H, W, C, win);
    }
}

static void test_im2col() {
    /* (B, H, W, C, k, stride, pad, Cout): patch embed, neck 3×3, mask 2×2/2, odd. */
    const int cases[][8] = {{1, 32, 32, 3, 16, 16, 0, 4}, {2, 5, 6, 4, 3, 1, 1, 3}, {1, 8, 8, 2, 2, 2, 0, 5},
                            {1, 7, 5, 3, 3, 2, 1, 2},     {1, 4, 4, 1, 1, 1, 0, 3}};
    Rng rng(11);
    for (auto &cs : cases) {
        const int B = cs[0], H = cs[1], W = cs[2], C = cs[3], k = cs[4], s = cs[5], pad = cs[6], Co = cs[7];
        const int OH = (H + 2 * pad - k) / s + 1, OW = (W + 2 * pad - k) / s + 1;
        std::vector<double> x(size_t(B) * H * W * C), wt(size_t(Co) * C * k * k);
        for (double &v : x) v = rng.uniform(-1, 1);
        for (double &v : wt) v = rng.uniform(-1, 1);
        /* im2col then GEMM with the torch weight (Cout, Cin, k, k) flattened. */
        const int K = C * k * k;
        std::vector<double> cols(size_t(B) * OH * OW * K);
        for (size_t o = 0; o < cols.size(); o++) {
            const int64_t src = samk::im2col_src(int64_t(o), H, W, C, k, s, pad, OH, OW);
            cols[o] = src >= 0 ? x[size_t(src)] : 0.0;
        }
        double maxerr = 0;
        for (int b = 0; b < B; b++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++)
                    for (int co = 0; co < Co; co++) {
                        /* direct convolution */
                        double direct = 0;
                        for (int c = 0; c < C; c++)
                            for (int ky = 0; ky < k; ky++)
                                for (int kx = 0; kx < k; kx++) {
                                    const int y = oy * s - pad + ky, xx = ox * s - pad + kx;
                                    if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
                                    direct += x[((size_t(b) * H + y) * W + xx) * C + c] *
                                              wt[((size_t(co) * C + c) * k + ky) * k + kx];
                                }
                        const size_t row = (size_t(b) * OH + oy) * OW + ox;
                        double gemm = 0;
                        for (int j = 0; j < K; j++) gemm += cols[row * K + j] * wt[size_t(co) * K + j];
                        maxerr = fmax(maxerr, fabs(gemm - direct));
                    }
        CHECK(maxerr < 1e-12, "im2col conv B%d %dx%dx%d k%d s%d p%d: max err %g", B, H, W, C, k, s, pad, maxerr);
    }
}

static void test_convt() {
    const int cases[][5] = {{1, 4, 4, 3, 2}, {2, 3, 5, 2, 2}, {1, 2, 3, 4, 3}}; // B, H, W, Cout, k
    const int Cin = 3;
    Rng rng(13);
    for (auto &cs : cases) {
        const int B = cs[0], H = cs[1], W = cs[2], Co = cs[3], k = cs[4];
        std::vector<double> x(size_t(B) * H * W * Cin), wt(size_t(Cin) * Co * k * k), bias(Co);
        for (double &v : x) v = rng.uniform(-1, 1);
        for (double &v : wt) v = rng.uniform(-1, 1);
        for (double &v : bias) v = rng.uniform(-1, 1);
        /* g = x (B·H·W, Cin) · weight (Cin, Cout·k·k) */
        const int N = Co * k * k;
        std::vector<double> g(size_t(B) * H * W * N, 0.0);
        for (size_t r = 0; r < size_t(B) * H * W; r++)
            for (int j = 0; j < N; j++)
                for (int c = 0; c < Cin; c++) g[r * N + j] += x[r * Cin + c] * wt[size_t(c) * N + j];
        double maxerr = 0;
        const size_t total = size_t(B) * H * k * W * k * Co;
        for (size_t o = 0; o < total; o++) {
            int oc = -1;
            const int64_t s = samk::convt_src(int64_t(o), H, W, Co, k, &oc);
            const double got = g[size_t(s)] + bias[size_t(oc)];
            /* ConvTranspose2d definition at this output element. */
            const int ch = int(o % Co);
            size_t t = o / Co;
            const int X = int(t % (size_t(W) * k));
            t /= size_t(W) * k;
            const int Y = int(t % (size_t(H) * k));
            const int b = int(t / (size_t(H) * k));
            const int i = Y / k, p = Y % k, j = X / k, q = X % k;
            double want = bias[ch];
            for (int c = 0; c < Cin; c++)
                want += x[((size_t(b) * H + i) * W + j) * Cin + c] * wt[((size_t(c) * Co + ch) * k + p) * k + q];
            maxerr = fmax(maxerr, fabs(got - want));
            if (oc != ch) maxerr = 1e9;
        }
        CHECK(maxerr < 1e-12, "convt scatter B%d %dx%d Cout%d k%d: max err %g", B, H, W, Co, k, maxerr);
    }
}

/* ----------------------------------------------------------- attention */

/* The kernel's per-row algorithm on the host: tiles of 32 keys, masked tail
 * as −inf, softmax_rescale for the running state. */
static void online_softmax_v(const std::vector<float> &s, const std::vector<float> &v, int dv, int tile,
                             std::vector<float> &out) {
    const int n = int(s.size());
    float m = -INFINITY, l = 0.0f;
    std::vector<float> o(dv, 0.0f);
    for (int k0 = 0; k0 < n; k0 += tile) {
        float tmax = -INFINITY;
        for (int j = 0; j < tile; j++) {
            const float x = k0 + j < n ? s[k0 + j] : -INFINITY;
            tmax = fmaxf(tmax, x);
        }
        const float corr = samk::softmax_rescale(m, tmax);
        float psum = 0.0f;
        for (int c = 0; c < dv; c++) o[c] *= corr;
        for (int j = 0; j < tile; j++) {
            const float x = k0 + j < n ? s[k0 + j] : -INFINITY;
            const float p = expf(x - m);
            psum += p;
            if (k0 + j < n)
                for (int c = 0; c < dv; c++) o[c] += p * v[size_t(k0 + j) * dv + c];
        }
        l = l * corr + psum;
    }
    out.assign(dv, 0.0f);
    for (int c = 0; c < dv; c++) out[c] = l > 0 ? o[c] / l : 0.0f;
}

static void test_online_softmax() {
    const int ns[] = {1, 2, 7, 31, 32, 33, 64, 97, 1025, 4096};
    const float spreads[] = {0.1f, 5.0f, 80.0f};
    Rng rng(17);
    for (int n : ns) {
        for (float spread : spreads) {
            const int dv = 5;
            std::vector<float> s(n), v(size_t(n) * dv);
            for (float &x : s) x = rng.uniform(-spread, spread);
            /* A rising trend makes later tiles raise the maximum (rescales). */
            for (int j = 0; j < n; j++) s[j] += spread * float(j) / float(n);
            for (float &x : v) x = rng.uniform(-1, 1);
            double mx = -1e300;
            for (float x : s) mx = fmax(mx, double(x));
            double sum = 0;
            std::vector<double> want(dv, 0.0);
            for (int j = 0; j < n; j++) {
                const double p = exp(double(s[j]) - mx);
                sum += p;
                for (int c = 0; c < dv; c++) want[c] += p * v[size_t(j) * dv + c];
            }
            std::vector<float> got;
            online_softmax_v(s, v, dv, 32, got);
            double err = 0;
            for (int c = 0; c < dv; c++) err = fmax(err, fabs(double(got[c]) - want[c] / sum));
            CHECK(err < 2e-6, "online softmax n=%d spread %g: max err %g", n, double(spread), err);
        }
    }
    /* No keys: zeros (torch: empty softmax · v). */
    std::vector<float> out;
    online_softmax_v({}, {}, 3, 32, out);
    CHECK(out.size() == 3 && out[0] == 0.0f && out[2] == 0.0f, "nk = 0 gives zeros");
}

/* SAM's add_decomposed_rel_pos: attn[q, (kh, kw)] += rel_h[q, kh] + rel_w[q, kw]
 * with rel_h[q, kh] = Σ_c r_q[c]·Rh[qh − kh + QH − 1, c]. The kernel indexes
 * key j as (j / qw, j % qw) and table rows through relpos_row. */
static void test_relpos_index() {
    const int grids[][2] = {{3, 3}, {7, 7}, {4, 6}, {1, 5}, {64, 64}};
    for (auto &g : grids) {
        const int QH = g[0], QW = g[1];
        bool ok = true;
        for (int i = 0; i < QH * QW && ok; i++) {
            const int ih = i / QW, iw = i % QW;
            for (int kh = 0; kh < QH; kh++) {
                const int r = samk::relpos_row(ih, kh, QH);
                ok = ok && r >= 0 && r <= 2 * QH - 2 && r == ih - kh + QH - 1;
            }
            for (int kw = 0; kw < QW; kw++) {
                const int r = samk::relpos_row(iw, kw, QW);
                ok = ok && r >= 0 && r <= 2 * QW - 2 && r == iw - kw + QW - 1;
            }
            /* key j ↔ (kh, kw) as the view (B, q_h, q_w, k_h, k_w) of attn */
            for (int kh = 0; kh < QH; kh++)
                for (int kw = 0; kw < QW; kw++) {
                    const int j = kh * QW + kw;
                    ok = ok && j / QW == kh && j % QW == kw;
                }
        }
        CHECK(ok, "rel-pos index grid %dx%d", QH, QW);
    }
}

/* ---------------------------------------------------- scalar functions */

static void test_scalars() {
    const float xs[] = {-6.0f, -3.0f, -1.0f, -0.5f, -1e-3f, 0.0f, 1e-3f, 0.5f, 1.0f, 2.5f, 8.0f};
    for (float x : xs) {
        const double want = 0.5 * double(x) * (1.0 + erf(double(x) / sqrt(2.0)));
        const double got = samk::gelu_erf(x);
        CHECK(fabs(got - want) <= 2e-7 * fmax(1.0, fabs(want)), "gelu(%g) = %.9g, want %.9g", double(x), got, want);
    }
    CHECK(samk::relu(-2.0f) == 0.0f && samk::relu(3.0f) == 3.0f && isnan(samk::relu(NAN)), "relu");
    CHECK(samk::apply_act(-1.0f, SAMK_ACT_NONE) == -1.0f, "act none");
    /* bf16 round to nearest even: 1 + 2^-8 is halfway between 1 and
     * 1 + 2^-7 → 1 (even); 1 + 3·2^-8 → 1 + 2^-6 (even); 1 + 2^-8 + 2^-20 → up. */
    CHECK(samk::round_to<samk::bf16>(1.0f + 0.00390625f) == 1.0f, "bf16 tie to even (down)");
    CHECK(samk::round_to<samk::bf16>(1.0f + 3 * 0.00390625f) == 1.0f + 0.015625f, "bf16 tie to even (up)");
    CHECK(samk::round_to<samk::bf16>(1.0f + 0.00390625f + 1.0f / 1048576.0f) == 1.0f + 0.0078125f,
          "bf16 above half rounds up");
    CHECK(samk::round_to<float>(1.2345f) == 1.2345f, "f32 identity");
}

/* ------------------------------------------------------ launcher checks */

static bool has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static void test_validation() {
    CHECK(strcmp(samk_status_string(SAMK_OK), "ok") == 0, "status string ok");
    CHECK(strcmp(samk_status_string(SAMK_ERR_UNSUPPORTED), "unsupported") == 0, "status string unsupported");
    CHECK(strlen(samk_status_string(SAMK_ERR_WORKSPACE)) > 0, "status string workspace");
    CHECK(strcmp(samk_status_string(SAMK_ERR_OUT_OF_MEMORY), "out of memory") == 0, "status string out of memory");
    CHECK(strstr(samk_version(), "samkernels") != nullptr, "version %s", samk_version());
    printf("version: %s\n", samk_version());

    /* Fake, aligned, never dereferenced device pointers. */
    alignas(16) static float fake[64];
    void *d = fake;

    samk_attention_params ap;
    memset(&ap, 0, sizeof ap);
    ap.dtype = SAMK_F32;
    ap.batch = 1;
    ap.heads = 2;
    ap.nq = ap.nk = 4;
    ap.head_dim = ap.head_dim_v = 96;
    ap.q = ap.k = ap.v = d;
    ap.out = d;
    ap.q_row_stride = ap.k_row_stride = ap.v_row_stride = ap.out_row_stride = 192;
    ap.scale = 0.1f;
    CHECK(samk_attention(&ap, nullptr) == SAMK_ERR_UNSUPPORTED, "attention head_dim 96");
    CHECK(strstr(samk_last_error(), "samk_attention: head_dim 96 unsupported") != nullptr, "message: %s",
          samk_last_error());
    ap.head_dim = 64;
    ap.head_dim_v = 32;
    CHECK(samk_attention(&ap, nullptr) == SAMK_ERR_UNSUPPORTED, "attention d != dv");
    ap.head_dim_v = 64;
    ap.rel_h = d; // rel_w missing
    ap.qh = ap.qw = 2;
    CHECK(samk_attention(&ap, nullptr) == SAMK_ERR_INVALID_ARG, "attention half rel-pos");
    ap.rel_w = d;
    ap.qh = 3; // 3·2 != 4
    CHECK(samk_attention(&ap, nullptr) == SAMK_ERR_INVALID_ARG, "attention rel grid mismatch");
    CHECK(has_prefix(samk_last_error(), "samk_attention: rel-pos grid 3x2"), "message: %s", samk_last_error());
    ap.qh = 2;
    ap.q_row_stride = 100; // < heads·d = 128
    CHECK(samk_attention(&ap, nullptr) == SAMK_ERR_INVALID_ARG, "attention row stride");
    ap.q_row_stride = 128;
    ap.q = nullptr;
    CHECK(samk_attention(&ap, nullptr) == SAMK_ERR_INVALID_ARG, "attention null q");
    CHECK(samk_attention(nullptr, nullptr) == SAMK_ERR_INVALID_ARG, "attention null params");
    ap.q = d;
    ap.bias_table = d; // with rel-pos: exclusive
    ap.bias_ws = 2;
    CHECK(samk_attention(&ap, nullptr) == SAMK_ERR_INVALID_ARG, "attention bias table with rel-pos");
    ap.rel_h = ap.rel_w = nullptr;
    ap.bias_ws = 3; // 9 != nq 4
    CHECK(samk_attention(&ap, nullptr) == SAMK_ERR_INVALID_ARG, "attention bias window mismatch");
    CHECK(has_prefix(samk_last_error(), "samk_attention: offset bias of a 3×3 window"), "message: %s",
          samk_last_error());
    ap.bias_table = nullptr;
    ap.bias_ws = 0;
    ap.nq = 0; // empty problem: OK before any pointer check, message cleared
    CHECK(samk_attention(&ap, nullptr) == SAMK_OK, "attention nq = 0");
    CHECK(samk_last_error()[0] == '\0', "message cleared after success: %s", samk_last_error());

    samk_layernorm_params lp;
    memset(&lp, 0, sizeof lp);
    lp.dtype = SAMK_F32;
    lp.rows = 3;
    lp.cols = 0;
    lp.x = lp.out = d;
    lp.weight = lp.bias = d;
    CHECK(samk_layernorm(&lp, nullptr) == SAMK_ERR_INVALID_ARG, "layernorm cols 0");
    CHECK(has_prefix(samk_last_error(), "samk_layernorm: cols 0"), "message: %s", samk_last_error());
    lp.cols = 8;
    lp.weight = nullptr;
    CHECK(samk_layernorm(&lp, nullptr) == SAMK_ERR_INVALID_ARG, "layernorm null weight");
    lp.weight = d;
    lp.dtype = SAMK_BF16;
    lp.x = reinterpret_cast<char *>(d) + 1; // odd address
    CHECK(samk_layernorm(&lp, nullptr) == SAMK_ERR_INVALID_ARG, "layernorm misaligned");
    lp.dtype = static_cast<samk_dtype>(7);
    CHECK(samk_layernorm(&lp, nullptr) == SAMK_ERR_INVALID_ARG, "layernorm dtype");

    samk_gemm_params gp;
    memset(&gp, 0, sizeof gp);
    gp.dtype = SAMK_F32;
    gp.m = 4;
    gp.n = 5;
    gp.k = 6;
    gp.batch = 1;
    gp.a = gp.b = d;
    gp.c = d;
    gp.lda = 6;
    gp.ldb = 5;
    gp.ldc = 5;
    gp.alpha = 1;
    CHECK(samk_gemm(nullptr, nullptr, 0, &gp, nullptr) == SAMK_ERR_INVALID_ARG, "gemm null handle");
    CHECK(has_prefix(samk_last_error(), "samk_gemm: null cuBLASLt handle"), "message: %s", samk_last_error());
    gp.lda = 5; // < k
    CHECK(samk_gemm(d, nullptr, 0, &gp, nullptr) == SAMK_ERR_INVALID_ARG, "gemm lda");
    /* The reference kernel takes the same parameters with the same checks. */
    CHECK(samk_gemm_reference(&gp, nullptr) == SAMK_ERR_INVALID_ARG, "gemm_reference lda");
    CHECK(has_prefix(samk_last_error(), "samk_gemm_reference: lda 5 < 6"), "message: %s", samk_last_error());
    CHECK(samk_gemm_reference(nullptr, nullptr) == SAMK_ERR_INVALID_ARG, "gemm_reference null params");
    gp.lda = 6;
    gp.trans_b = 1; // B stored n×k: ldb must be ≥ k = 6
    CHECK(samk_gemm(d, nullptr, 0, &gp, nullptr) == SAMK_ERR_INVALID_ARG, "gemm ldb trans_b");
    gp.ldb = 6;
    gp.batch = 2;
    gp.stride_c = 0;
    CHECK(samk_gemm(d, nullptr, 0, &gp, nullptr) == SAMK_ERR_INVALID_ARG, "gemm overlapping batches of C");
    gp.act = static_cast<samk_act>(9);
    CHECK(samk_gemm(d, nullptr, 0, &gp, nullptr) == SAMK_ERR_INVALID_ARG, "gemm act");
    gp.act = SAMK_ACT_NONE;
    gp.m = 0;
    CHECK(samk_gemm(d, nullptr, 0, &gp, nullptr) == SAMK_OK, "gemm empty");
    CHECK(samk_gemm_reference(&gp, nullptr) == SAMK_OK, "gemm_reference empty");
    gp.m = 4;
    gp.k = 0;
    CHECK(samk_gemm_reference(&gp, nullptr) == SAMK_ERR_UNSUPPORTED, "gemm_reference k = 0");
    CHECK(samk_gemm_fallbacks() == 0, "no fallbacks without a device");
    CHECK(samk_gemm_workspace_bytes() >= (size_t(4) << 20), "gemm workspace size");

    samk_window_params wp;
    memset(&wp, 0, sizeof wp);
    wp.dtype = SAMK_F32;
    wp.in = wp.out = d;
    wp.batch = wp.h = wp.w = wp.c = 1;
    wp.win = 0;
    CHECK(samk_window(&wp, nullptr) == SAMK_ERR_INVALID_ARG, "window win 0");

    samk_im2col_params ip;
    memset(&ip, 0, sizeof ip);
    ip.dtype = SAMK_F32;
    ip.in = ip.out = d;
    ip.batch = 1;
    ip.h = ip.w = 2;
    ip.c = 1;
    ip.k = 3;
    ip.stride = 1;
    CHECK(samk_im2col(&ip, nullptr) == SAMK_ERR_INVALID_ARG, "im2col kernel larger than input");

    samk_mask_downsample_params mp;
    memset(&mp, 0, sizeof mp);
    mp.dtype = SAMK_F32;
    mp.batch = 1;
    mp.h = 6;
    mp.w = 8;
    mp.c1 = 4;
    mp.c2 = 16;
    mp.c = 32;
    CHECK(samk_mask_downsample(&mp, nullptr, 0, nullptr) == SAMK_ERR_INVALID_ARG, "mask downsample H %% 4");
    mp.h = 8;
    mp.mask = mp.out = d;
    CHECK(samk_mask_downsample(&mp, nullptr, 0, nullptr) == SAMK_ERR_INVALID_ARG, "mask downsample null weights");
    CHECK(samk_mask_downsample_workspace_bytes(&mp) == 0, "mask downsample workspace");

    samk_upscale_params up;
    memset(&up, 0, sizeof up);
    up.dtype = SAMK_F32;
    up.in = up.out = d;
    up.planes = 1;
    up.h = up.w = 4;
    up.pad = 8;
    up.in_h = 9; // > pad
    up.in_w = 8;
    up.out_h = up.out_w = 3;
    CHECK(samk_upscale_masks(&up, nullptr, 0, nullptr) == SAMK_ERR_INVALID_ARG, "upscale crop > pad");
    up.in_h = 8;
    up.out_mode = 2;
    CHECK(samk_upscale_masks(&up, nullptr, 0, nullptr) == SAMK_ERR_INVALID_ARG, "upscale out_mode");
    CHECK(samk_upscale_masks_workspace_bytes(&up) == 0, "upscale workspace");

    samk_depthwise_params dw;
    memset(&dw, 0, sizeof dw);
    dw.dtype = SAMK_F32;
    dw.in = dw.w = d;
    dw.out = d;
    dw.batch = 1;
    dw.h = dw.w_in = 2;
    dw.c = 4;
    dw.k = 5; // > padded 2×2
    dw.stride = 1;
    CHECK(samk_depthwise_conv(&dw, nullptr) == SAMK_ERR_INVALID_ARG, "depthwise kernel larger than the map");
    CHECK(has_prefix(samk_last_error(), "samk_depthwise_conv: kernel 5 larger"), "message: %s", samk_last_error());
    dw.k = 3;
    dw.stride = 0;
    CHECK(samk_depthwise_conv(&dw, nullptr) == SAMK_ERR_INVALID_ARG, "depthwise stride 0");
    dw.stride = 1;
    dw.act = static_cast<samk_act>(7);
    CHECK(samk_depthwise_conv(&dw, nullptr) == SAMK_ERR_INVALID_ARG, "depthwise act");
    dw.act = SAMK_ACT_NONE;
    dw.h = dw.w_in = 4;
    dw.batch = 0;
    CHECK(samk_depthwise_conv(&dw, nullptr) == SAMK_OK, "depthwise empty batch");

    CHECK(samk_add(SAMK_F32, d, d, d, 10, 3, nullptr) == SAMK_ERR_INVALID_ARG, "add nb does not divide n");
    CHECK(samk_convert(d, SAMK_F32, d, SAMK_BF16, -1, nullptr) == SAMK_ERR_INVALID_ARG, "convert negative n");
    CHECK(samk_transpose(SAMK_F32, d, d, 1, 2, 2, nullptr) == SAMK_ERR_INVALID_ARG, "transpose in place");
    CHECK(samk_bias_act(SAMK_F32, d, nullptr, 0, 4, SAMK_ACT_GELU, nullptr) == SAMK_OK, "bias_act empty");

    /* Without a CUDA device a launch must fail cleanly with the op's name. */
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        (void)cudaGetLastError();
        const samk_status s = samk_convert(d, SAMK_F32, d, SAMK_F32, 4, nullptr);
        CHECK(s == SAMK_ERR_CUDA, "convert without a device: status %d (%s)", int(s), samk_last_error());
        CHECK(has_prefix(samk_last_error(), "samk_convert: cuda"), "message: %s", samk_last_error());
        printf("no CUDA device: launch error reported as \"%s\"\n", samk_last_error());
    } else {
        printf("CUDA device present: skipping the no-device launch check\n");
    }
}

int main() {
    test_linear_taps();
    test_upscale_fused();
    test_window();
    test_im2col();
    test_convt();
    test_online_softmax();
    test_relpos_index();
    test_scalars();
    test_validation();
    if (g_failures != 0) {
        fprintf(stderr, "host_test: %d of %d checks failed\n", g_failures, g_checks);
        return 1;
    }
    printf("host_test: all %d checks passed\n", g_checks);
    return 0;
}
