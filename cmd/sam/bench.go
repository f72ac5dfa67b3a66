package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/nn"
)

func init() {
	register(&command{
		name:    "bench",
		args:    "[-model vit_b|vit_l|vit_h | -checkpoint F] [-device D] [-batch 1,8] [-prompts 1,64] [-iters N] [-json OUT]",
		summary: "time the image encoder per batch size and the decoder per prompt count (random weights unless -checkpoint); prints a table, -json writes the results",
		run:     runBench,
	})
}

// benchResult is one timed configuration.
type benchResult struct {
	Stage      string    `json:"stage"` // encoder | decoder | predict
	Batch      int       `json:"batch,omitempty"`
	Prompts    int       `json:"prompts,omitempty"`
	MedianMS   float64   `json:"median_ms"`
	MinMS      float64   `json:"min_ms"`
	PerSecond  float64   `json:"per_second"` // images/s (encoder) or prompts/s (decoder)
	SamplesMS  []float64 `json:"samples_ms"`
	PeakMemory int64     `json:"peak_memory_bytes,omitempty"`
}

type benchReport struct {
	Date      string        `json:"date"`
	Device    string        `json:"device"`
	Host      string        `json:"host"`
	Model     string        `json:"model"`
	ImgSize   int           `json:"img_size"`
	Precision string        `json:"precision"`
	Threads   int           `json:"threads"`
	Command   string        `json:"command"`
	Results   []benchResult `json:"results"`
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		v, err := strconv.Atoi(p)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%q: want positive integers", s)
		}
		out = append(out, v)
	}
	return out, nil
}

// timeIt runs f warmup+iters times and returns the timed samples in ms.
func timeIt(warmup, iters int, f func() error) ([]float64, error) {
	var samples []float64
	for i := range warmup + iters {
		t := time.Now()
		if err := f(); err != nil {
			return nil, err
		}
		if i >= warmup {
			samples = append(samples, ms(time.Since(t)))
		}
	}
	return samples, nil
}

func summarise(r benchResult, samples []float64, items int) benchResult {
	s := slices.Clone(samples)
	slices.Sort(s)
	r.SamplesMS = samples
	r.MinMS = s[0]
	if n := len(s); n%2 == 1 {
		r.MedianMS = s[n/2]
	} else {
		r.MedianMS = (s[n/2-1] + s[n/2]) / 2
	}
	r.PerSecond = float64(items) / (r.MedianMS / 1000)
	return r
}

