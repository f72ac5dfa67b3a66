//go:build !purego

#include "textflag.h"

// AVX-512 and AVX2+FMA versions of the softmax's exp and of GELU
// (vmath_amd64.go says when they are used; mathf.go has the scalar code
// they replace, vmath_test.go the error bounds). The AVX2 code follows the
// AVX-512 code below it.

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
	VEXTRACTF64X4 $1, Z0, Y2 \
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

// AVX2+FMA versions, for CPUs without AVX-512: the same algorithms on 8
// lanes, with constants from memory where the 16 Y registers run short.

// Constants, each repeated over 8 lanes (32 bytes).
DATA expAVX2<>+0(SB)/8, $0xc2aeac4fc2aeac4f // −87.33654 (lower clamp)
DATA expAVX2<>+8(SB)/8, $0xc2aeac4fc2aeac4f
DATA expAVX2<>+16(SB)/8, $0xc2aeac4fc2aeac4f
DATA expAVX2<>+24(SB)/8, $0xc2aeac4fc2aeac4f
DATA expAVX2<>+32(SB)/8, $0x3fb8aa3b3fb8aa3b // log2 e
DATA expAVX2<>+40(SB)/8, $0x3fb8aa3b3fb8aa3b
DATA expAVX2<>+48(SB)/8, $0x3fb8aa3b3fb8aa3b
DATA expAVX2<>+56(SB)/8, $0x3fb8aa3b3fb8aa3b
DATA expAVX2<>+64(SB)/8, $0x3f3180003f318000 // ln 2, high part
DATA expAVX2<>+72(SB)/8, $0x3f3180003f318000
DATA expAVX2<>+80(SB)/8, $0x3f3180003f318000
DATA expAVX2<>+88(SB)/8, $0x3f3180003f318000
DATA expAVX2<>+96(SB)/8, $0xb95e8083b95e8083 // ln 2, low part
DATA expAVX2<>+104(SB)/8, $0xb95e8083b95e8083
DATA expAVX2<>+112(SB)/8, $0xb95e8083b95e8083
DATA expAVX2<>+120(SB)/8, $0xb95e8083b95e8083
DATA expAVX2<>+128(SB)/8, $0x42b1721742b17217 // 88.72283: largest float32 below 128·ln 2
DATA expAVX2<>+136(SB)/8, $0x42b1721742b17217
DATA expAVX2<>+144(SB)/8, $0x42b1721742b17217
DATA expAVX2<>+152(SB)/8, $0x42b1721742b17217
DATA expAVX2<>+160(SB)/8, $0x3ab743ce3ab743ce // P1 1.3981999507e-3
DATA expAVX2<>+168(SB)/8, $0x3ab743ce3ab743ce
DATA expAVX2<>+176(SB)/8, $0x3ab743ce3ab743ce
DATA expAVX2<>+184(SB)/8, $0x3ab743ce3ab743ce
DATA expAVX2<>+192(SB)/8, $0x3c0889083c088908 // P2 8.3334519073e-3
DATA expAVX2<>+200(SB)/8, $0x3c0889083c088908
DATA expAVX2<>+208(SB)/8, $0x3c0889083c088908
DATA expAVX2<>+216(SB)/8, $0x3c0889083c088908
DATA expAVX2<>+224(SB)/8, $0x3d2aa9c13d2aa9c1 // P3 4.1665795894e-2
DATA expAVX2<>+232(SB)/8, $0x3d2aa9c13d2aa9c1
DATA expAVX2<>+240(SB)/8, $0x3d2aa9c13d2aa9c1
DATA expAVX2<>+248(SB)/8, $0x3d2aa9c13d2aa9c1
DATA expAVX2<>+256(SB)/8, $0x3950696739506967 // P0 1.9875691500e-4
DATA expAVX2<>+264(SB)/8, $0x3950696739506967
DATA expAVX2<>+272(SB)/8, $0x3950696739506967
DATA expAVX2<>+280(SB)/8, $0x3950696739506967
DATA expAVX2<>+288(SB)/8, $0x3e2aaaaa3e2aaaaa // P4 1.6666665459e-1
DATA expAVX2<>+296(SB)/8, $0x3e2aaaaa3e2aaaaa
DATA expAVX2<>+304(SB)/8, $0x3e2aaaaa3e2aaaaa
DATA expAVX2<>+312(SB)/8, $0x3e2aaaaa3e2aaaaa
DATA expAVX2<>+320(SB)/8, $0x3f0000003f000000 // 0.5
DATA expAVX2<>+328(SB)/8, $0x3f0000003f000000
DATA expAVX2<>+336(SB)/8, $0x3f0000003f000000
DATA expAVX2<>+344(SB)/8, $0x3f0000003f000000
DATA expAVX2<>+352(SB)/8, $0x3f8000003f800000 // 1
DATA expAVX2<>+360(SB)/8, $0x3f8000003f800000
DATA expAVX2<>+368(SB)/8, $0x3f8000003f800000
DATA expAVX2<>+376(SB)/8, $0x3f8000003f800000
DATA expAVX2<>+384(SB)/8, $0x7f8000007f800000 // +Inf
DATA expAVX2<>+392(SB)/8, $0x7f8000007f800000
DATA expAVX2<>+400(SB)/8, $0x7f8000007f800000
DATA expAVX2<>+408(SB)/8, $0x7f8000007f800000
GLOBL expAVX2<>(SB), RODATA|NOPTR, $416

