/*
 * gemm.cu — row-major (batched) GEMM through cuBLASLt, with bias and the
 * exact-erf GELU / ReLU applied after it.
 *
 * Computes, for every batch b (unfused formula, all row-major):
 *   C[b] = act(alpha · op(A[b]) · op(B[b]) + beta · C[b] + bias)
 *   op(A) m×k: A stored m×k (lda ≥ k) or, trans_a, k×m (lda ≥ m)
 *   op(B) k×n: B stored k×n (ldb ≥ n) or, trans_b, n×k (ldb ≥ k)
 *   X[b] = X + b·stride_x (elements; stride 0 broadcasts A or B)
 *   bias: n elements of dtype added to every row, or NULL; beta == 0: C unread.
 * A torch Linear (x (M, K), weight (N, K)) is A = x, B = weight, trans_b = 1.
 *
 * Row-major via operand swap: cuBLASLt is column-major, and a row-major X with
 * leading dimension ld is the column-major Xᵀ with the same ld. So we ask
 * cuBLASLt for the column-major product
 *   Cᵀ (n×m, ld ldc) = op(B)ᵀ (n×k) · op(A)ᵀ (k×m)
 * passing B's storage as cuBLASLt's "A" (transa = trans_b ? T : N) and A's
 * storage as its "B" (transb = trans_a ? T : N). In that view the bias (one
 * value per column j of the row-major C) is one value per *row* of the
 * column-major D, which is exactly what CUBLASLT_EPILOGUE_BIAS broadcasts
 * (bias length = rows of D = n). We chose the swap over CUBLASLT_ORDER_ROW
 * layouts because far more cuBLASLt kernels support the default column order.
 *
 * Numerics: CUBLAS_COMPUTE_32F with CUDA_R_32F scale type for both dtypes.
 * For fp32 data this is true fp32 (TF32 would need CUBLAS_COMPUTE_32F_FAST_TF32,
 * which we never request: TF32 moves SAM's logits far outside the fp32
 * tolerances); for bf16 data A/B/C/D and the bias are CUDA_R_16BF with fp32
 * accumulation and one rounding at the store.
 *
 * Epilogues: the bias is fused with CUBLASLT_EPILOGUE_BIAS (bias type = D type,
 * the default for float and bf16 outputs) when it is 16-byte aligned. If it is
 * not, or the heuristic finds no algorithm for the bias epilogue, or the
 * matmul with it fails at run time, the plain GEMM runs and our own kernel
 * adds the bias.
 * Fallback: when cuBLASLt has no algorithm for the plain GEMM either, or its
 * matmul fails (some versions refuse operands with a dimension of 1, as every
 * single-prompt decoder Linear has; PyTorch avoids Lt there for that reason),
 * the reference kernel of gemm_ref.cu computes the whole problem, epilogue
 * included; samk_gemm_fallbacks() counts these. CUBLAS_STATUS_ALLOC_FAILED is
 * not worked around but returned as SAMK_ERR_OUT_OF_MEMORY, so that callers
 * split their batch. Refusals are cached like algorithms, so a problem
 * cuBLASLt refused is not offered to it again.
 * Activations never use cuBLASLt's epilogues (its GELU is the tanh form): when
 * act != NONE, samk::launch_bias_act applies act (and the bias if it was not
 * fused) in place on C afterwards, honouring ldc and stride_c.
 *
 * Batching: CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT and
 * CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET on all three layouts; the bias
 * (CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE left at 0) is shared by all batches.
 *
 * Algorithm: cublasLtMatmulAlgoGetHeuristic with the caller's workspace size
 * (MAX_WORKSPACE_BYTES) and the actual pointer alignments (MIN_ALIGNMENT_*),
 * first result. The choice is cached per problem (handle, device, dtype,
 * transposes, m, n, k, batch, leading dims, strides, epilogue, alignments,
 * workspace size) in a mutex-guarded hash map (bounded; cleared when full),
 * so steady-state calls skip the heuristic. Descriptors are created and
 * destroyed per call (host-side only; cheap compared to a launch).
 *
 * Workspace: samk_gemm_workspace_bytes() = 32 MiB (cuBLAS's recommendation
 * for Hopper; enough for split-K everywhere). A smaller workspace is accepted:
 * the heuristic is told the real size (0 is valid and restricts the choice).
 *
 * Tested by the CUDA-tagged Go tests in sam/nn/gpu against the CPU backend
 * (Linear with/without bias, GELU, ReLU; MatMulT batched; conv-as-GEMM; odd
 * m, n, k; bf16 by normalised error; TestGemmVariants: trans_a, beta != 0,
 * batch stride 0, unaligned bias, bias+act) and against the reference kernel
 * (TestGemmCuBLASLtVsReference, real GPUs only: cuBLASLt does not run under
 * the simulator); the argument checks by kernels/test/host_test.cu.
 */
