/*
 * samkernels.h — the whole C ABI of libsamkernels.a, SAM's CUDA kernels.
 *
 * This plain-C header is all that cgo (package bindings) sees: no CUDA
 * headers, streams and library handles are opaque pointers.
 *
 * Rules every launcher follows (see ../shared/ENGINEERING.md):
 *   - returns a samk_status; never exits or aborts;
 *   - takes the stream explicitly (a cudaStream_t as samk_stream; NULL is the
 *     legacy default stream);
 *   - never allocates and never synchronises: scratch space is queried with
 *     the op's *_workspace_bytes() and passed in by the caller (Go owns every
 *     allocation);
 *   - checks cudaGetLastError() right after its launches; on failure
 *     samk_last_error() names the op and carries the CUDA message;
 *   - one params struct per op.
 *
 * Layouts are dense row-major (C-contiguous) unless strides say otherwise:
 * feature maps channels-last (B, H, W, C), tokens (B, N, C), mask planes
 * (B, M, H, W). Element types: SAMK_F32 or SAMK_BF16 for data; accumulation,
 * softmax statistics and normalisation statistics are always fp32.
 * Strides and sizes are in elements, not bytes.
 */
#ifndef SAMKERNELS_H
#define SAMKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SAMK_OK = 0,
    SAMK_ERR_INVALID_ARG = 1, /* a null pointer, a negative size, inconsistent strides */
    SAMK_ERR_UNSUPPORTED = 2, /* a shape or dtype this build has no kernel for */
    SAMK_ERR_CUDA = 3,        /* a CUDA runtime error (launch, memcpy) */
    SAMK_ERR_CUBLAS = 4,      /* a cuBLASLt error, or no algorithm for the problem */
    SAMK_ERR_WORKSPACE = 5,   /* the workspace passed is smaller than required */
    SAMK_ERR_OUT_OF_MEMORY = 6, /* the device ran out of memory during the call (a launch failing with
                                 * cudaErrorMemoryAllocation, cuBLASLt's ALLOC_FAILED): retry smaller */
} samk_status;

/* A static string for a status ("ok", "invalid argument", ...). */
const char *samk_status_string(samk_status s);

/* The detail of the last failure on the calling thread, e.g.
 * "samk_attention: head_dim 96 unsupported" or
 * "samk_layernorm: cudaErrorInvalidConfiguration: invalid configuration argument".
 * Empty when the last call succeeded. Valid until the next call on the thread. */
const char *samk_last_error(void);

/* The library's version string and the CUDA version it was built with. */
const char *samk_version(void);

typedef enum { SAMK_F32 = 0, SAMK_BF16 = 1 } samk_dtype;

/* Activations. GELU is the exact erf form 0.5·x·(1 + erf(x/√2)) everywhere
 * (SAM uses nn.GELU(); cuBLASLt's GELU epilogue is the tanh approximation and
 * is therefore never used for it). */
typedef enum { SAMK_ACT_NONE = 0, SAMK_ACT_GELU = 1, SAMK_ACT_RELU = 2 } samk_act;

typedef void *samk_stream; /* cudaStream_t */

/* ---------------------------------------------------------------- convert
 * dst[i] = (dst_dtype) src[i], i < n. F32→BF16 rounds to nearest even. */
samk_status samk_convert(const void *src, samk_dtype src_dtype, void *dst, samk_dtype dst_dtype,
                         int64_t n, samk_stream stream);

/* ------------------------------------------------------------------- GEMM
 * Through cuBLASLt, row-major:
 *   C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b]  (+ bias, then act)
 * op(A) is m×k (A stored m×k with lda ≥ k, or k×m with lda ≥ m when trans_a),
 * op(B) is k×n (B stored k×n with ldb ≥ n, or n×k with ldb ≥ k when trans_b:
 * a torch Linear weight (out, in) is B with trans_b = 1).
 * Batched when batch > 1 with element strides stride_a/b/c (0 broadcasts).
 * bias (n elements, dtype) is added to every row, then act; act GELU is the
 * exact erf GELU, applied by our own epilogue kernel after cuBLASLt.
 * fp32 problems use CUBLAS_COMPUTE_32F (never TF32: it moves SAM's logits far
 * outside the fp32 tolerances); bf16 problems CUBLAS_COMPUTE_32F with bf16
 * A/B/C. beta == 0: C is not read. */
