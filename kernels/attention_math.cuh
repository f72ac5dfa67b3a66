/*
 * attention_math.cuh — the index and softmax algebra of attention.cu as
 * __host__ __device__ functions, so that kernels/test/host_test.cu can check
 * them on the host (no GPU) against a straightforward statement.
 */
#ifndef SAMK_ATTENTION_MATH_CUH
#define SAMK_ATTENTION_MATH_CUH

#include <math.h>

namespace samk {

/* Row of a decomposed rel-pos table (2·n − 1 rows) for query coordinate iq
 * and key coordinate jk on an axis of n tokens: iq − jk + n − 1 ∈ [0, 2n−2]
 * (segment_anything get_rel_pos with q_size == k_size: no rescaling). */
__host__ __device__ __forceinline__ int relpos_row(int iq, int jk, int n) { return iq - jk + n - 1; }

/* One step of the online softmax. The running state of a row is its maximum
 * logit m so far (−inf before the first key), l = Σ exp(s_j − m) and the
 * accumulator o = Σ exp(s_j − m)·v_j. A new tile of logits with maximum
 * tile_max moves the maximum to m' = max(m, tile_max); the old l and o are
 * then multiplied by the returned factor exp(m − m') (0 on the first tile),
 * after which the tile adds Σ exp(s_j − m') and Σ exp(s_j − m')·v_j. At the
 * end softmax(s)·v = o / l, the same value as the two-pass formula because
 * every term carries the same factor exp(−m_final). m is updated in place. */
__host__ __device__ __forceinline__ float softmax_rescale(float &m, float tile_max) {
    const float m_new = fmaxf(m, tile_max);
    const float corr = expf(m - m_new);
    m = m_new;
    return corr;
}

} // namespace samk

#endif /* SAMK_ATTENTION_MATH_CUH */
