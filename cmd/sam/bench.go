package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/amg"
	"github.com/samgo/samgo/sam/nn"
)

func init() {
	register(&command{
		name: "bench",
		args: "[-model vit_b|vit_l|vit_h|vit_t | -checkpoint F] [-device D] [-batch 1,8] [-prompts 1,64] [-iters N] [-json OUT] [-table]",
		summary: "time the image encoder per batch size and the decoder per prompt count (random weights unless -checkpoint); prints the results as JSON on stdout " +
			"and a table on stderr (-table: the table on stdout instead of the JSON); -json also writes the JSON to a file",
		run: runBench,
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

// parseInts parses comma-separated integers in lo…hi.
func parseInts(s string, lo, hi int) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		v, err := strconv.Atoi(p)
		if err != nil || v < lo || v > hi {
			return nil, fmt.Errorf("%q: want integers %d…%d, comma-separated", s, lo, hi)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q: want integers %d…%d, comma-separated", s, lo, hi)
	}
	return out, nil
}

// maxBenchPrompts bounds -prompts (one PredictBatch call): one decoder pass per 64 prompts, each
// holding about 50 MiB (ViT-B) of transformer activations and its masks.
const maxBenchPrompts = sam.MaxPrompts

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
	model := fs.String("model", "vit_b", "preset for random weights when no -checkpoint: vit_b, vit_l, vit_h, vit_t (MobileSAM)")
	batches := fs.String("batch", "1", fmt.Sprintf("encoder batch sizes, comma-separated, each 1…%d", maxEncoderBatch))
	prompts := fs.String("prompts", "1,64", fmt.Sprintf("decoder prompt counts, comma-separated, each 1…%d (0 skips the decoder)", maxBenchPrompts))
	iters := fs.Int("iters", 0, "timed iterations per configuration, 1…1000 (default 3 on GPU, 1 on CPU)")
	warmup := fs.Int("warmup", -1, "untimed iterations first, 0…100 (default 1 on GPU, 0 on CPU)")
	noEncoder := fs.Bool("no-encoder", false, "skip the encoder timings")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	table := fs.Bool("table", false, "print the table on stdout instead of the JSON")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the timed runs to this `FILE` (go tool pprof)")
	memProfile := fs.String("memprofile", "", "write a Go heap profile, taken after the timed runs, to this `FILE` (go tool pprof)")
	var budget budgetFlag
	budget.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := mf.check(); err != nil {
		return err
	}
	bs, err := parseInts(*batches, 1, maxEncoderBatch)
	if err != nil {
		return usageErr(fs, "-batch %v", err)
	}
	var ps []int
	if strings.TrimSpace(*prompts) != "0" {
		if ps, err = parseInts(*prompts, 1, maxBenchPrompts); err != nil {
			return usageErr(fs, "-prompts %v", err)
		}
	}
	set := setFlags(fs)
	if set["iters"] {
		if err := intRange(fs, "iters", *iters, 1, 1000); err != nil {
			return err
		}
	}
	if set["warmup"] {
		if err := intRange(fs, "warmup", *warmup, 0, 100); err != nil {
			return err
		}
	}
	if err := budget.resolve(fs); err != nil {
		return err
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

	// The largest configuration must fit the memory budget before any
	// model is built.
	var cfg0 sam.Config
	if mf.checkpoint != "" {
		lopts, err := mf.loadOptions()
		if err != nil {
			return err
		}
		info, err := sam.InspectWith(mf.checkpoint, lopts)
		if err != nil {
			return err
		}
		cfg0 = info.Config
	} else {
		c, ok := sam.Preset(*model)
		if !ok {
			return usageErr(fs, "-model %q: want %s", *model, presetNames)
		}
		cfg0 = c
	}
	S := int64(cfg0.ImgSize)
	if !*noEncoder {
		B := int64(slices.Max(bs))
		if err := budget.check(cfg0.WeightBytes(4)+B*(S*S*3*4+cfg0.EncoderBytesPerImage(4)), fmt.Sprintf("an encoder batch of %d", B), "use a smaller -batch"); err != nil {
			return err
		}
	}
	if len(ps) > 0 {
		n := int64(slices.Max(ps))
		per := amg.DecoderBytesPerPrompt(&cfg0)
		need := cfg0.WeightBytes(4) + min(n, 64)*per + n*int64(cfg0.NumMultimaskOutputs)*S*S*5
		if err := budget.check(need, fmt.Sprintf("%d decoder prompts", n), "use fewer -prompts"); err != nil {
			return err
		}
	}

	var m *sam.Model
	name := mf.checkpoint
	if mf.checkpoint != "" {
		if m, err = mf.load(stderr); err != nil {
			return err
		}
	} else {
		cfg := cfg0
		b, err := openBackend(mf.device, mf.precision, mf.threads, stderr)
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
		Model: name, ImgSize: cfg.ImgSize, Precision: nn.PrecisionOf(m.Backend()), Threads: runtime.GOMAXPROCS(0),
		Command: "sam bench " + strings.Join(args, " "),
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))

	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if *memProfile != "" {
		defer func() {
			if err := writeHeapProfile(*memProfile); err != nil {
				fmt.Fprintf(stderr, "sam bench: %v\n", err)
			}
		}()
	}

	if !*noEncoder && m.HasImageEncoder() {
		for _, B := range bs {
			S := cfg.ImgSize
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
		S, g, C := cfg.ImgSize, cfg.GridSize(), cfg.PromptEmbedDim
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
				batch[i] = sam.Prompt{Points: []sam.Point{{X: rng.Float64() * float64(S), Y: rng.Float64() * float64(S), Label: 1}}} // multimask, the default
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

	if *jsonOut != "" {
		if err := writeJSONFile(*jsonOut, rep); err != nil {
			return err
		}
	}
	if *table {
		printBench(stdout, &rep)
		return nil
	}
	printBench(stderr, &rep)
	return writeJSON(stdout, rep)
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

// startCPUProfile starts a Go CPU profile into path; stop ends it.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// writeHeapProfile writes the live heap (after a collection) to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
