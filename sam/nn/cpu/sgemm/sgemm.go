// Package sgemm is the CPU backend's single-precision matrix multiply:
// C = alpha·op(A)·op(B) + beta·C on row-major matrices, with op(X) = X or Xᵀ.
//
// This file holds the public API. The implementation is a placeholder
// (straightforward loops) until the blocked, packed kernel lands.
package sgemm

// Gemm computes C = alpha·op(A)·op(B) + beta·C using all available cores.
// op(A) is m×k, op(B) is k×n, C is m×n. With transA, A is stored k×m
// (lda ≥ m), else m×k (lda ≥ k); with transB, B is stored n×k (ldb ≥ k),
// else k×n (ldb ≥ n). When beta == 0, C is not read (NaNs in C are ignored).
func Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	GemmSerial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// GemmSerial is Gemm on the calling goroutine only, for callers that
// parallelise over independent products themselves (attention heads).
func GemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float32
			for p := 0; p < k; p++ {
				var x, y float32
				if transA {
					x = a[p*lda+i]
				} else {
					x = a[i*lda+p]
				}
				if transB {
					y = b[j*ldb+p]
				} else {
					y = b[p*ldb+j]
				}
				s += x * y
			}
			if beta == 0 {
				c[i*ldc+j] = alpha * s
			} else {
				c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
			}
		}
	}
}
