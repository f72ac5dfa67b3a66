//go:build amd64

#include "textflag.h"

// Packing helpers (see transpose.go and pack.go).
//
// The register transposes compute
//
//	dst[p·ldd + r] = alpha · src[r·lds + p]
//
// for a strip of 8 (or 4) rows r and 8·k8 (or 4·k4) columns p, one 8×8
// (4×4) block per iteration: load the rows, interleave pairs of rows
// (unpck), pairs of pairs (shufps) and, for 8×8, the 128-bit halves
// (vperm2f128), then store the columns. Requires AVX.

// func transpose8(dst *float32, ldd int, src *float32, lds int, k8 int, alpha float32)
TEXT ·transpose8(SB), NOSPLIT, $0-44
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R8
	SHLQ $2, R8
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), R9
	SHLQ $2, R9
	MOVQ k8+32(FP), CX
	VBROADCASTSS alpha+40(FP), Y15
	LEAQ (R9)(R9*2), R10 // 3·lds
	LEAQ (R8)(R8*2), R11 // 3·ldd
	LEAQ (SI)(R9*4), BX  // row 4
	TESTQ CX, CX
	JZ t8_done

t8_loop:
	// Fetch ahead: each row is its own short stream, too short for the
	// hardware prefetchers to pick up when A comes from DRAM.
	PREFETCHT0 256(SI)
	PREFETCHT0 256(SI)(R9*1)
	PREFETCHT0 256(SI)(R9*2)
	PREFETCHT0 256(SI)(R10*1)
	PREFETCHT0 256(BX)
	PREFETCHT0 256(BX)(R9*1)
	PREFETCHT0 256(BX)(R9*2)
	PREFETCHT0 256(BX)(R10*1)
	// Rows a..h of the 8×8 block, scaled.
	VMULPS (SI), Y15, Y0
	VMULPS (SI)(R9*1), Y15, Y1
	VMULPS (SI)(R9*2), Y15, Y2
	VMULPS (SI)(R10*1), Y15, Y3
	VMULPS (BX), Y15, Y4
	VMULPS (BX)(R9*1), Y15, Y5
	VMULPS (BX)(R9*2), Y15, Y6
	VMULPS (BX)(R10*1), Y15, Y7
	// t0 = a0 b0 a1 b1 | a4 b4 a5 b5, t1 = a2 b2 a3 b3 | a6 b6 a7 b7, ...
	VUNPCKLPS Y1, Y0, Y8  // t0 (a,b)
	VUNPCKHPS Y1, Y0, Y9  // t1 (a,b)
	VUNPCKLPS Y3, Y2, Y10 // t2 (c,d)
	VUNPCKHPS Y3, Y2, Y11 // t3 (c,d)
	VUNPCKLPS Y5, Y4, Y12 // t4 (e,f)
	VUNPCKHPS Y5, Y4, Y13 // t5 (e,f)
	VUNPCKLPS Y7, Y6, Y14 // t6 (g,h)
	VUNPCKHPS Y7, Y6, Y0  // t7 (g,h)
	// s0 = a0 b0 c0 d0 | a4 b4 c4 d4, s1 = a1 b1 c1 d1 | a5.., ...
	VSHUFPS $0x44, Y10, Y8, Y1 // s0
	VSHUFPS $0xEE, Y10, Y8, Y2 // s1
	VSHUFPS $0x44, Y11, Y9, Y3 // s2
	VSHUFPS $0xEE, Y11, Y9, Y4 // s3
	VSHUFPS $0x44, Y14, Y12, Y5 // s4 = e0 f0 g0 h0 | e4..
	VSHUFPS $0xEE, Y14, Y12, Y6 // s5
	VSHUFPS $0x44, Y0, Y13, Y7  // s6
	VSHUFPS $0xEE, Y0, Y13, Y8  // s7
	// Column q = low (q < 4) or high (q ≥ 4) halves of s_q%4 and s_q%4+4.
	VPERM2F128 $0x20, Y5, Y1, Y9  // column 0
	VPERM2F128 $0x20, Y6, Y2, Y10 // column 1
	VPERM2F128 $0x20, Y7, Y3, Y11 // column 2
	VPERM2F128 $0x20, Y8, Y4, Y12 // column 3
	VPERM2F128 $0x31, Y5, Y1, Y13 // column 4
	VPERM2F128 $0x31, Y6, Y2, Y14 // column 5
	VPERM2F128 $0x31, Y7, Y3, Y0  // column 6
	VPERM2F128 $0x31, Y8, Y4, Y1  // column 7
	LEAQ (DI)(R8*4), DX
	VMOVUPS Y9, (DI)
	VMOVUPS Y10, (DI)(R8*1)
	VMOVUPS Y11, (DI)(R8*2)
	VMOVUPS Y12, (DI)(R11*1)
	VMOVUPS Y13, (DX)
	VMOVUPS Y14, (DX)(R8*1)
	VMOVUPS Y0, (DX)(R8*2)
	VMOVUPS Y1, (DX)(R11*1)
	ADDQ $32, SI
	ADDQ $32, BX
	LEAQ (DX)(R8*4), DI
	DECQ CX
	JNZ t8_loop