DATA geluAVX2<>+0(SB)/8, $0x7fffffff7fffffff // |·|
DATA geluAVX2<>+8(SB)/8, $0x7fffffff7fffffff
DATA geluAVX2<>+16(SB)/8, $0x7fffffff7fffffff
DATA geluAVX2<>+24(SB)/8, $0x7fffffff7fffffff
DATA geluAVX2<>+32(SB)/8, $0x403504f3403504f3 // 4/√2 = 4·float32(1/√2) (exactly)
DATA geluAVX2<>+40(SB)/8, $0x403504f3403504f3
DATA geluAVX2<>+48(SB)/8, $0x403504f3403504f3
DATA geluAVX2<>+56(SB)/8, $0x403504f3403504f3
DATA geluAVX2<>+64(SB)/8, $0x0000000f0000000f // the last interval (int32)
DATA geluAVX2<>+72(SB)/8, $0x0000000f0000000f
DATA geluAVX2<>+80(SB)/8, $0x0000000f0000000f
DATA geluAVX2<>+88(SB)/8, $0x0000000f0000000f
DATA geluAVX2<>+96(SB)/8, $0x3f8000003f800000 // 1
DATA geluAVX2<>+104(SB)/8, $0x3f8000003f800000
DATA geluAVX2<>+112(SB)/8, $0x3f8000003f800000
DATA geluAVX2<>+120(SB)/8, $0x3f8000003f800000
DATA geluAVX2<>+128(SB)/8, $0x3f0000003f000000 // 0.5
DATA geluAVX2<>+136(SB)/8, $0x3f0000003f000000
DATA geluAVX2<>+144(SB)/8, $0x3f0000003f000000
DATA geluAVX2<>+152(SB)/8, $0x3f0000003f000000
GLOBL geluAVX2<>(SB), RODATA|NOPTR, $160

DATA tailAVX2<>+0(SB)/8, $0xffffffffffffffff
DATA tailAVX2<>+8(SB)/8, $0xffffffffffffffff
DATA tailAVX2<>+16(SB)/8, $0xffffffffffffffff
DATA tailAVX2<>+24(SB)/8, $0xffffffffffffffff
DATA tailAVX2<>+32(SB)/8, $0x0000000000000000
DATA tailAVX2<>+40(SB)/8, $0x0000000000000000
DATA tailAVX2<>+48(SB)/8, $0x0000000000000000
DATA tailAVX2<>+56(SB)/8, $0x0000000000000000
GLOBL tailAVX2<>(SB), RODATA|NOPTR, $64

// TAILMASK loads into Y of the mask of the first CX (0 < CX < 8) lanes,
// leaving its address in AX. Clobbers BX.
#define TAILMASK(Y) \
	LEAQ    tailAVX2<>+32(SB), AX \
	MOVQ    CX, BX \
	SHLQ    $2, BX \
	SUBQ    BX, AX \
	VMOVDQU (AX), Y