typedef struct {
    samk_dtype dtype;
    int trans_a, trans_b;
    int64_t m, n, k;
    int batch;
    const void *a;
    int64_t lda, stride_a;
    const void *b;
    int64_t ldb, stride_b;
    void *c;
    int64_t ldc, stride_c;
    const void *bias; /* n elements or NULL */
    samk_act act;
    float alpha, beta;
} samk_gemm_params;

/* The workspace samk_gemm wants (pass at least this much). */
size_t samk_gemm_workspace_bytes(void);

/* lt_handle is a cublasLtHandle_t created by the caller. When cuBLASLt has no
 * algorithm for the problem or its matmul fails, samk_gemm computes it with
 * samk_gemm_reference instead (counted by samk_gemm_fallbacks); cuBLASLt's
 * ALLOC_FAILED is SAMK_ERR_OUT_OF_MEMORY. */
samk_status samk_gemm(void *lt_handle, void *workspace, size_t workspace_bytes,
                      const samk_gemm_params *p, samk_stream stream);

/* The reference GEMM: the same parameters, checks, product and epilogues as
 * samk_gemm, computed by a plain tiled SIMT kernel of ours (fp32
 * accumulation in the order k = 0, 1, …; no cuBLASLt, no tensor cores). It
 * runs where cuBLASLt cannot (the GPU simulator), is samk_gemm's fallback,
 * and is what cuBLASLt is compared against on a real GPU. */
samk_status samk_gemm_reference(const samk_gemm_params *p, samk_stream stream);

/* How many samk_gemm calls fell back to samk_gemm_reference in this process. */
int64_t samk_gemm_fallbacks(void);

/* -------------------------------------------------------------- attention
 * Fused (flash-style, online softmax; no Nq×Nk matrix in memory) multi-head
 * attention. For every batch b, head h, query row i:
 *   out[b, i, h·dv : (h+1)·dv] = softmax_j(scale · q_i·k_j + bias_ij) · V
 * with q_i = q[b, i, h·d : (h+1)·d] (likewise k, v), and, when rel_h != NULL,
 * SAM's decomposed relative-position bias on a qh×qw token grid
 * (nq == nk == qh·qw, tokens row-major, i = (ih, iw), j = (jh, jw)):
 *   bias_ij = Σ_c q_i[c]·rel_h[ih − jh + qh − 1, c] + Σ_c q_i[c]·rel_w[iw − jw + qw − 1, c]
 * computed from the *unscaled* q (modeling/image_encoder.py,
 * add_decomposed_rel_pos). rel_h is (2·qh − 1, d), rel_w (2·qw − 1, d).
 * Token t of batch b starts at ptr + b·batch_stride + t·row_stride; heads are
 * contiguous chunks of d (q, k) or dv (v, out) channels. With bias_table
 * != NULL (instead of rel_h/rel_w) the bias is TinyViT's offset bias on a
 * bias_ws × bias_ws window (nq == nk == bias_ws², tokens row-major):
 *   bias_ij = bias_table[h·ws² + |ih − jh|·ws + |iw − jw|]
 * added after the scale. A packed qkv
 * projection (B, N, 3·heads·d) is q = qkv, k = qkv + heads·d,
 * v = qkv + 2·heads·d with row_stride 3·heads·d.
 * The kernel has head dims 4, 8, 16, 32, 64, 80 and 128 with d == dv
 * (samk_attention_supports); others return SAMK_ERR_UNSUPPORTED, and callers
 * zero-pad the heads to a supported dim (sam/nn/gpu does). */