t8_done:
	VZEROUPPER
	RET

// func transpose4(dst *float32, ldd int, src *float32, lds int, k4 int, alpha float32)
TEXT ·transpose4(SB), NOSPLIT, $0-44
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R8
	SHLQ $2, R8
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), R9
	SHLQ $2, R9
	MOVQ k4+32(FP), CX
	VBROADCASTSS alpha+40(FP), X15
	LEAQ (R9)(R9*2), R10 // 3·lds
	LEAQ (R8)(R8*2), R11 // 3·ldd
	TESTQ CX, CX
	JZ t4_done

t4_loop:
	PREFETCHT0 256(SI)
	PREFETCHT0 256(SI)(R9*1)
	PREFETCHT0 256(SI)(R9*2)
	PREFETCHT0 256(SI)(R10*1)
	VMULPS (SI), X15, X0
	VMULPS (SI)(R9*1), X15, X1
	VMULPS (SI)(R9*2), X15, X2
	VMULPS (SI)(R10*1), X15, X3
	VUNPCKLPS X1, X0, X4 // a0 b0 a1 b1
	VUNPCKHPS X1, X0, X5 // a2 b2 a3 b3
	VUNPCKLPS X3, X2, X6 // c0 d0 c1 d1
	VUNPCKHPS X3, X2, X7 // c2 d2 c3 d3
	VSHUFPS $0x44, X6, X4, X0 // column 0
	VSHUFPS $0xEE, X6, X4, X1 // column 1
	VSHUFPS $0x44, X7, X5, X2 // column 2
	VSHUFPS $0xEE, X7, X5, X3 // column 3
	VMOVUPS X0, (DI)
	VMOVUPS X1, (DI)(R8*1)
	VMOVUPS X2, (DI)(R8*2)
	VMOVUPS X3, (DI)(R11*1)
	ADDQ $16, SI
	LEAQ (DI)(R8*4), DI
	DECQ CX
	JNZ t4_loop

t4_done:
	RET

// Row copies for packing B stored k×n (see packB): for p < k,
// dst[p·NR : p·NR+NR] = src[p·lds : p·lds+NR] with the lanes whose mask
// element is 0 replaced by zero. Masked-off lanes are not loaded, so the
// columns past the edge of B are never touched; the edge panel's zero
// padding comes for free. Requires AVX.

// func copyRows32(dst *float32, src *float32, lds int, k int, mask *int32)
TEXT ·copyRows32(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ lds+16(FP), R9
	SHLQ $2, R9
	MOVQ k+24(FP), CX
	MOVQ mask+32(FP), AX
	VMOVDQU (AX), Y8
	VMOVDQU 32(AX), Y9
	VMOVDQU 64(AX), Y10
	VMOVDQU 96(AX), Y11
	TESTQ CX, CX
	JZ c32_done

c32_loop:
	VMASKMOVPS (SI), Y8, Y0
	VMASKMOVPS 32(SI), Y9, Y1
	VMASKMOVPS 64(SI), Y10, Y2
	VMASKMOVPS 96(SI), Y11, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ R9, SI
	ADDQ $128, DI
	DECQ CX
	JNZ c32_loop

c32_done:
	VZEROUPPER
	RET

// func copyRows16(dst *float32, src *float32, lds int, k int, mask *int32)
TEXT ·copyRows16(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ lds+16(FP), R9
	SHLQ $2, R9
	MOVQ k+24(FP), CX
	MOVQ mask+32(FP), AX
	VMOVDQU (AX), Y8
	VMOVDQU 32(AX), Y9
	TESTQ CX, CX
	JZ c16_done

c16_loop:
	VMASKMOVPS (SI), Y8, Y0
	VMASKMOVPS 32(SI), Y9, Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ R9, SI
	ADDQ $64, DI
	DECQ CX
	JNZ c16_loop

c16_done:
	VZEROUPPER
	RET
