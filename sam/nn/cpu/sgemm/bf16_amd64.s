//go:build amd64

#include "textflag.h"

// func cvtRowBF16(dst *uint32, src *float32, n32 int, alpha float32)
//
// Converts n32·32 floats, each multiplied by alpha, to bf16 (round to
// nearest even, denormals as zero: VCVTNE2PS2BF16), in order: dst's word i
// holds elements 2i (low half) and 2i+1 (high half). The Go assembler has
// no AVX512_BF16 mnemonics; the instruction is written as bytes (EVEX.512.
// F2.0F38.W0 72 /r, checked against GNU as 2.40).
TEXT ·cvtRowBF16(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n32+16(FP), CX
	VBROADCASTSS alpha+24(FP), Z3
	TESTQ CX, CX
	JZ done
loop:
	VMULPS (SI), Z3, Z0
	VMULPS 64(SI), Z3, Z1
	// VCVTNE2PS2BF16 Z0, Z1, Z2: words 0-15 from Z0, 16-31 from Z1
	BYTE $0x62; BYTE $0xf2; BYTE $0x77; BYTE $0x48; BYTE $0x72; BYTE $0xd0
	VMOVDQU32 Z2, (DI)
	ADDQ $128, SI
	ADDQ $64, DI
	DECQ CX
	JNZ loop
done:
	VZEROUPPER
	RET