#include <cublasLt.h>
#include <stdint.h>
#include <string.h>

#include <mutex>
#include <unordered_map>

#include "common.cuh"

namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;
constexpr size_t kCacheMax = 4096;

/* Largest power of two ≤ 256 dividing the address (256 for NULL). */
uint32_t alignment_of(const void *p) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    uint32_t al = 256;
    while (al > 1 && (a % al) != 0) al >>= 1;
    return al;
}

/* Everything the heuristic's answer depends on. Built with memset so that
 * padding bytes are zero and the key can be hashed and compared bytewise. */
struct AlgoKey {
    uintptr_t handle;
    int32_t device;
    int32_t dtype;
    int32_t trans_a, trans_b;
    int64_t m, n, k;
    int32_t batch;
    int32_t epilogue;
    int64_t lda, ldb, ldc;
    int64_t stride_a, stride_b, stride_c;
    uint32_t align_a, align_b, align_c, align_bias;
    uint64_t workspace;
};

struct AlgoKeyHash {
    size_t operator()(const AlgoKey &k) const {
        const unsigned char *p = reinterpret_cast<const unsigned char *>(&k);
        uint64_t h = 1469598103934665603ull; // FNV-1a
        for (size_t i = 0; i < sizeof k; i++) {
            h ^= p[i];
            h *= 1099511628211ull;
        }
        return static_cast<size_t>(h);
    }
};
struct AlgoKeyEq {
    bool operator()(const AlgoKey &a, const AlgoKey &b) const { return memcmp(&a, &b, sizeof a) == 0; }
};

/* An algorithm, or the record that cuBLASLt refused the problem. */
struct AlgoEntry {
    cublasLtMatmulAlgo_t algo;
    bool refused;
};

struct AlgoCache {
    std::mutex mu;
    std::unordered_map<AlgoKey, AlgoEntry, AlgoKeyHash, AlgoKeyEq> map;
};

AlgoCache &algo_cache() {
    static AlgoCache c; // constructed on first use, thread-safe (C++11 magic statics)
    return c;
}

bool cache_get(const AlgoKey &k, AlgoEntry *e) {
    AlgoCache &c = algo_cache();
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.map.find(k);
    if (it == c.map.end()) return false;
    *e = it->second;
    return true;
}

void cache_put(const AlgoKey &k, const AlgoEntry &e) {
    AlgoCache &c = algo_cache();
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.map.size() >= kCacheMax) c.map.clear();
    c.map[k] = e;
}

/* RAII owners of the cuBLASLt descriptors (destroyed on every return path). */
struct Desc {
    cublasLtMatmulDesc_t d = nullptr;
    ~Desc() {
        if (d) cublasLtMatmulDescDestroy(d);
    }
};
struct Layout {
    cublasLtMatrixLayout_t l = nullptr;
    ~Layout() {
        if (l) cublasLtMatrixLayoutDestroy(l);
    }
};
struct Pref {
    cublasLtMatmulPreference_t p = nullptr;
    ~Pref() {
        if (p) cublasLtMatmulPreferenceDestroy(p);
    }
};

