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

// func packPairsBF16(dst *uint32, r0, r1 *float32, n16 int, idx *[32]uint16)
//
// dst[j] = bf16(r0[j]) | bf16(r1[j])<<16 for j < 16·n16: two rows of a k×n
// B interleaved into pairs (PackBF16). VCVTNE2PS2BF16 converts both rows
// into one register (r0's 16 words, then r1's), VPERMW (AVX512BW) with
// idx = 0, 16, 1, 17, … interleaves them.
TEXT ·packPairsBF16(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ r0+8(FP), SI
	MOVQ r1+16(FP), DX
	MOVQ n16+24(FP), CX
	MOVQ idx+32(FP), AX
	VMOVDQU16 (AX), Z4
	TESTQ CX, CX
	JZ pdone
ploop:
	VMOVUPS (SI), Z0
	VMOVUPS (DX), Z1
	// VCVTNE2PS2BF16 Z0, Z1, Z2: words 0-15 from Z0 (r0), 16-31 from Z1 (r1)
	BYTE $0x62; BYTE $0xf2; BYTE $0x77; BYTE $0x48; BYTE $0x72; BYTE $0xd0
	VPERMW Z2, Z4, Z3
	VMOVDQU32 Z3, (DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, DI
	DECQ CX
	JNZ ploop
pdone:
	VZEROUPPER
	RET
