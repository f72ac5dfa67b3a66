package sgemm

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/samgo/samgo/sam/float16"
)

// # bf16 products
//
// GemmBF16 computes C = alpha·bf16(A)·bf16(B) + beta·C with A and C float32
// and B packed once (PackBF16), the products exact and the sums float32:
// the AVX512_BF16 instruction VDPBF16PS multiplies pairs of bf16 values
// and adds both products to a float32 lane. bf16 is float32 with the low
// 16 mantissa bits cut (rounded to nearest even here), so inputs carry a
// relative error of at most 2⁻⁹ and a K-term dot product about 2⁻⁹·√K of
// its terms' size; the accumulation itself is float32 as in GemmSerial.
//
// Layouts (one 32-bit word holds a pair of bf16 values, the lower k index
// in the low half):
//
//	A: m rows of ⌈k/2⌉ pairs, converted from float32 by the product itself
//	   into a scratch buffer (rows padded to the tile height with zeros),
//	   read in place by the kernels (A needs no panel transpose: a row's
//	   pair p is the word the kernel broadcasts);
//	B: PackedBF16, ⌈n/nr⌉ panels of nr columns, each ⌈k/2⌉ rows of nr pairs
//	   (B[2p][j], B[2p+1][j]) — the layout VDPBF16PS multiplies by a
//	   broadcast A pair.
//
// The kernels (kernel_amd64.s, kernBF16*) are the sgemm kernels with
// VDPBF16PS in place of VFMADD231PS: 12×32, 8×32, 4×32 tiles and, for
// n ≤ 16, 12×16, 8×16, 4×16. On a CPU without AVX512_BF16 (HasBF16 false)
// a Go kernel computes the same products (for the tests; the CPU backend
// then stays in float32).

// HasBF16 reports whether this CPU runs the AVX512_BF16 kernels.
func HasBF16() bool { return bf16Fast }

// bf16Kernel computes one mr×nr tile of C:
//
//	C[r][j] = Σ_{p<k} A_r[p]·B[p][j] (pairs, both halves) + beta·C[r][j]
//
// with A_r[p] at a[r·lda + p] and B[p][j] at b[p·ldb + j] (k pairs; lengths
// in 32-bit words). It writes only r < rows, j < cols; C is not read when
// beta == 0.
type bf16KernelFunc func(k int, a *uint32, lda int, b *uint32, ldb int, c *float32, ldc int, beta float32, rows, cols int)

type bf16Kernel struct {
	name   string
	mr, nr int
	fn     bf16KernelFunc
}

// bf16Families[nr] lists the kernels for panels of nr columns, fewest rows
// first; pick takes the first with mr ≥ m, else the last.
type bf16Family []*bf16Kernel

func (f bf16Family) pick(m int) *bf16Kernel {
	for _, k := range f {
		if m <= k.mr {
			return k
		}
	}
	return f[len(f)-1]
}

var (
	bf16Fast     bool                   // the assembly kernels run here
	bf16Families = map[int]bf16Family{} // by nr: 32 and 16
	bf16GoFamily = bf16Family{{name: "go-bf16-4x16", mr: 4, nr: 16, fn: goBF16Kernel}}
)

// Cache blocking, as for the float32 kernels (see kernel_amd64.go): a
// 12×kc A panel (192 pairs: 9 KiB) stays in L1 while the kc×nc block of B
// (192 pairs × 512 columns: 384 KiB) stays in L2.
const (
	bf16KC = 384 // pairs
	bf16NC = 512 // columns
)

// pairBF16 packs two float32 as the bf16 pair (lo, hi).
func pairBF16(lo, hi float32) uint32 {
	return uint32(float16.ToBF16(lo)) | uint32(float16.ToBF16(hi))<<16
}

// PackedBF16 is a k×n matrix op(B) rounded to bf16 in the layout of the
// bf16 kernels (see the package's bf16 notes). It is immutable once packed
// and safe for concurrent use by any number of products.
type PackedBF16 struct {
	K, N int
	nr   int      // panel width: 32, or 16 when n ≤ 16
	kp   int      // ⌈K/2⌉ pairs per panel row
	data []uint32 // panel q at data[q·kp·nr:], pair p of column j at p·nr + j
}

// Bytes is the packed matrix's size.
func (p *PackedBF16) Bytes() int64 { return 4 * int64(len(p.data)) }

// bf16PanelWidth is the panel width for an n-column B.
func bf16PanelWidth(n int) int {
	if n <= 16 {
		return 16
	}
	return 32
}

// PackBF16 rounds op(B) (k×n; with transB B is stored n×k, ldb ≥ k, else
// k×n, ldb ≥ n) to bf16 and packs it for GemmBF16.
func PackBF16(transB bool, k, n int, b []float32, ldb int) *PackedBF16 {
	p := new(PackedBF16)
	p.Pack(transB, k, n, b, ldb)
	return p
}