/* A column-major rows×cols layout with leading dimension ld, batched. */
cublasStatus_t make_layout(Layout *out, cudaDataType_t t, int64_t rows, int64_t cols, int64_t ld, int batch,
                           int64_t stride) {
    cublasStatus_t s = cublasLtMatrixLayoutCreate(&out->l, t, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (batch > 1) {
        int32_t bc = batch;
        s = cublasLtMatrixLayoutSetAttribute(out->l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc);
        if (s != CUBLAS_STATUS_SUCCESS) return s;
        int64_t so = stride;
        s = cublasLtMatrixLayoutSetAttribute(out->l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &so, sizeof so);
    }
    return s;
}

/* Asks the heuristic for the best algorithm of desc + layouts. Returns
 * CUBLAS_STATUS_NOT_SUPPORTED when it finds none. */
cublasStatus_t heuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t la,
                         cublasLtMatrixLayout_t lb, cublasLtMatrixLayout_t lc, size_t workspace_bytes, uint32_t align_a,
                         uint32_t align_b, uint32_t align_c, cublasLtMatmulAlgo_t *algo) {
    Pref pref;
    cublasStatus_t s = cublasLtMatmulPreferenceCreate(&pref.p);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    uint64_t ws = workspace_bytes;
    s = cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    s = cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof align_a);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    s = cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof align_b);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    s = cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof align_c);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    s = cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof align_c);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    cublasLtMatmulHeuristicResult_t res;
    memset(&res, 0, sizeof res);
    int count = 0;
    s = cublasLtMatmulAlgoGetHeuristic(h, desc, la, lb, lc, lc, pref.p, 1, &res, &count);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (count < 1 || res.state != CUBLAS_STATUS_SUCCESS) return CUBLAS_STATUS_NOT_SUPPORTED;
    *algo = res.algo;
    return CUBLAS_STATUS_SUCCESS;
}

} // namespace

namespace samk {

samk_status check_gemm(const char *op, const samk_gemm_params *p, bool *empty) {
    *empty = false;
    SAMK_CHECK(p != nullptr, SAMK_ERR_INVALID_ARG, op, "null params");
    SAMK_CHECK(dtype_valid(p->dtype), SAMK_ERR_INVALID_ARG, op, "unknown dtype %d", int(p->dtype));
    SAMK_CHECK(act_valid(p->act), SAMK_ERR_INVALID_ARG, op, "unknown activation %d", int(p->act));
    SAMK_CHECK(p->m >= 0 && p->n >= 0 && p->k >= 0 && p->batch >= 0, SAMK_ERR_INVALID_ARG, op,
               "negative size (m %lld, n %lld, k %lld, batch %d)", (long long)p->m, (long long)p->n, (long long)p->k,
               p->batch);
    if (p->m == 0 || p->n == 0 || p->batch == 0) {
        *empty = true;
        return SAMK_OK;
    }
    SAMK_CHECK(p->k >= 1, SAMK_ERR_UNSUPPORTED, op, "k = 0 (C = beta*C) is not supported");
    SAMK_CHECK(p->a != nullptr && p->b != nullptr && p->c != nullptr, SAMK_ERR_INVALID_ARG, op,
               "null pointer (a %p, b %p, c %p)", p->a, p->b, (const void *)p->c);
    const samk_dtype t = p->dtype;
    SAMK_CHECK(aligned_for(p->a, t) && aligned_for(p->b, t) && aligned_for(p->c, t) && aligned_for(p->bias, t),
               SAMK_ERR_INVALID_ARG, op, "pointer not aligned to its %s elements", dtype_name(t));
    const int64_t m = p->m, n = p->n, k = p->k;
    /* Row-major storage of A is (m, k) or, transposed, (k, m); likewise B. */
    const int64_t a_cols = p->trans_a ? m : k;
    const int64_t b_cols = p->trans_b ? k : n;
    SAMK_CHECK(p->lda >= a_cols, SAMK_ERR_INVALID_ARG, op, "lda %lld < %lld", (long long)p->lda, (long long)a_cols);
    SAMK_CHECK(p->ldb >= b_cols, SAMK_ERR_INVALID_ARG, op, "ldb %lld < %lld", (long long)p->ldb, (long long)b_cols);
    SAMK_CHECK(p->ldc >= n, SAMK_ERR_INVALID_ARG, op, "ldc %lld < n %lld", (long long)p->ldc, (long long)n);
    if (p->batch > 1) {
        SAMK_CHECK(p->stride_a >= 0 && p->stride_b >= 0, SAMK_ERR_INVALID_ARG, op, "negative batch stride");
        /* Distinct outputs per batch: C[b] must not overlap C[b+1]. */
        SAMK_CHECK(p->stride_c >= (m - 1) * p->ldc + n, SAMK_ERR_INVALID_ARG, op,
                   "stride_c %lld lets batches of C overlap (need >= %lld)", (long long)p->stride_c,
                   (long long)((m - 1) * p->ldc + n));
    }
    return SAMK_OK;
}

} // namespace samk

