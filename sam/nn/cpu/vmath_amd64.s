//go:build !purego

#include "textflag.h"

// AVX-512 versions of the softmax's exp and of GELU (vmath_amd64.go says
// when they are used; mathf.go has the scalar code they replace and the
// error bounds).

// EXPSUB computes Z0 = exp(Z0 − m) for 16 lanes (Cephes expf: n =
// round(x·log2e), r = x − n·ln2 in two parts, e^r = 1 + r + r²·P(r) with P
// of degree 5, scaled by 2^n with VSCALEFPS). Inputs below m − 87.3 give
// e^−87.3 ≈ 1.2e−38 instead of a subnormal or 0; NaN stays NaN (VMAXPS
// returns its second source, x, when one is NaN). Clobbers Z1–Z3.
#define EXPSUB \
	VSUBPS       Z31, Z0, Z0 \
	VMAXPS       Z0, Z20, Z0 \
	VMULPS       Z30, Z0, Z1 \
	VRNDSCALEPS  $8, Z1, Z1 \
	VFNMADD231PS Z29, Z1, Z0 \
	VFNMADD231PS Z28, Z1, Z0 \
	VMULPS       Z0, Z0, Z2 \
	VMOVAPS      Z27, Z3 \
	VFMADD213PS  Z26, Z0, Z3 \
	VFMADD213PS  Z25, Z0, Z3 \
	VFMADD213PS  Z24, Z0, Z3 \
	VFMADD213PS  Z23, Z0, Z3 \
	VFMADD213PS  Z22, Z0, Z3 \
	VFMADD213PS  Z0, Z2, Z3 \
	VADDPS       Z21, Z3, Z3 \
	VSCALEFPS    Z1, Z3, Z0

// SUM16 adds the 16 float32 lanes of Z0 to the float64 sums Z18, Z19.
#define SUM16 \
	VCVTPS2PD     Y0, Z1 \
	VADDPD        Z1, Z18, Z18 \
	VEXTRACTF32X8 $1, Z0, Y2 \
	VCVTPS2PD     Y2, Z2 \
	VADDPD        Z2, Z19, Z19

// func expSubSumAVX512(s []float32, m float32) float64
TEXT ·expSubSumAVX512(SB), NOSPLIT, $0-40
	MOVQ         s_base+0(FP), SI
	MOVQ         s_len+8(FP), CX
	VBROADCASTSS m+24(FP), Z31
	MOVL         $0x3fb8aa3b, AX // log2 e
	VPBROADCASTD AX, Z30
	MOVL         $0x3f318000, AX // ln 2, high part
	VPBROADCASTD AX, Z29
	MOVL         $0xb95e8083, AX // ln 2, low part
	VPBROADCASTD AX, Z28
	MOVL         $0x39506967, AX // P: 1.9875691500e-4
	VPBROADCASTD AX, Z27
	MOVL         $0x3ab743ce, AX // 1.3981999507e-3
	VPBROADCASTD AX, Z26
	MOVL         $0x3c088908, AX // 8.3334519073e-3
	VPBROADCASTD AX, Z25
	MOVL         $0x3d2aa9c1, AX // 4.1665795894e-2
	VPBROADCASTD AX, Z24
	MOVL         $0x3e2aaaaa, AX // 1.6666665459e-1
	VPBROADCASTD AX, Z23
	MOVL         $0x3f000000, AX // 0.5
	VPBROADCASTD AX, Z22
	MOVL         $0x3f800000, AX // 1
	VPBROADCASTD AX, Z21
	MOVL         $0xc2aeac4f, AX // −87.33654: e^x stays a normal float
	VPBROADCASTD AX, Z20
	VXORPD       Z18, Z18, Z18
	VXORPD       Z19, Z19, Z19

exploop:
	CMPQ    CX, $16
	JB      exptail
	VMOVUPS (SI), Z0
	EXPSUB
	VMOVUPS Z0, (SI)
	SUM16
	ADDQ    $64, SI
	SUBQ    $16, CX
	JMP     exploop

exptail:
	TESTQ     CX, CX
	JZ        expdone
	MOVL      $1, AX
	SHLL      CX, AX
	DECL      AX
	KMOVW     AX, K1
	VMOVUPS.Z (SI), K1, Z0
	EXPSUB
	VMOVUPS   Z0, K1, (SI)
	VMOVAPS.Z Z0, K1, Z0 // lanes past the end add nothing
	SUM16