// PackedBF16Words is the size, in 32-bit words, of a packed k×n matrix
// (the buffer PackBF16Into needs).
func PackedBF16Words(k, n int) int {
	return roundUp(n, bf16PanelWidth(n)) * ((k + 1) / 2)
}

// PackBF16Into is PackBF16 with the packed data in buf (at least
// PackedBF16Words(k, n) words; e.g. memory outside the Go heap).
func PackBF16Into(buf []uint32, transB bool, k, n int, b []float32, ldb int) *PackedBF16 {
	if len(buf) < PackedBF16Words(k, n) {
		panic(fmt.Sprintf("sgemm: PackBF16Into: %d words for a %d×%d matrix that needs %d", len(buf), k, n, PackedBF16Words(k, n)))
	}
	p := &PackedBF16{data: buf}
	p.Pack(transB, k, n, b, ldb)
	return p
}

// Pack is PackBF16 into p, reusing its memory when it is large enough.
func (p *PackedBF16) Pack(transB bool, k, n int, b []float32, ldb int) {
	checkPack("PackBF16", transB, k, n, b, ldb)
	nr := bf16PanelWidth(n)
	kp := (k + 1) / 2
	size := PackedBF16Words(k, n)
	if cap(p.data) < size {
		p.data = make([]uint32, size)
	}
	*p = PackedBF16{K: k, N: n, nr: nr, kp: kp, data: p.data[:size]}
	var row []uint32 // one converted row of a transposed B
	if transB {
		row = make([]uint32, kp)
	}
	for j0 := 0; j0 < n; j0 += nr {
		panel := p.data[j0*kp : (j0+nr)*kp]
		cols := min(nr, n-j0)
		if cols < nr {
			clear(panel) // zero columns past n
		}
		if transB {
			// Column j of op(B) is row j of B: its pairs are consecutive,
			// one converted row, scattered into the panel's column j.
			for j := range cols {
				convertRowsBF16(row[:kp], kp, b[(j0+j)*ldb:], ldb, 1, k, 1)
				for q, w := range row[:kp] {
					panel[q*nr+j] = w
				}
			}
			continue
		}
		for q := range kp {
			r0 := b[2*q*ldb+j0:][:cols]
			dst := panel[q*nr:][:cols]
			if 2*q+1 == k {
				for j, v := range r0 {
					dst[j] = uint32(float16.ToBF16(v))
				}
				continue
			}
			r1 := b[(2*q+1)*ldb+j0:][:cols]
			n := 0
			if bf16Fast {
				n = cols / 16 * 16
				if n > 0 {
					packPairsBF16(&dst[0], &r0[0], &r1[0], n/16, &pairIndex)
				}
			}
			for j := n; j < cols; j++ {
				dst[j] = pairBF16(r0[j], r1[j])
			}
		}
	}
}

// pairIndex is packPairsBF16's VPERMW index: word 2j of the result is
// word j (the first row's column j), word 2j+1 is word 16+j (the second's).
var pairIndex = func() (x [32]uint16) {
	for j := range 16 {
		x[2*j], x[2*j+1] = uint16(j), uint16(16+j)
	}
	return x
}()

// bf16Workspace is one product's converted A.
type bf16Workspace struct{ a []uint32 }

var bf16Pool = sync.Pool{New: func() any { return new(bf16Workspace) }}

// GemmBF16 computes C (m×n) = alpha·A·B + beta·C on all cores, with A
// (m×k, row-major, lda ≥ k) and the product's inputs rounded to bf16 (B
// packed by PackBF16). When beta == 0, C is not read.
func GemmBF16(m int, alpha float32, a []float32, lda int, b *PackedBF16, beta float32, c []float32, ldc int) {
	if packedTrivial(m, b.N, b.K, alpha, a, lda, beta, c, ldc) {
		return
	}
	threads := runtime.GOMAXPROCS(0)
	if threads == 1 || 2*float64(m)*float64(b.N)*float64(b.K) < parallelMinFlops {
		gemmBF16Blocked(m, 0, b.N, alpha, a, lda, b, beta, c, ldc)
		return
	}
	// Stripes along m (each converts its own rows of A) or, for short
	// products, along n (each converts all of A: m·k conversions against
	// m·n·k/stripes multiply-adds).
	if m >= b.N {
		runStripes(threads, m, familyFor(b.nr).pick(m).mr, func(lo, hi int) {
			gemmBF16Blocked(hi-lo, 0, b.N, alpha, a[lo*lda:], lda, b, beta, c[lo*ldc:], ldc)
		})
		return
	}
	runStripes(threads, b.N, b.nr, func(lo, hi int) {
		gemmBF16Blocked(m, lo, hi, alpha, a, lda, b, beta, c, ldc)
	})
}

