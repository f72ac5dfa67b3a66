package main

import (
	"fmt"
	"io"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/checkpoint"
)

func init() {
	register(&command{
		name:    "info",
		args:    "-checkpoint F [-config C] [-verify=false]",
		summary: "print a checkpoint's format, tensors and (inferred) config as JSON; check an official file name's sha256 prefix",
		run:     runInfo,
	})
}

// nameCheck reports the sha256 check of official file names
// (sam_vit_b_01ec64.pth: the suffix is the start of the file's sha256).
type nameCheck struct {
	Prefix string `json:"prefix"`
	SHA256 string `json:"sha256"`
	OK     bool   `json:"ok"`
}

func runInfo(args []string, stdout, stderr io.Writer) error {
	c := commands["info"]
	fs := newFlags(c, stderr)
	var mf modelFlags
	fs.StringVar(&mf.checkpoint, "checkpoint", "", "model weights (.pth or .safetensors)")
	fs.StringVar(&mf.config, "config", "", "config JSON or preset to check the checkpoint against (default: inferred, or config.json beside it)")
	verify := fs.Bool("verify", true, "hash the file when its name ends in _<hex> (official checkpoints) and compare")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := mf.checkpointConfig(fs, stderr)
	if err != nil {
		return err
	}
	info, err := sam.Inspect(mf.checkpoint, cfg)
	if err != nil {
		return err
	}
	out := struct {
		*sam.CheckpointInfo
		NameCheck *nameCheck `json:"name_check"`
	}{CheckpointInfo: info}
	if *verify {
		prefix, ok, sum, err := checkpoint.NamePrefixCheck(mf.checkpoint)
		if err != nil {
			return err
		}
		if prefix != "" {
			out.NameCheck = &nameCheck{Prefix: prefix, SHA256: sum, OK: ok}
			if !ok {
				fmt.Fprintf(stderr, "sam info: warning: %s: sha256 %s does not start with %s (corrupt or renamed download?)\n", mf.checkpoint, sum, prefix)
			}
		}
	}
	return writeJSON(stdout, out)
}
