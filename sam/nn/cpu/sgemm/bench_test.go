package sgemm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchShapes are the products of SAM's ViT-B image encoder at 1024×1024
// (64×64 = 4096 tokens, width 768, 12 heads of 64, 14×14 windows) and of
// its mask decoder (a handful of tokens, width 256).
var benchShapes = []struct {
	name           string
	transA, transB bool
	m, n, k        int
}{
	// Encoder.
	{"qkv_NT_4096x2304x768", false, true, 4096, 2304, 768},
	{"mlp1_NT_4096x3072x768", false, true, 4096, 3072, 768},
	{"mlp2_NT_4096x768x3072", false, true, 4096, 768, 3072},
	{"attnPV_NN_4096x64x4096", false, false, 4096, 64, 4096},
	{"attnQK_NT_4096x4096x64", false, true, 4096, 4096, 64},
	{"winQK_NT_196x196x64", false, true, 196, 196, 64},
	// The same products cut into the 256-row blocks that the CPU backend
	// runs on one goroutine each (sam/nn/cpu: gemmRows, Attention).
	{"qkvBlock_NT_256x2304x768", false, true, 256, 2304, 768},
	{"mlp2Block_NT_256x768x3072", false, true, 256, 768, 3072},
	{"attnQKBlock_NT_256x4096x64", false, true, 256, 4096, 64},
	{"attnPVBlock_NN_256x64x4096", false, false, 256, 64, 4096},
	// Decoder.
	{"decLinear_NT_7x256x256", false, true, 7, 256, 256},
	{"decMLP_NT_7x2048x256", false, true, 7, 2048, 256},
	{"decImgToTok_NT_4096x7x16", false, true, 4096, 7, 16},
	{"decTokToImg_NN_7x16x4096", false, false, 7, 16, 4096},
}

// BenchmarkGemm reports GFLOP/s (2·m·n·k per product) for GemmSerial and
// the parallel Gemm on each shape.
func BenchmarkGemm(b *testing.B) {
	for _, s := range benchShapes {
		ar, ac := s.m, s.k
		if s.transA {
			ar, ac = s.k, s.m
		}
		br, bc := s.k, s.n
		if s.transB {
			br, bc = s.n, s.k
		}
		flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		for _, v := range []struct {
			name string
			f    gemmFunc
		}{{"serial", GemmSerial}, {"parallel", Gemm}} {
			b.Run(fmt.Sprintf("%s/%s", s.name, v.name), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 1))
				a := randSlice(rng, ar*ac)
				bm := randSlice(rng, br*bc)
				c := make([]float32, s.m*s.n)
				for b.Loop() {
					v.f(s.transA, s.transB, s.m, s.n, s.k, 1, a, ac, bm, bc, 0, c, s.n)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func randSlice(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = rng.Float32()*2 - 1
	}
	return x
}

// BenchmarkGemmBF16 is BenchmarkGemm for GemmBF16 (B packed beforehand, as
// weights are at load; A converted by each product): GFLOP/s on the same
// shapes, serial and parallel.
func BenchmarkGemmBF16(b *testing.B) {
	for _, s := range benchShapes {
		if s.transA {
			continue
		}
		br, bc := s.k, s.n
		if s.transB {
			br, bc = s.n, s.k
		}
		flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		for _, v := range []struct {
			name string
			f    func(m int, alpha float32, a []float32, lda int, b *PackedBF16, beta float32, c []float32, ldc int)
		}{{"serial", GemmBF16Serial}, {"parallel", GemmBF16}} {
			b.Run(fmt.Sprintf("%s/%s", s.name, v.name), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 1))
				a := randSlice(rng, s.m*s.k)
				packed := PackBF16(s.transB, s.k, s.n, randSlice(rng, br*bc), bc)
				c := make([]float32, s.m*s.n)
				for b.Loop() {
					v.f(s.m, 1, a, s.k, packed, 0, c, s.n)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