// EXPSUB8 is EXPSUB on the 8 lanes of Y0, with 2^n applied by adding n to
// the exponent field of e^r: x is clamped below to −87.33654 as there, so
// n ≥ −126, and where n = −126, r > 0 and e^r ≥ 1, so the exponent stays
// ≥ 1 (results down to 2^−126 stay normal); x ≤ 88.72283 gives n ≤ 128,
// and where n = 128, r < 0 and e^r ≤ 1 (exponent ≤ 255 with a zero
// mantissa: at most +Inf). Lanes above 88.72283 (e^x overflows) are set to
// +Inf, as VSCALEFPS gives. NaN stays NaN (VMAXPS returns x; n converts
// to 0x80000000, whose shifted value 0 leaves the NaN's bits alone).
// Constants: m Y15, lower clamp Y14, log2 e Y13, ln 2 Y12 + Y11, 88.72283
// Y10, P1–P3 Y9–Y7, the rest from expAVX2<>. Clobbers Y1–Y4.
#define EXPSUB8 \
	VSUBPS       Y15, Y0, Y0 \
	VMAXPS       Y0, Y14, Y0 \
	VCMPPS       $0x1e, Y10, Y0, Y4 \
	VMULPS       Y13, Y0, Y1 \
	VROUNDPS     $8, Y1, Y1 \
	VFNMADD231PS Y12, Y1, Y0 \
	VFNMADD231PS Y11, Y1, Y0 \
	VMULPS       Y0, Y0, Y2 \
	VMOVUPS      expAVX2<>+256(SB), Y3 \
	VFMADD213PS  Y9, Y0, Y3 \
	VFMADD213PS  Y8, Y0, Y3 \
	VFMADD213PS  Y7, Y0, Y3 \
	VFMADD213PS  expAVX2<>+288(SB), Y0, Y3 \
	VFMADD213PS  expAVX2<>+320(SB), Y0, Y3 \
	VFMADD213PS  Y0, Y2, Y3 \
	VADDPS       expAVX2<>+352(SB), Y3, Y3 \
	VCVTPS2DQ    Y1, Y1 \
	VPSLLD       $23, Y1, Y1 \
	VPADDD       Y1, Y3, Y3 \
	VBLENDVPS    Y4, expAVX2<>+384(SB), Y3, Y0

// SUM8 adds the 8 float32 lanes of Y0 to the float64 sums Y5, Y6.
#define SUM8 \
	VCVTPS2PD    X0, Y1 \
	VADDPD       Y1, Y5, Y5 \
	VEXTRACTF128 $1, Y0, X2 \
	VCVTPS2PD    X2, Y2 \
	VADDPD       Y2, Y6, Y6

// func expSubSumAVX2(s []float32, m float32) float64
TEXT ·expSubSumAVX2(SB), NOSPLIT, $0-40
	MOVQ         s_base+0(FP), SI
	MOVQ         s_len+8(FP), CX
	VBROADCASTSS m+24(FP), Y15
	VMOVUPS      expAVX2<>+0(SB), Y14
	VMOVUPS      expAVX2<>+32(SB), Y13
	VMOVUPS      expAVX2<>+64(SB), Y12
	VMOVUPS      expAVX2<>+96(SB), Y11
	VMOVUPS      expAVX2<>+128(SB), Y10
	VMOVUPS      expAVX2<>+160(SB), Y9
	VMOVUPS      expAVX2<>+192(SB), Y8
	VMOVUPS      expAVX2<>+224(SB), Y7
	VXORPD       Y5, Y5, Y5
	VXORPD       Y6, Y6, Y6

exp2loop:
	CMPQ    CX, $8
	JB      exp2tail
	VMOVUPS (SI), Y0
	EXPSUB8
	VMOVUPS Y0, (SI)
	SUM8
	ADDQ    $32, SI
	SUBQ    $8, CX
	JMP     exp2loop

exp2tail:
	TESTQ      CX, CX
	JZ         exp2done
	TAILMASK(Y1)
	VMASKMOVPS (SI), Y1, Y0 // lanes past the end read as 0, without a fault
	EXPSUB8
	VMOVDQU    (AX), Y1
	VMASKMOVPS Y0, Y1, (SI)
	VANDPS     Y1, Y0, Y0 // lanes past the end add nothing
	SUM8

exp2done:
	VADDPD       Y6, Y5, Y5
	VEXTRACTF128 $1, Y5, X1
	VADDPD       X1, X5, X1
	VPERMILPD    $1, X1, X2
	VADDSD       X2, X1, X1
	MOVSD        X1, ret+32(FP)
	VZEROUPPER
	RET