expdone:
	VADDPD        Z19, Z18, Z18
	VEXTRACTF64X4 $1, Z18, Y1
	VADDPD        Y1, Y18, Y1
	VEXTRACTF128  $1, Y1, X2
	VADDPD        X2, X1, X1
	VPERMILPD     $1, X1, X2
	VADDSD        X2, X1, X1
	MOVSD         X1, ret+32(FP)
	VZEROUPPER
	RET

// GELU16 computes Z0 = 0.5·x·(1 + erf(x/√2)) for the 16 lanes x of Z0,
// erf from the table of mathf.go (16 intervals of width 1/4 on [0, 4),
// degree-6 polynomials in u ∈ [−1, 1], coefficients c_k in Z24 + k, lane i
// of Z24 + k holding c_k of interval i, selected with VPERMPS), 1 for
// |x|/√2 ≥ 4, and the sign of x. Clobbers Z1–Z9 and K2.
#define GELU16 \
	VPANDD      Z23, Z0, Z1 \
	VMULPS      Z22, Z1, Z1 \
	VMULPS      Z20, Z1, Z2 \
	VCVTTPS2DQ  Z2, Z3 \
	VPMINUD     Z15, Z3, Z3 \
	VPSLLD      $1, Z3, Z4 \
	VPADDD      Z16, Z4, Z4 \
	VCVTDQ2PS   Z4, Z4 \
	VMULPS      Z21, Z1, Z5 \
	VSUBPS      Z4, Z5, Z5 \
	VPERMPS     Z30, Z3, Z6 \
	VPERMPS     Z29, Z3, Z7 \
	VFMADD213PS Z7, Z5, Z6 \
	VPERMPS     Z28, Z3, Z7 \
	VFMADD213PS Z7, Z5, Z6 \
	VPERMPS     Z27, Z3, Z7 \
	VFMADD213PS Z7, Z5, Z6 \
	VPERMPS     Z26, Z3, Z7 \
	VFMADD213PS Z7, Z5, Z6 \
	VPERMPS     Z25, Z3, Z7 \
	VFMADD213PS Z7, Z5, Z6 \
	VPERMPS     Z24, Z3, Z7 \
	VFMADD213PS Z7, Z5, Z6 \
	VCMPPS      $0x1d, Z20, Z1, K2 \
	VMOVAPS     Z18, K2, Z6 \
	VPANDD      Z17, Z0, Z8 \
	VPORD       Z8, Z6, Z6 \
	VMULPS      Z19, Z0, Z9 \
	VFMADD213PS Z9, Z9, Z6 \
	VMOVAPS     Z6, Z0

// func geluAVX512(d []float32, tab *[erfDegree + 1][16]float32)
TEXT ·geluAVX512(SB), NOSPLIT, $0-32
	MOVQ         d_base+0(FP), SI
	MOVQ         d_len+8(FP), CX
	MOVQ         tab+24(FP), DX
	VMOVUPS      0(DX), Z24
	VMOVUPS      64(DX), Z25
	VMOVUPS      128(DX), Z26
	VMOVUPS      192(DX), Z27
	VMOVUPS      256(DX), Z28
	VMOVUPS      320(DX), Z29
	VMOVUPS      384(DX), Z30
	MOVL         $0x7fffffff, AX // |·|
	VPBROADCASTD AX, Z23
	MOVL         $0x3f3504f3, AX // 1/√2
	VPBROADCASTD AX, Z22
	MOVL         $0x41000000, AX // 8 = 2·erfPerUnit
	VPBROADCASTD AX, Z21
	MOVL         $0x40800000, AX // 4 = erfPerUnit = erfMax
	VPBROADCASTD AX, Z20
	MOVL         $0x3f000000, AX // 0.5
	VPBROADCASTD AX, Z19
	MOVL         $0x3f800000, AX // 1
	VPBROADCASTD AX, Z18
	MOVL         $0x80000000, AX // sign bit
	VPBROADCASTD AX, Z17
	MOVL         $1, AX
	VPBROADCASTD AX, Z16
	MOVL         $15, AX // the last interval
	VPBROADCASTD AX, Z15

geluloop:
	CMPQ    CX, $16
	JB      gelutail
	VMOVUPS (SI), Z0
	GELU16
	VMOVUPS Z0, (SI)
	ADDQ    $64, SI
	SUBQ    $16, CX
	JMP     geluloop

gelutail:
	TESTQ     CX, CX
	JZ        geludone
	MOVL      $1, AX
	SHLL      CX, AX
	DECL      AX
	KMOVW     AX, K1
	VMOVUPS.Z (SI), K1, Z0
	GELU16
	VMOVUPS   Z0, K1, (SI)

geludone:
	VZEROUPPER
	RET
