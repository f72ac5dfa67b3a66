//go:build !purego

#include "textflag.h"

// AVX-512 pieces of the LayerNorm row (norm_amd64.go): the sum and the
// sum of squared deviations accumulate in float64 (8 lanes each, as the
// scalar code), the normalisation runs in float32. len(x) is a multiple
// of 16; the caller does the tail.

// func lnSumAVX512(x []float32) float64
TEXT ·lnSumAVX512(SB), NOSPLIT, $0-32
	MOVQ   x_base+0(FP), SI
	MOVQ   x_len+8(FP), CX
	VXORPD Z2, Z2, Z2
	VXORPD Z3, Z3, Z3
	SHRQ   $4, CX
	JZ     sdone

sloop:
	VCVTPS2PD (SI), Z0
	VCVTPS2PD 32(SI), Z1
	VADDPD    Z0, Z2, Z2
	VADDPD    Z1, Z3, Z3
	ADDQ      $64, SI
	DECQ      CX
	JNZ       sloop

sdone:
	VADDPD        Z3, Z2, Z2
	VEXTRACTF64X4 $1, Z2, Y3
	VADDPD        Y3, Y2, Y2
	VEXTRACTF128  $1, Y2, X3
	VADDPD        X3, X2, X2
	VPERMILPD     $1, X2, X3
	VADDSD        X3, X2, X2
	MOVSD         X2, ret+24(FP)
	VZEROUPPER
	RET

// func lnSqDevAVX512(x []float32, mean float64) float64
TEXT ·lnSqDevAVX512(SB), NOSPLIT, $0-40
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSD mean+24(FP), Z4
	VXORPD       Z2, Z2, Z2
	VXORPD       Z3, Z3, Z3
	SHRQ         $4, CX
	JZ           qdone

qloop:
	VCVTPS2PD   (SI), Z0
	VCVTPS2PD   32(SI), Z1
	VSUBPD      Z4, Z0, Z0
	VSUBPD      Z4, Z1, Z1
	VFMADD231PD Z0, Z0, Z2
	VFMADD231PD Z1, Z1, Z3
	ADDQ        $64, SI
	DECQ        CX
	JNZ         qloop

qdone:
	VADDPD        Z3, Z2, Z2
	VEXTRACTF64X4 $1, Z2, Y3
	VADDPD        Y3, Y2, Y2
	VEXTRACTF128  $1, Y2, X3
	VADDPD        X3, X2, X2
	VPERMILPD     $1, X2, X3
	VADDSD        X3, X2, X2
	MOVSD         X2, ret+32(FP)
	VZEROUPPER
	RET

// func lnApplyAVX512(out, x, w, b []float32, meanHi, meanLo, rstd float32)
// out[c] = ((x[c] − meanHi) − meanLo)·rstd·w[c] + b[c]: the float64 mean
// as two float32s, so that x − mean keeps its precision when the row has a
// large common offset (x − meanHi is exact when they are close).
TEXT ·lnApplyAVX512(SB), NOSPLIT, $0-108
	MOVQ         out_base+0(FP), DI
	MOVQ         out_len+8(FP), CX
	MOVQ         x_base+24(FP), SI
	MOVQ         w_base+48(FP), R8
	MOVQ         b_base+72(FP), R9
	VBROADCASTSS meanHi+96(FP), Z4
	VBROADCASTSS meanLo+100(FP), Z6
	VBROADCASTSS rstd+104(FP), Z5
	SHRQ         $4, CX
	JZ           adone

aloop:
	VMOVUPS     (SI), Z0
	VSUBPS      Z4, Z0, Z0
	VSUBPS      Z6, Z0, Z0
	VMULPS      Z5, Z0, Z0
	VMOVUPS     (R9), Z1
	VFMADD231PS (R8), Z0, Z1
	VMOVUPS     Z1, (DI)
	ADDQ        $64, DI
	ADDQ        $64, SI
	ADDQ        $64, R8
	ADDQ        $64, R9
	DECQ        CX
	JNZ         aloop

adone:
	VZEROUPPER
	RET