// GemmBF16Serial is GemmBF16 on the calling goroutine only.
func GemmBF16Serial(m int, alpha float32, a []float32, lda int, b *PackedBF16, beta float32, c []float32, ldc int) {
	if packedTrivial(m, b.N, b.K, alpha, a, lda, beta, c, ldc) {
		return
	}
	gemmBF16Blocked(m, 0, b.N, alpha, a, lda, b, beta, c, ldc)
}

func familyFor(nr int) bf16Family {
	if f, ok := bf16Families[nr]; ok {
		return f
	}
	return bf16GoFamily
}

// gemmBF16Blocked computes columns [j0, j1) of C (m×n) on one goroutine:
// A converted once, then for each kc block of pairs and nc block of
// columns, every mr-row panel of A against every nr-column panel of B.
func gemmBF16Blocked(m, j0, j1 int, alpha float32, a []float32, lda int, b *PackedBF16, beta float32, c []float32, ldc int) {
	kn := familyFor(b.nr).pick(m)
	if kn.nr != b.nr && kn.nr > b.nr {
		panic("sgemm: bf16 kernel wider than its panels")
	}
	mr, kp := kn.mr, b.kp
	ws := bf16Pool.Get().(*bf16Workspace)
	rows := roundUp(m, mr)
	if cap(ws.a) < rows*kp {
		ws.a = make([]uint32, rows*kp)
	}
	ap := ws.a[:rows*kp]
	convertRowsBF16(ap, kp, a, lda, m, b.K, alpha)
	clear(ap[m*kp:]) // padding rows: read by full-height tiles, never stored

	for pc := 0; pc < kp; pc += bf16KC {
		kc := min(bf16KC, kp-pc)
		bet := beta
		if pc > 0 {
			bet = 1
		}
		for jc := j0; jc < j1; jc += bf16NC {
			nc := min(bf16NC, j1-jc)
			for ir := 0; ir < m; ir += mr {
				rs := min(mr, m-ir)
				aPanel := &ap[ir*kp+pc]
				// A Go kernel narrower than the panels (the fallback) walks
				// each panel in kn.nr-column strips.
				for jr := jc; jr < jc+nc; jr += kn.nr {
					cols := min(kn.nr, jc+nc-jr)
					q, off := jr/b.nr, jr%b.nr
					bPanel := &b.data[q*b.nr*kp+pc*b.nr+off]
					kn.fn(kc, aPanel, kp, bPanel, b.nr, &c[(ir)*ldc+jr], ldc, bet, rs, cols)
				}
			}
		}
	}
	bf16Pool.Put(ws)
}

// convertRowsBF16 writes rows [0, m) of alpha·A (k columns) as bf16 pairs,
// kp words a row, into dst (the last pair of an odd k has a zero high half).
func convertRowsBF16(dst []uint32, kp int, a []float32, lda, m, k int, alpha float32) {
	for r := range m {
		row := a[r*lda:][:k]
		d := dst[r*kp:][:kp]
		n := 0
		if bf16Fast {
			n = k / 32 * 32
			if n > 0 {
				cvtRowBF16(&d[0], &row[0], n/32, alpha)
			}
		}
		for q := n / 2; q < k/2; q++ {
			d[q] = pairBF16(alpha*row[2*q], alpha*row[2*q+1])
		}
		if k%2 == 1 {
			d[kp-1] = uint32(float16.ToBF16(alpha * row[k-1]))
		}
	}
}

// goBF16Kernel is the portable bf16 kernel (any tile up to 4×16 words of
// C): products of bf16 values are exact in float32; the high halves' product
// is added first, then the low halves', each sum rounded to float32.
func goBF16Kernel(k int, a *uint32, lda int, b *uint32, ldb int, c *float32, ldc int, beta float32, rows, cols int) {
	as := unsafe.Slice(a, (rows-1)*lda+k)
	bs := unsafe.Slice(b, max(0, (k-1)*ldb+cols))
	cs := unsafe.Slice(c, (rows-1)*ldc+cols)
	for r := range rows {
		for j := range cols {
			var s float32
			for p := range k {
				x, y := as[r*lda+p], bs[p*ldb+j]
				s += float16.FromBF16(uint16(x>>16)) * float16.FromBF16(uint16(y>>16))
				s += float16.FromBF16(uint16(x)) * float16.FromBF16(uint16(y))
			}
			ci := r*ldc + j
			if beta == 0 {
				cs[ci] = s
			} else {
				cs[ci] = s + beta*cs[ci]
			}
		}
	}
}
