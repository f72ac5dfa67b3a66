package main

import (
	"io"
	"runtime"
	"runtime/debug"
)

func init() {
	register(&command{
		name:    "version",
		args:    "",
		summary: "print the module version, VCS revision and Go version this binary was built from, as JSON",
		run:     runVersion,
	})
}

// versionInfo is what the Go toolchain recorded in the binary.
type versionInfo struct {
	Module   string `json:"module"`
	Version  string `json:"version"`            // "(devel)" for a build from a checkout
	Revision string `json:"revision,omitempty"` // vcs.revision
	Time     string `json:"time,omitempty"`     // vcs.time
	Modified bool   `json:"modified,omitempty"` // vcs.modified: uncommitted changes
	Go       string `json:"go"`
	Tags     string `json:"tags,omitempty"` // -tags (cuda)
}

func buildVersion() versionInfo {
	v := versionInfo{Module: "github.com/samgo/samgo", Version: "unknown", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Path != "" {
		v.Module = bi.Main.Path
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		case "-tags":
			v.Tags = s.Value
		}
	}
	return v
}

// versionString is buildVersion in one word, for records.
func versionString() string {
	v := buildVersion()
	s := v.Version
	if v.Revision != "" {
		s += "+" + v.Revision[:min(12, len(v.Revision))]
		if v.Modified {
			s += "-dirty"
		}
	}
	return s
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlags(commands["version"], stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	return writeJSON(stdout, buildVersion())
}
