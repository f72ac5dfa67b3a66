package main

import (
	"fmt"
	"io"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/checkpoint"
)

func init() {
	register(&command{
		name: "info",
		args: "-checkpoint F [-config C] [-verify=false]",
		summary: "print a checkpoint's format, tensors and config as JSON, with where the config came from and what was assumed; " +
			"check an official file name's sha256 prefix (exit 1 on a mismatch)",
		run: runInfo,
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
	mf.fs = fs
	onceVar(fs, &mf.checkpoint, "checkpoint", "", "model weights `FILE` (.pth or .safetensors)")
	onceVar(fs, &mf.config, "config", "", "`CONFIG`: a JSON file or a preset ("+presetNames+") to check the checkpoint against (default: the "+
		sam.ConfigFileName+" beside it, else inferred; config_source and assumed say which)")
	verify := fs.Bool("verify", true, "hash the file when its name ends in _<hex> (official checkpoints) and compare; a mismatch exits 1")
	if err := parse(fs, args); err != nil {
		return err
	}
	lopts, err := mf.loadOptions()
	if err != nil {
		return err
	}
	info, err := sam.InspectWith(mf.checkpoint, lopts)
	if err != nil {
		return err
	}
	reportConfig(stderr, info.ConfigSource, info.Assumed)
	out := struct {
		*sam.CheckpointInfo
		NameCheck *nameCheck `json:"name_check"`
	}{CheckpointInfo: info}
	var mismatch error
	if *verify {
		prefix, ok, sum, err := checkpoint.NamePrefixCheck(mf.checkpoint)
		if err != nil {
			return err
		}
		if prefix != "" {
			out.NameCheck = &nameCheck{Prefix: prefix, SHA256: sum, OK: ok}
			if !ok {
				mismatch = fmt.Errorf("%s: sha256 %s does not start with %s, as the file name says (corrupt or renamed download?)", mf.checkpoint, sum, prefix)
			}
		}
	}
	if err := writeJSON(stdout, out); err != nil {
		return err
	}
	return mismatch
}
