//go:build !purego

#include "textflag.h"

// func addRelPosAVX512(row *float32, ph *float32, rw *float32, QH, QW int) float32
//
// addRelPos's loops (attention.go) on 16 lanes: for kh < QH,
// row[kh·QW + kw] = (row[kh·QW + kw] + ph[QH−1−kh]) + rw[kw] (the order
// of the Go code and of segment_anything), returning the row's maximum.
// A ragged QW (14 for SAM's windows) ends each kh segment with a masked
// chunk.
TEXT ·addRelPosAVX512(SB), NOSPLIT, $0-44
	MOVQ row+0(FP), DI
	MOVQ ph+8(FP), SI
	MOVQ rw+16(FP), R8
	MOVQ QH+24(FP), DX
	MOVQ QW+32(FP), R9
	LEAQ -4(SI)(DX*4), SI // &ph[QH−1]
	MOVQ R9, R10
	SHRQ $4, R10          // full chunks per segment
	MOVQ R9, CX
	ANDQ $15, CX
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1          // the ragged chunk's lanes
	MOVL $0xff800000, AX  // −Inf
	VPBROADCASTD AX, Z1   // running maximum
	TESTQ DX, DX
	JZ   done

rows:
	VBROADCASTSS (SI), Z2 // rel_h for this kh
	MOVQ R8, BX           // rw
	MOVQ R10, R11
	TESTQ R11, R11
	JZ   ragged

chunks:
	VADDPS  (DI), Z2, Z0
	VADDPS  (BX), Z0, Z0
	VMOVUPS Z0, (DI)
	VMAXPS  Z0, Z1, Z1
	ADDQ    $64, DI
	ADDQ    $64, BX
	DECQ    R11
	JNZ     chunks

ragged:
	TESTQ     CX, CX
	JZ        next
	VMOVUPS.Z (DI), K1, Z0
	VMOVUPS.Z (BX), K1, Z3
	VADDPS    Z0, Z2, Z0
	VADDPS    Z3, Z0, Z0
	VMOVUPS   Z0, K1, (DI)
	VMAXPS    Z0, Z1, K1, Z1
	LEAQ      (DI)(CX*4), DI

next:
	SUBQ $4, SI
	DECQ DX
	JNZ  rows

done:
	VEXTRACTF32X8 $1, Z1, Y2
	VMAXPS        Y2, Y1, Y1
	VEXTRACTF128  $1, Y1, X2
	VMAXPS        X2, X1, X1
	VPERMILPS     $0x4e, X1, X2
	VMAXPS        X2, X1, X1
	VPERMILPS     $0xb1, X1, X2
	VMAXPS        X2, X1, X1
	MOVSS         X1, ret+40(FP)
	VZEROUPPER
	RET
