package sam

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/samgo/samgo/sam/checkpoint"
	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/nn/cpu"
)

// fuzzBytes hands out a fuzz input piece by piece; an exhausted input reads
// as zeros.
type fuzzBytes []byte

func (b *fuzzBytes) byte() byte {
	if len(*b) == 0 {
		return 0
	}
	v := (*b)[0]
	*b = (*b)[1:]
	return v
}

func (b *fuzzBytes) bool() bool { return b.byte()&1 == 1 }

// intn is in [0, n).
func (b *fuzzBytes) intn(n int) int { return int(b.byte()) % n }

// size is an image side: mostly 1..300, sometimes one that no embedding
// may claim (every such side times any other is over the pixel limit, so
// no input makes the harness allocate huge masks).
func (b *fuzzBytes) size() int {
	if b.byte() < 16 {
		return []int{0, -1, -300, math.MaxInt32, math.MaxInt, 1 << 40}[b.intn(6)]
	}
	return 1 + int(binary.LittleEndian.Uint16([]byte{b.byte(), b.byte()}))%300
}

// coord is a coordinate: mostly within ±2 image sides, sometimes any
// float64 (NaN, ±Inf, huge, subnormal).
func (b *fuzzBytes) coord(side int) float64 {
	if b.byte() < 32 {
		var raw [8]byte
		for i := range raw {
			raw[i] = b.byte()
		}
		return math.Float64frombits(binary.LittleEndian.Uint64(raw[:]))
	}
	return (float64(b.byte())/128 - 0.5) * 4 * float64(max(side, 1))
}

// value is a float32 logit or feature: mostly small, sometimes NaN or ±Inf.
func (b *fuzzBytes) value() float32 {
	switch v := b.byte(); v {
	case 0:
		return float32(math.NaN())
	case 1:
		return float32(math.Inf(1))
	case 2:
		return float32(math.Inf(-1))
	default:
		return (float32(v) - 128) / 16
	}
}