func runBench(args []string, stdout, stderr io.Writer) error {
	c := commands["bench"]
	fs := newFlags(c, stderr)
	var mf modelFlags
	mf.register(fs)
	model := fs.String("model", "vit_b", "preset for random weights when no -checkpoint: vit_b, vit_l, vit_h")
	batches := fs.String("batch", "1", "encoder batch sizes, comma-separated")
	prompts := fs.String("prompts", "1,64", "decoder prompt counts, comma-separated (0 skips the decoder)")
	iters := fs.Int("iters", 0, "timed iterations per configuration (default 3 on GPU, 1 on CPU)")
	warmup := fs.Int("warmup", -1, "untimed iterations first (default 1 on GPU, 0 on CPU)")
	noEncoder := fs.Bool("no-encoder", false, "skip the encoder timings")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	if err := parse(fs, args); err != nil {
		return err
	}
	bs, err := parseInts(*batches)
	if err != nil {
		return usageErr(fs, "-batch %v", err)
	}
	ps, err := parseInts(*prompts)
	if err != nil && *prompts != "0" {
		return usageErr(fs, "-prompts %v", err)
	}
	onCPU := strings.HasPrefix(mf.device, "cpu")
	if *iters <= 0 {
		*iters = 3
		if onCPU {
			*iters = 1
		}
	}
	if *warmup < 0 {
		*warmup = 1
		if onCPU {
			*warmup = 0
		}
	}

	var m *sam.Model
	name := mf.checkpoint
	if mf.checkpoint != "" {
		if m, err = mf.load(fs, stderr); err != nil {
			return err
		}
	} else {
		cfg, ok := sam.Preset(*model)
		if !ok {
			return usageErr(fs, "-model %q: want vit_b, vit_l or vit_h", *model)
		}
		b, err := nn.Open(mf.device, nn.Options{Precision: mf.precision, Threads: mf.threads})
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "sam bench: building %s with random weights\n", cfg.Name)
		if m, err = sam.NewRandom(cfg, b, 1); err != nil {
			return err
		}
		name = cfg.Name + " (random weights)"
	}
	defer m.Close()
	cfg := m.Config
	host, _ := os.Hostname()
	rep := benchReport{
		Date: time.Now().UTC().Format(time.RFC3339), Device: m.Backend().Name(), Host: host,
		Model: name, ImgSize: cfg.ImgSize, Precision: mf.precision, Threads: runtime.GOMAXPROCS(0),
		Command: "sam bench " + strings.Join(args, " "),
	}
	ctx := context.Background()
	S := cfg.ImgSize
	rng := rand.New(rand.NewPCG(7, 7))

	if !*noEncoder && m.HasImageEncoder() {
		for _, B := range bs {
			input := make([]float32, B*S*S*3)
			for i := range input {
				input[i] = float32(rng.NormFloat64())
			}
			fmt.Fprintf(stderr, "sam bench: encoder batch %d (%d+%d runs)...\n", B, *warmup, *iters)
			resetPeak(m.Backend())
			samples, err := timeIt(*warmup, *iters, func() error {
				_, err := m.EncodeInput(ctx, input, B, nil)
				return err
			})
			if err != nil {
				return err
			}
			r := summarise(benchResult{Stage: "encoder", Batch: B}, samples, B)
			r.PeakMemory = peakMemory(m.Backend())
			rep.Results = append(rep.Results, r)
		}
	}

	if len(ps) > 0 {
		// A cached embedding for a 1024×1024-like image at the model's size;
		// prompts are points spread over the image, multimask on (as AMG).
		g, C := cfg.GridSize(), cfg.PromptEmbedDim
		feat := make([]float32, C*g*g)
		for i := range feat {
			feat[i] = float32(rng.NormFloat64() * 0.5)
		}
		e := &sam.Embedding{Features: feat, C: C, G: g, ImgSize: S, OriginalH: S, OriginalW: S, InputH: S, InputW: S}
		p := sam.NewPredictor(m)
		if err := p.SetEmbedding(e); err != nil {
			return err
		}
		for _, n := range ps {
			batch := make([]sam.Prompt, n)
			for i := range batch {
				batch[i] = sam.Prompt{Points: []sam.Point{{X: rng.Float64() * float64(S), Y: rng.Float64() * float64(S), Label: 1}}, Multimask: true}
			}
			fmt.Fprintf(stderr, "sam bench: decoder + upsampling, %d prompt(s)...\n", n)
			resetPeak(m.Backend())
			samples, err := timeIt(max(*warmup, 1), max(*iters, 3), func() error {
				_, err := p.PredictBatch(ctx, batch)
				return err
			})
			if err != nil {
				return err
			}
			r := summarise(benchResult{Stage: "decoder", Prompts: n}, samples, n)
			r.PeakMemory = peakMemory(m.Backend())
			rep.Results = append(rep.Results, r)
		}
	}

	printBench(stdout, &rep)
	if *jsonOut != "" {
		return writeJSONFile(*jsonOut, rep)
	}
	return nil
}

func printBench(w io.Writer, rep *benchReport) {
	fmt.Fprintf(w, "model %s, input %d, device %s, precision %s, %s\n", rep.Model, rep.ImgSize, rep.Device, rep.Precision, rep.Date)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stage\tbatch\tprompts\tmedian ms\tmin ms\tper second\tpeak MiB\t")
	for _, r := range rep.Results {
		b, p := "", ""
		if r.Batch > 0 {
			b = strconv.Itoa(r.Batch)
		}
		if r.Prompts > 0 {
			p = strconv.Itoa(r.Prompts)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.1f\t%.2f\t%.0f\t\n", r.Stage, b, p, r.MedianMS, r.MinMS, r.PerSecond, float64(r.PeakMemory)/(1<<20))
	}
	tw.Flush()
}

// memoryReporter is implemented by backends that track their own memory
// (the GPU pool); elsewhere the process's peak resident size is reported.
type memoryReporter interface {
	PeakMemory() int64
	ResetPeakMemory()
}

func resetPeak(b nn.Backend) {
	if mr, ok := b.(memoryReporter); ok {
		mr.ResetPeakMemory()
	}
}

func peakMemory(b nn.Backend) int64 {
	if mr, ok := b.(memoryReporter); ok {
		return mr.PeakMemory()
	}
	return processPeakRSS()
}
