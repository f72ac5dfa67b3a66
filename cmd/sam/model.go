package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/nn"
	_ "github.com/samgo/samgo/sam/nn/cpu" // registers the "cpu" device
)

// modelFlags are the flags every model-loading command shares.
type modelFlags struct {
	checkpoint, config, device, precision string
	threads                               int
	fs                                    *flag.FlagSet
}

// presetNames are the -config presets.
const presetNames = "vit_b, vit_l, vit_h, vit_t"

func (m *modelFlags) register(fs *flag.FlagSet) {
	m.fs = fs
	onceVar(fs, &m.checkpoint, "checkpoint", "", "model weights `FILE`: official .pth, or .safetensors (official or Hugging Face key names)")
	onceVar(fs, &m.config, "config", "", "`CONFIG`: a JSON file, or a preset ("+presetNames+"); default: the "+sam.ConfigFileName+
		" beside the checkpoint if there is one, else inferred from the tensor shapes (what no shape shows is assumed, and said on stderr)")
	fs.StringVar(&m.device, "device", "cpu", "compute device: cpu, cuda or cuda:N")
	fs.StringVar(&m.precision, "precision", "fp32", "fp32 or bf16 (CUDA; on the CPU where it has AVX512_BF16, else the CPU computes in fp32 and says so)")
	fs.IntVar(&m.threads, "threads", 0, fmt.Sprintf("CPU threads, 1…%d (default: all %d cores)", maxThreads, runtime.NumCPU()))
}

// check refuses a -threads given as ≤ 0 (not given: all cores).
func (m *modelFlags) check() error {
	if setFlags(m.fs)["threads"] {
		return intRange(m.fs, "threads", m.threads, 1, maxThreads)
	}
	return nil
}

// loadOptions requires -checkpoint and says how sam.Load settles the
// config: a preset, a config file, or (no -config) Load's own order: the
// config.json beside the checkpoint, else the shapes.
func (m *modelFlags) loadOptions() (sam.LoadOptions, error) {
	if m.checkpoint == "" {
		return sam.LoadOptions{}, usageErr(m.fs, "-checkpoint is required")
	}
	if err := m.check(); err != nil {
		return sam.LoadOptions{}, err
	}
	if m.config == "" {
		return sam.LoadOptions{}, nil
	}
	if c, ok := sam.Preset(m.config); ok {
		return sam.LoadOptions{Config: &c}, nil
	}
	st, err := os.Stat(m.config)
	if err != nil || st.IsDir() {
		why := "no such file"
		if err == nil {
			why = "a directory"
		}
		return sam.LoadOptions{}, usageErr(m.fs, "-config %q: not a preset (%s) and not a config file (%s)", m.config, presetNames, why)
	}
	return sam.LoadOptions{ConfigFile: m.config}, nil
}

// reportConfig says on stderr where the config came from when it was not
// given, and which values were assumed.
func reportConfig(stderr io.Writer, source string, assumed []string) {
	switch source {
	case "given", "":
	case "shapes":
		fmt.Fprintf(stderr, "sam: config inferred from the tensor shapes\n")
	default:
		fmt.Fprintf(stderr, "sam: config from %s\n", source)
	}
	if len(assumed) > 0 {
		fmt.Fprintf(stderr, "sam: assumed %s (the official value; no tensor shape shows it): give -config to set it\n", strings.Join(assumed, ", "))
	}
}

// load opens the backend and loads the model.
func (m *modelFlags) load(stderr io.Writer) (*sam.Model, error) {
	opts, err := m.loadOptions()
	if err != nil {
		return nil, err
	}
	return m.loadWith(opts, m.device, stderr)
}

// loadWith loads the model on device with settled options.
func (m *modelFlags) loadWith(opts sam.LoadOptions, device string, stderr io.Writer) (*sam.Model, error) {
	b, err := openBackend(device, m.precision, m.threads, stderr)
	if err != nil {
		return nil, err
	}
	model, err := sam.Load(m.checkpoint, b, opts)
	if err != nil {
		if c, ok := b.(io.Closer); ok {
			c.Close()
		}
		return nil, err
	}
	reportConfig(stderr, model.ConfigSource, model.Assumed)
	return model, nil
}

// openBackend opens device in precision and says on stderr when the
// backend computes in another one (bf16 asked of a CPU without
// AVX512_BF16).
func openBackend(device, precision string, threads int, stderr io.Writer) (nn.Backend, error) {
	b, err := nn.Open(device, nn.Options{Precision: precision, Threads: threads})
	if err != nil {
		return nil, err
	}
	if got := nn.PrecisionOf(b); precision != "" && !strings.EqualFold(got, precision) {
		fmt.Fprintf(stderr, "sam: %s computes in %s: %s was asked for, and this CPU lacks AVX512_BF16\n", b.Name(), got, precision)
	}
	return b, nil
}

// writeJSON prints v indented on w.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeJSONFile writes v indented to path (through a temporary file).
func writeJSONFile(path string, v any) error {
	return writeAtomic(path, func(w io.Writer) error { return writeJSON(w, v) })
}