// GELU8 is GELU16 on the 8 lanes of Y0 (result in Y5), each coefficient
// selected from its 16 intervals by two VPERMPS, on intervals 0–7 and
// 8–15 of the table (the low 3 bits of the index), and a VBLENDVPS on the
// index's bit 3 (shifted to the sign bit). z·4 = |x|·(4/√2) and u =
// 2(z·4 − i) − 1 give the same bits as GELU16's (z·4 and the integer part
// are exact). The lanes with |x|/√2 ≥ 4 (or NaN) are those whose truncated
// index exceeds 15 (0x80000000 for NaN, for which the result is NaN
// anyway: 0.5·x is). Constants: Y15 |·|, Y14 4/√2, Y13 15, Y12 1, Y11
// 0.5; the table at DX. Clobbers Y1–Y7.
#define GELU8 \
	VANDPS      Y15, Y0, Y1 \
	VMULPS      Y14, Y1, Y1 \
	VCVTTPS2DQ  Y1, Y2 \
	VPMINUD     Y13, Y2, Y3 \
	VPCMPEQD    Y3, Y2, Y2 \
	VCVTDQ2PS   Y3, Y4 \
	VSUBPS      Y4, Y1, Y4 \
	VADDPS      Y4, Y4, Y4 \
	VSUBPS      Y12, Y4, Y4 \
	VPSLLD      $28, Y3, Y1 \
	VPERMPS     384(DX), Y3, Y5 \
	VPERMPS     416(DX), Y3, Y6 \
	VBLENDVPS   Y1, Y6, Y5, Y5 \
	VPERMPS     320(DX), Y3, Y6 \
	VPERMPS     352(DX), Y3, Y7 \
	VBLENDVPS   Y1, Y7, Y6, Y6 \
	VFMADD213PS Y6, Y4, Y5 \
	VPERMPS     256(DX), Y3, Y6 \
	VPERMPS     288(DX), Y3, Y7 \
	VBLENDVPS   Y1, Y7, Y6, Y6 \
	VFMADD213PS Y6, Y4, Y5 \
	VPERMPS     192(DX), Y3, Y6 \
	VPERMPS     224(DX), Y3, Y7 \
	VBLENDVPS   Y1, Y7, Y6, Y6 \
	VFMADD213PS Y6, Y4, Y5 \
	VPERMPS     128(DX), Y3, Y6 \
	VPERMPS     160(DX), Y3, Y7 \
	VBLENDVPS   Y1, Y7, Y6, Y6 \
	VFMADD213PS Y6, Y4, Y5 \
	VPERMPS     64(DX), Y3, Y6 \
	VPERMPS     96(DX), Y3, Y7 \
	VBLENDVPS   Y1, Y7, Y6, Y6 \
	VFMADD213PS Y6, Y4, Y5 \
	VPERMPS     0(DX), Y3, Y6 \
	VPERMPS     32(DX), Y3, Y7 \
	VBLENDVPS   Y1, Y7, Y6, Y6 \
	VFMADD213PS Y6, Y4, Y5 \
	VBLENDVPS   Y2, Y5, Y12, Y5 \
	VANDNPS     Y0, Y15, Y6 \
	VORPS       Y6, Y5, Y5 \
	VMULPS      Y11, Y0, Y6 \
	VFMADD213PS Y6, Y6, Y5

// func geluAVX2(d []float32, tab *[erfDegree + 1][16]float32)
TEXT ·geluAVX2(SB), NOSPLIT, $0-32
	MOVQ    d_base+0(FP), SI
	MOVQ    d_len+8(FP), CX
	MOVQ    tab+24(FP), DX
	VMOVUPS geluAVX2<>+0(SB), Y15
	VMOVUPS geluAVX2<>+32(SB), Y14
	VMOVUPS geluAVX2<>+64(SB), Y13
	VMOVUPS geluAVX2<>+96(SB), Y12
	VMOVUPS geluAVX2<>+128(SB), Y11

gelu2loop:
	CMPQ    CX, $8
	JB      gelu2tail
	VMOVUPS (SI), Y0
	GELU8
	VMOVUPS Y5, (SI)
	ADDQ    $32, SI
	SUBQ    $8, CX
	JMP     gelu2loop

gelu2tail:
	TESTQ      CX, CX
	JZ         gelu2done
	TAILMASK(Y10)
	VMASKMOVPS (SI), Y10, Y0
	GELU8
	VMASKMOVPS Y5, Y10, (SI)

gelu2done:
	VZEROUPPER
	RET