namespace {

/* The problem cuBLASLt could not take: the reference kernel computes it
 * (counted by samk_gemm_fallbacks). */
samk_status fall_back(const char *op, const samk_gemm_params *p, cudaStream_t st) {
    samk::count_gemm_fallback();
    (void)cudaGetLastError(); // whatever cuBLASLt left behind is not our launch's error
    samk_status s = samk::launch_gemm_ref(p, st);
    if (s != SAMK_OK) return s;
    return samk::check_launch(op);
}

} // namespace

extern "C" {

size_t samk_gemm_workspace_bytes(void) { return kWorkspaceBytes; }

samk_status samk_gemm(void *lt_handle, void *workspace, size_t workspace_bytes, const samk_gemm_params *p,
                      samk_stream stream) {
    static const char op[] = "samk_gemm";
    samk::begin();
    bool empty = false;
    samk_status vs = samk::check_gemm(op, p, &empty);
    if (vs != SAMK_OK || empty) return vs;
    SAMK_CHECK(lt_handle != nullptr, SAMK_ERR_INVALID_ARG, op, "null cuBLASLt handle");
    SAMK_CHECK(workspace != nullptr || workspace_bytes == 0, SAMK_ERR_INVALID_ARG, op,
               "null workspace of %zu bytes", workspace_bytes);
    const samk_dtype t = p->dtype;
    const int64_t m = p->m, n = p->n, k = p->k;
    const int64_t a_rows = p->trans_a ? k : m, a_cols = p->trans_a ? m : k;
    const int64_t b_rows = p->trans_b ? n : k, b_cols = p->trans_b ? k : n;

    cublasLtHandle_t h = static_cast<cublasLtHandle_t>(lt_handle);
    const cudaDataType_t dt = t == SAMK_F32 ? CUDA_R_32F : CUDA_R_16BF;
    cudaStream_t st = samk::as_stream(stream);
    cublasStatus_t s;

    Desc desc;
    s = cublasLtMatmulDescCreate(&desc.d, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (s != CUBLAS_STATUS_SUCCESS) return samk::fail_cublas(op, "cublasLtMatmulDescCreate", s);
    /* cuBLASLt's A is our B, its B our A (see the header comment). */
    cublasOperation_t lt_ta = p->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t lt_tb = p->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    s = cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_TRANSA, &lt_ta, sizeof lt_ta);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_TRANSB, &lt_tb, sizeof lt_tb);
    if (s != CUBLAS_STATUS_SUCCESS) return samk::fail_cublas(op, "cublasLtMatmulDescSetAttribute", s);

    /* Column-major views: cuBLASLt A = B storage (cols × rows of the row-major
     * storage), B = A storage, D = Cᵀ (n × m). */
    Layout la, lb, lc;
    s = make_layout(&la, dt, b_cols, b_rows, p->ldb, p->batch, p->stride_b);
    if (s == CUBLAS_STATUS_SUCCESS) s = make_layout(&lb, dt, a_cols, a_rows, p->lda, p->batch, p->stride_a);
    if (s == CUBLAS_STATUS_SUCCESS) s = make_layout(&lc, dt, n, m, p->ldc, p->batch, p->stride_c);
    if (s != CUBLAS_STATUS_SUCCESS) return samk::fail_cublas(op, "cublasLtMatrixLayoutCreate", s);

    int dev = 0;
    cudaError_t ce = cudaGetDevice(&dev);
    if (ce != cudaSuccess) return samk::fail_cuda(op, ce);

    AlgoKey key;
    memset(&key, 0, sizeof key);
    key.handle = reinterpret_cast<uintptr_t>(lt_handle);
    key.device = dev;
    key.dtype = t;
    key.trans_a = p->trans_a ? 1 : 0;
    key.trans_b = p->trans_b ? 1 : 0;
    key.m = m;
    key.n = n;
    key.k = k;
    key.batch = p->batch;
    key.lda = p->lda;
    key.ldb = p->ldb;
    key.ldc = p->ldc;
    if (p->batch > 1) {
        key.stride_a = p->stride_a;
        key.stride_b = p->stride_b;
        key.stride_c = p->stride_c;
    }
    key.align_a = alignment_of(p->b); // cuBLASLt's A is our B
    key.align_b = alignment_of(p->a);
    key.align_c = alignment_of(p->c);
    key.workspace = workspace_bytes;

    const float alpha = p->alpha, beta = p->beta;
    /* Looks up (or asks the heuristic for) an algorithm for the descriptor
     * as it is now, and runs it. */
    auto run = [&](cublasStatus_t *status) -> bool {
        AlgoEntry e;
        memset(&e, 0, sizeof e);
        if (!cache_get(key, &e)) {
            *status = heuristic(h, desc.d, la.l, lb.l, lc.l, workspace_bytes, key.align_a, key.align_b, key.align_c,
                                &e.algo);
            e.refused = *status != CUBLAS_STATUS_SUCCESS;
            if (*status == CUBLAS_STATUS_ALLOC_FAILED) return false; // not a property of the problem
            cache_put(key, e);
        }
        if (e.refused) {
            *status = CUBLAS_STATUS_NOT_SUPPORTED;
            return false;
        }
        *status = cublasLtMatmul(h, desc.d, &alpha, p->b, la.l, p->a, lb.l, &beta, p->c, lc.l, p->c, lc.l, &e.algo,
                                 workspace, workspace_bytes, st);
        if (*status != CUBLAS_STATUS_SUCCESS && *status != CUBLAS_STATUS_ALLOC_FAILED) {
            e.refused = true;
            cache_put(key, e);
        }
        return *status == CUBLAS_STATUS_SUCCESS;
    };

    /* 1. With the fused bias epilogue, for 16-byte aligned bias vectors only:
     *    some cuBLASLt versions fail at run time on less aligned ones although
     *    the heuristic accepted them (Marian's prod.cpp notes the same). If
     *    the heuristic or the matmul refuses it, 2. runs. A failed
     *    cublasLtMatmul has written nothing (it fails before its launch), so
     *    retrying is safe also with beta != 0. */
    bool bias_fused = false, done = false;
    if (p->bias != nullptr && alignment_of(p->bias) >= 16) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        s = cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
        if (s == CUBLAS_STATUS_SUCCESS) {
            const void *bias = p->bias;
            s = cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
        }
        if (s != CUBLAS_STATUS_SUCCESS) return samk::fail_cublas(op, "set bias epilogue", s);
        key.epilogue = 1;
        key.align_bias = alignment_of(p->bias);
        done = run(&s);
        if (s == CUBLAS_STATUS_ALLOC_FAILED) return samk::fail_cublas(op, "cublasLtMatmul (bias epilogue)", s);
        if (done) {
            bias_fused = true;
        } else { /* back to the default epilogue */
            cublasLtEpilogue_t none = CUBLASLT_EPILOGUE_DEFAULT;
            s = cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_EPILOGUE, &none, sizeof none);
            if (s != CUBLAS_STATUS_SUCCESS) return samk::fail_cublas(op, "reset epilogue", s);
            key.epilogue = 0;
            key.align_bias = 0;
        }
    }
    /* 2. The plain product, bias and act by our kernel afterwards. When
     *    cuBLASLt has no algorithm for it or its matmul fails (operands with
     *    a dimension of 1 are refused by some versions), the reference
     *    kernel computes the whole thing, epilogue included. Out of memory
     *    is reported, not worked around: the caller splits its batch. */
    if (!done && !run(&s)) {
        if (s == CUBLAS_STATUS_ALLOC_FAILED) return samk::fail_cublas(op, "cublasLtMatmul", s);
        return fall_back(op, p, st);
    }
    /* cuBLASLt reports its failures through its status. A benign runtime
     * error it may leave behind internally must not be blamed on our own
     * epilogue launch below (sticky errors survive this and are reported). */
    (void)cudaGetLastError();

    const void *bias_left = bias_fused ? nullptr : p->bias;
    if (bias_left == nullptr && p->act == SAMK_ACT_NONE) return SAMK_OK;
    samk::launch_bias_act(t, p->c, bias_left, p->batch, m, n, p->ldc, p->batch > 1 ? p->stride_c : 0, p->act, st);
    return samk::check_launch(op);
}

} // extern "C"
