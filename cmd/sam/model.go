package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/nn"
	_ "github.com/samgo/samgo/sam/nn/cpu" // registers the "cpu" device
)

// modelFlags are the flags every model-loading command shares.
type modelFlags struct {
	checkpoint, config, device, precision string
	threads                               int
}

func (m *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.checkpoint, "checkpoint", "", "model weights: official .pth, or .safetensors (official or Hugging Face key names)")
	fs.StringVar(&m.config, "config", "", "config: a JSON file, or a preset vit_b|vit_l|vit_h (default: inferred from the tensor shapes, or config.json beside the checkpoint)")
	fs.StringVar(&m.device, "device", "cpu", "compute device: cpu, cuda or cuda:N")
	fs.StringVar(&m.precision, "precision", "fp32", "fp32 or bf16 (bf16 on CUDA only)")
	fs.IntVar(&m.threads, "threads", 0, "CPU threads (0: all cores)")
}

// resolveConfig returns the config to load with, or nil to infer it. A
// config.json beside the checkpoint is used when -config is not given:
// shapes cannot tell everything (the decoder's head count).
func (m *modelFlags) resolveConfig(stderr io.Writer) (*sam.Config, error) {
	path := m.config
	if path == "" {
		side := filepath.Join(filepath.Dir(m.checkpoint), "config.json")
		if _, err := os.Stat(side); err == nil {
			if c, err := sam.ReadConfig(side); err == nil {
				fmt.Fprintf(stderr, "sam: using %s\n", side)
				return &c, nil
			} else {
				fmt.Fprintf(stderr, "sam: ignoring %s: %v\n", side, err)
			}
		}
		return nil, nil
	}
	if c, ok := sam.Preset(path); ok {
		return &c, nil
	}
	c, err := sam.ReadConfig(path)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// checkpointConfig requires -checkpoint and settles the config to load it
// with (nil: infer from the shapes).
func (m *modelFlags) checkpointConfig(fs *flag.FlagSet, stderr io.Writer) (*sam.Config, error) {
	if m.checkpoint == "" {
		return nil, usageErr(fs, "-checkpoint is required")
	}
	return m.resolveConfig(stderr)
}

// load opens the backend and loads the model.
func (m *modelFlags) load(fs *flag.FlagSet, stderr io.Writer) (*sam.Model, error) {
	cfg, err := m.checkpointConfig(fs, stderr)
	if err != nil {
		return nil, err
	}
	b, err := nn.Open(m.device, nn.Options{Precision: m.precision, Threads: m.threads})
	if err != nil {
		return nil, err
	}
	return sam.Load(m.checkpoint, b, sam.LoadOptions{Config: cfg})
}

// writeJSON prints v indented on w.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeJSONFile writes v indented to path.
func writeJSONFile(path string, v any) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeJSON(f, v); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
