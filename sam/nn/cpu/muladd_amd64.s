//go:build !purego

#include "textflag.h"

// o[i] += x[i]·w[i] (one fused multiply-add) for i < len(o) rounded down
// to the vector width; muladd_amd64.go does the tail. x and w are at
// least as long as o.

// func mulAddAVX512(o, x, w []float32)
TEXT ·mulAddAVX512(SB), NOSPLIT, $0-72
	MOVQ o_base+0(FP), DI
	MOVQ o_len+8(FP), CX
	MOVQ x_base+24(FP), SI
	MOVQ w_base+48(FP), DX
	SHRQ $4, CX
	JZ   done512

loop512:
	VMOVUPS     (DI), Z0
	VMOVUPS     (SI), Z1
	VFMADD231PS (DX), Z1, Z0
	VMOVUPS     Z0, (DI)
	ADDQ        $64, DI
	ADDQ        $64, SI
	ADDQ        $64, DX
	DECQ        CX
	JNZ         loop512

done512:
	VZEROUPPER
	RET

// func mulAddAVX2(o, x, w []float32)
TEXT ·mulAddAVX2(SB), NOSPLIT, $0-72
	MOVQ o_base+0(FP), DI
	MOVQ o_len+8(FP), CX
	MOVQ x_base+24(FP), SI
	MOVQ w_base+48(FP), DX
	SHRQ $3, CX
	JZ   done2

loop2:
	VMOVUPS     (DI), Y0
	VMOVUPS     (SI), Y1
	VFMADD231PS (DX), Y1, Y0
	VMOVUPS     Y0, (DI)
	ADDQ        $32, DI
	ADDQ        $32, SI
	ADDQ        $32, DX
	DECQ        CX
	JNZ         loop2

done2:
	VZEROUPPER
	RET

// o[i] += x[i] for i < len(o) rounded down to the vector width.

// func addAVX512(o, x []float32)
TEXT ·addAVX512(SB), NOSPLIT, $0-48
	MOVQ o_base+0(FP), DI
	MOVQ o_len+8(FP), CX
	MOVQ x_base+24(FP), SI
	SHRQ $4, CX
	JZ   adone512

aloop512:
	VMOVUPS (DI), Z0
	VADDPS  (SI), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, DI
	ADDQ    $64, SI
	DECQ    CX
	JNZ     aloop512

adone512:
	VZEROUPPER
	RET

// func addAVX2(o, x []float32)
TEXT ·addAVX2(SB), NOSPLIT, $0-48
	MOVQ o_base+0(FP), DI
	MOVQ o_len+8(FP), CX
	MOVQ x_base+24(FP), SI
	SHRQ $3, CX
	JZ   adone2

aloop2:
	VMOVUPS (DI), Y0
	VADDPS  (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JNZ     aloop2

adone2:
	VZEROUPPER
	RET