// FuzzPredict drives the public entry points of a Predictor on the tiny
// model with arbitrary embedding metadata, images and prompts: none may
// panic, and an answer without an error must be whole (the masks the
// prompt asks for, at the image's size, finite IoUs). Run it with
//
//	go test -run '^$' -fuzz '^FuzzPredict$' -fuzztime 60s ./sam
//
// (a plain go test runs the seeds as a test).
func FuzzPredict(f *testing.F) {
	cfg := fixtureConfig(f, "tiny")
	m, err := Load(fixture("tiny", "model.safetensors"), cpu.New(cpu.WithThreads(1)), LoadOptions{Config: &cfg})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.Close() })
	C, g, S, lr := cfg.PromptEmbedDim, cfg.GridSize(), cfg.ImgSize, cfg.LowResSize()
	base := make([]float32, C*g*g)
	for i := range base {
		base[i] = float32(math.Sin(float64(i))) // a fixed, plausible embedding
	}

	f.Add([]byte{})
	f.Add([]byte{200, 40, 0, 30, 0, 1, 0, 2, 1, 3, 100, 100, 150, 90, 1, 0})
	f.Add([]byte{200, 255, 0, 255, 0, 1, 0, 3, 2, 5, 10, 200, 20, 30, 0, 1, 1, 250, 60, 40, 1, 0, 1, 1})
	f.Add([]byte{3, 2, 200, 10, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{200, 9, 1, 7, 1, 0, 1, 1, 4, 9, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f, 1, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := fuzzBytes(data)
		ctx := context.Background()
		p := NewPredictor(m)

		// The image: an embedding with fuzzed metadata, or a fuzzed image.
		if in.byte() < 230 {
			e := &Embedding{Features: base, C: C, G: g, ImgSize: S, OriginalW: in.size(), OriginalH: in.size()}
			if e.OriginalH > 0 && e.OriginalW > 0 && e.OriginalH <= MaxEmbeddingPixels/e.OriginalW {
				e.InputH, e.InputW = PreprocessShape(e.OriginalH, e.OriginalW, S)
			}
			switch in.intn(8) {
			case 0:
				e.InputH += in.intn(3) - 1
			case 1:
				e.Features = e.Features[:in.intn(len(e.Features)+1)]
			case 2:
				e.Features = append([]float32(nil), base...)
				e.Features[in.intn(len(base))] = in.value()
			case 3:
				e.C, e.G, e.ImgSize = in.intn(70)-2, in.intn(20)-2, in.intn(300)-2
			case 4:
				e.Model = string([]byte{in.byte(), in.byte()})
			}
			if err := p.SetEmbedding(e); err != nil && !errors.Is(err, ErrEmbedding) {
				t.Fatalf("SetEmbedding: %v is not ErrEmbedding", err)
			}
		} else {
			img := &imgproc.RGB{W: in.intn(40) - 1, H: in.intn(40) - 1}
			if n := max(img.W*img.H*3, 0); in.bool() {
				img.Pix = make([]uint8, n)
			} else {
				img.Pix = make([]uint8, in.intn(n+1))
			}
			if err := p.SetImage(ctx, img); err != nil && !errors.Is(err, imgproc.ErrEmpty) {
				t.Fatalf("SetImage: %v is not imgproc.ErrEmpty", err)
			}
		}
		e := p.Embedding()
		W, H := 1, 1
		if e != nil {
			W, H = e.OriginalW, e.OriginalH
		}

		// A batch of prompts.
		prompts := make([]Prompt, in.intn(4))
		for i := range prompts {
			pr := &prompts[i]
			for range in.intn(5) {
				pr.Points = append(pr.Points, Point{X: in.coord(W), Y: in.coord(H), Label: in.intn(4) - 1})
			}
			if in.bool() {
				pr.Box = &Box{X0: in.coord(W), Y0: in.coord(H), X1: in.coord(W), Y1: in.coord(H)}
			}
			if in.bool() {
				n := lr * lr
				if in.intn(4) == 0 {
					n = in.intn(2 * n)
				}
				pr.MaskInput = make([]float32, n)
				for range in.intn(3) {
					if n > 0 {
						pr.MaskInput[in.intn(n)] = in.value()
					}
				}
			}
			pr.SingleMask, pr.Multimask, pr.ReturnLogits = in.bool(), in.intn(4) == 0, in.bool()
		}
		res, err := p.PredictBatch(ctx, prompts)
		if err == nil {
			if len(res) != len(prompts) {
				t.Fatalf("%d answers for %d prompts", len(res), len(prompts))
			}
			for i, r := range res {
				want := 3
				if prompts[i].SingleMask {
					want = 1
				}
				if len(r.Masks) != want || len(r.IoU) != want || len(r.LowResLogits) != want {
					t.Fatalf("prompt %d: %d masks, %d IoUs, %d low-res logits, want %d", i, len(r.Masks), len(r.IoU), len(r.LowResLogits), want)
				}
				for j, mk := range r.Masks {
					if mk.W != W || mk.H != H || len(mk.Pix) != W*H || nonFinite(r.IoU) >= 0 {
						t.Fatalf("prompt %d mask %d: %d×%d with %d pixels, IoU %v; image %d×%d", i, j, mk.W, mk.H, len(mk.Pix), r.IoU, W, H)
					}
					_ = mk.Image()
				}
			}
		} else if e != nil && !errors.Is(err, ErrPrompt) {
			t.Fatalf("PredictBatch: %v is not ErrPrompt", err)
		}

		// The generator's calls.
		xy := make([][2]float64, in.intn(4))
		for i := range xy {
			xy[i] = [2]float64{in.coord(W), in.coord(H)}
		}
		if r, err := p.PredictPoints(ctx, xy, in.bool()); err == nil {
			n := r.B * r.M
			if r.B != len(xy) || len(r.Logits) != n*lr*lr || len(r.IoU) != n {
				t.Fatalf("PredictPoints: B %d M %d, %d logits, %d IoUs for %d points", r.B, r.M, len(r.Logits), len(r.IoU), len(xy))
			}
		}
		low := make([]float32, in.intn(3)*lr*lr+in.intn(2))
		for range in.intn(3) {
			if len(low) > 0 {
				low[in.intn(len(low))] = in.value()
			}
		}
		if out, err := p.UpscaleLogits(low, in.intn(4)-1); err == nil && len(out)%max(W*H, 1) != 0 {
			t.Fatalf("UpscaleLogits: %d values for %d×%d planes", len(out), W, H)
		}
	})
}

// FuzzEmbeddingFile parses arbitrary bytes as an embedding file (what
// LoadEmbedding reads): no panic, and what it accepts passes the checks
// that SetEmbedding relies on. Run it with
//
//	go test -run '^$' -fuzz '^FuzzEmbeddingFile$' -fuzztime 60s ./sam
func FuzzEmbeddingFile(f *testing.F) {
	good := &Embedding{Features: make([]float32, 4*2*2), C: 4, G: 2, ImgSize: 32, OriginalH: 30, OriginalW: 40, InputH: 24, InputW: 32, Model: "abc"}
	var buf bytes.Buffer
	if _, err := good.WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(bytes.Replace(buf.Bytes(), []byte(`"30"`), []byte(`"9999999999999"`), 1))
	f.Add(bytes.Replace(buf.Bytes(), []byte(`"original_w":"40"`), []byte(`"original_w":"-4"`), 1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := checkpoint.Parse("fuzz.safetensors", data)
		if err != nil {
			return
		}
		defer cf.Close()
		e, err := embeddingFromFile(cf)
		if err != nil {
			return
		}
		if err := e.check(); err != nil {
			t.Fatalf("accepted an embedding its own check refuses: %v", err)
		}
		if _, err := e.WriteTo(new(bytes.Buffer)); err != nil {
			t.Fatalf("accepted an embedding it cannot write: %v", err)
		}
	})
}