typedef struct {
    samk_dtype dtype;
    int batch, heads;
    int nq, nk;
    int head_dim;   /* d */
    int head_dim_v; /* dv */
    const void *q;
    int64_t q_batch_stride, q_row_stride;
    const void *k;
    int64_t k_batch_stride, k_row_stride;
    const void *v;
    int64_t v_batch_stride, v_row_stride;
    void *out;
    int64_t out_batch_stride, out_row_stride;
    float scale;
    const void *rel_h, *rel_w; /* NULL: no relative-position bias */
    int qh, qw;
    const void *bias_table; /* NULL: no offset bias; (heads, bias_ws²) */
    int bias_ws;
} samk_attention_params;

samk_status samk_attention(const samk_attention_params *p, samk_stream stream);

/* 1 when samk_attention has a kernel for head dims (d, dv), else 0. */
int samk_attention_supports(int head_dim, int head_dim_v);

/* -------------------------------------------------------------- layernorm
 * Over the last dim (cols) of rows rows; with residual != NULL:
 *   sum = x + residual (written to sum if sum != NULL), out = LN(sum)
 * else out = LN(x). LN(y) = (y − mean)/sqrt(var + eps)·weight + bias with the
 * biased variance, statistics in fp32. On channels-last maps this is also
 * LayerNorm2d. out may alias x. */
typedef struct {
    samk_dtype dtype;
    int64_t rows;
    int cols;
    const void *x;
    const void *residual;
    void *sum;
    void *out;
    const void *weight, *bias;
    float eps;
} samk_layernorm_params;

samk_status samk_layernorm(const samk_layernorm_params *p, samk_stream stream);

/* ------------------------------------------------------------ elementwise
 * out[i] = a[i] + b[i mod nb], i < n (nb divides n: b broadcast over leading
 * dims). out may alias a. */
samk_status samk_add(samk_dtype dtype, const void *a, const void *b, void *out, int64_t n, int64_t nb,
                     samk_stream stream);

/* In place on a (rows, cols) matrix: x = act(x + bias[col]); bias may be NULL. */
samk_status samk_bias_act(samk_dtype dtype, void *x, const void *bias, int64_t rows, int cols, samk_act act,
                          samk_stream stream);

/* ----------------------------------------------------------------- layout
 * reverse = 0: x (B, H, W, C) → out (B·nh·nw, win·win, C), the map zero-padded
 * bottom/right to nh·win × nw·win, windows row-major (window_partition).
 * reverse = 1: the inverse, out (B, H, W, C), padding dropped. */
typedef struct {
    samk_dtype dtype;
    const void *in;
    void *out;
    int batch, h, w, c, win;
    int reverse;
} samk_window_params;

samk_status samk_window(const samk_window_params *p, samk_stream stream);

/* (batch, rows, cols) → (batch, cols, rows). */
samk_status samk_transpose(samk_dtype dtype, const void *in, void *out, int batch, int rows, int cols,
                           samk_stream stream);

/* ------------------------------------------------------------ convolution
 * Conv2D as GEMM. im2col: in (B, H, W, C) channels-last → out
 * (B·OH·OW, C·k·k) with columns ordered (c, ky, kx), the order of a torch
 * weight (Cout, Cin, k, k) flattened to (Cout, Cin·k·k), so that
 * conv = GEMM(out, weightᵀ). Zero padding pad on every side,
 * OH = (H + 2·pad − k)/stride + 1. */
typedef struct {
    samk_dtype dtype;
    const void *in;
    void *out;
    int batch, h, w, c, k, stride, pad;
} samk_im2col_params;

samk_status samk_im2col(const samk_im2col_params *p, samk_stream stream);

