package main

import (
	"io"
	"os"
	"runtime"

	"github.com/samgo/samgo/sam/nn"
)

func init() {
	register(&command{
		name:    "devices",
		args:    "",
		summary: "list compute devices as JSON: each CUDA GPU (name, compute capability, memory total/free, utilisation, driver/CUDA versions) and the CPU",
		run:     runDevices,
	})
}

func runDevices(args []string, stdout, stderr io.Writer) error {
	fs := newFlags(commands["devices"], stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	gpus, err := nn.Devices("cuda")
	out := map[string]any{
		"cpu":  map[string]any{"device": "cpu", "cores": runtime.NumCPU(), "threads": runtime.GOMAXPROCS(0), "arch": runtime.GOARCH},
		"cuda": gpus,
	}
	if gpus == nil {
		out["cuda"] = []nn.DeviceInfo{}
	}
	if v, ok := os.LookupEnv("CUDA_VISIBLE_DEVICES"); ok {
		out["cuda_visible_devices"] = v
	}
	if err != nil {
		out["cuda_error"] = err.Error()
	} else if _, e := nn.Open("cuda", nn.Options{}); e != nil && len(gpus) == 0 {
		out["cuda_note"] = e.Error()
	}
	return writeJSON(stdout, out)
}