/* Depthwise conv (groups = channels), bias and activation fused:
 *   out[n, i, j, c] = act(bias[c] + Σ_{ky,kx} in[n, i·s+ky−pad, j·s+kx−pad, c]·w[c, 0, ky, kx])
 * in (B, H, W, C) channels-last, w (C, 1, k, k) torch layout, bias (C) or
 * NULL, out (B, OH, OW, C) with OH = (H + 2·pad − k)/stride + 1; taps
 * outside the map are zero (skipped). TinyViT's MBConv, PatchMerging and
 * local convolutions (BatchNorm folded into w and bias). */
typedef struct {
    samk_dtype dtype;
    const void *in;
    const void *w;
    const void *bias; /* C elements or NULL */
    void *out;
    int batch, h, w_in, c, k, stride, pad;
    samk_act act;
} samk_depthwise_params;

samk_status samk_depthwise_conv(const samk_depthwise_params *p, samk_stream stream);

/* ConvTranspose2d with kernel == stride == k, after the GEMM
 * in (B·H·W, Cin) · weight (Cin, Cout·k·k) = g (B·H·W, Cout·k·k), columns
 * ordered (o, p, q) as the torch weight (Cin, Cout, k, k):
 *   out[b, i·k + p, j·k + q, o] = act(g[(b·H + i)·W + j, (o·k + p)·k + q] + bias[o]) */
typedef struct {
    samk_dtype dtype;
    const void *in;
    const void *bias; /* Cout elements or NULL */
    void *out;
    int batch, h, w, cout, k;
    samk_act act;
} samk_convt_scatter_params;

samk_status samk_convt_scatter(const samk_convt_scatter_params *p, samk_stream stream);

/* ------------------------------------------------------- mask downsampler
 * The prompt encoder's mask_downscaling, fused:
 *   conv 2×2/2 (1 → c1) → LayerNorm2d → GELU → conv 2×2/2 (c1 → c2) →
 *   LayerNorm2d → GELU → conv 1×1 (c2 → c)
 * mask (B, H, W) → out (B, H/4, W/4, c) channels-last; H, W multiples of 4.
 * Conv weights in torch layout (out, in, kh, kw); all biases present. */
typedef struct {
    samk_dtype dtype;
    const void *mask;
    void *out;
    int batch, h, w, c1, c2, c;
    const void *conv1_w, *conv1_b, *ln1_w, *ln1_b;
    const void *conv2_w, *conv2_b, *ln2_w, *ln2_b;
    const void *conv3_w, *conv3_b;
    float eps;
} samk_mask_downsample_params;

size_t samk_mask_downsample_workspace_bytes(const samk_mask_downsample_params *p);
samk_status samk_mask_downsample(const samk_mask_downsample_params *p, void *workspace, size_t workspace_bytes,
                                 samk_stream stream);

/* ------------------------------------------------------- mask upsampling
 * Sam.postprocess_masks, fused: every plane (h, w) of low-res logits is
 * resized bilinearly (align_corners=False, no antialiasing, PyTorch's source
 * index max((i + 0.5)·in/out − 0.5, 0)) to (pad, pad), cropped to
 * [:in_h, :in_w], and resized again to (out_h, out_w). The result must equal
 * the two separate resizes (the intermediate rounded to fp32); computing it
 * without materialising the pad×pad intermediate is allowed.
 * out_mode 0: out is float32 logits (planes, out_h, out_w);
 * out_mode 1: out is uint8, 1 where the logit > threshold, else 0. */
typedef struct {
    samk_dtype dtype; /* of in */
    const void *in;
    void *out;
    int planes, h, w, pad, in_h, in_w, out_h, out_w;
    int out_mode;
    float threshold;
} samk_upscale_params;

size_t samk_upscale_masks_workspace_bytes(const samk_upscale_params *p);
samk_status samk_upscale_masks(const samk_upscale_params *p, void *workspace, size_t workspace_bytes,
                               samk_stream stream);


#ifdef __cplusplus
}
#endif

#endif /* SAMKERNELS_H */
