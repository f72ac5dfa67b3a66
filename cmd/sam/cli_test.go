package main

import (
	"bufio"
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Item 2: sam.Load settles the config (the config.json beside the
// checkpoint, else the shapes); the CLI says what was assumed, and info
// shows it.
func TestConfigAssumed(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(tinyCk)
	require.NoError(t, err)
	ck := filepath.Join(dir, "model.safetensors") // no config.json beside it
	require.NoError(t, os.WriteFile(ck, data, 0o644))

	code, stdout, stderr := samCLI("info", "-checkpoint", ck)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "assumed decoder_num_heads=8")
	var info struct {
		ConfigSource string   `json:"config_source"`
		Assumed      []string `json:"assumed"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &info))
	require.Equal(t, "shapes", info.ConfigSource)
	require.Equal(t, []string{"decoder_num_heads=8"}, info.Assumed)

	code, _, stderr = samCLI("predict", "-checkpoint", ck, "-image", tinyImg, "-point", "80,60", "-out", filepath.Join(dir, "p"))
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "assumed decoder_num_heads=8")

	// Beside the checkpoint: taken, said, nothing assumed.
	code, stdout, stderr = samCLI("info", "-checkpoint", tinyCk)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "config from "+filepath.Join(testdata, "tiny", "config.json"))
	require.NotContains(t, stderr, "assumed")
	info.Assumed = nil
	require.NoError(t, json.Unmarshal([]byte(stdout), &info))
	require.Empty(t, info.Assumed)
	// A preset is used as given.
	code, _, stderr = samCLI("info", "-checkpoint", tinyCk, "-config", "vit_b")
	require.Equal(t, 1, code, "the tiny model is not ViT-B: %s", stderr)
}

// Item 18: one image on several devices is not an error; sam version;
// bench prints JSON on stdout and the table on stderr (or -table).
func TestFlagHygiene(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := samCLI("embed", "-checkpoint", tinyCk, "-image", tinyImg, "-devices", "cpu:2", "-out", filepath.Join(dir, "e.safetensors"))
	require.Equal(t, 0, code, stderr)
	require.FileExists(t, filepath.Join(dir, "e.safetensors"))

	code, stdout, stderr := samCLI("version")
	require.Equal(t, 0, code, stderr)
	var v versionInfo
	require.NoError(t, json.Unmarshal([]byte(stdout), &v))
	require.Equal(t, "github.com/samgo/samgo", v.Module)
	require.NotEmpty(t, v.Version)
	require.True(t, strings.HasPrefix(v.Go, "go"))

	code, stdout, stderr = samCLI("bench", "-checkpoint", tinyCk, "-batch", "1", "-prompts", "1")
	require.Equal(t, 0, code, stderr)
	var rep benchReport
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep))
	require.Len(t, rep.Results, 2)
	require.Contains(t, stderr, "median ms")
	code, stdout, _ = samCLI("bench", "-checkpoint", tinyCk, "-batch", "1", "-prompts", "0", "-table")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "median ms")
	require.False(t, json.Valid([]byte(stdout)))
}

// Item 20: the package doc names every command.
func TestPackageDocListsCommands(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	require.NoError(t, err)
	doc := f.Doc.Text()
	for name := range commands {
		require.Regexp(t, `(?m)^\s*sam `+name+`\b`, doc, "the package doc should list %q", name)
	}
}

// Item 20: the demo README's file table names only files that are there,
// and every file there.
func TestDemoReadmeFiles(t *testing.T) {
	dir := filepath.Join(testdata, "demo")
	f, err := os.Open(filepath.Join(dir, "README.md"))
	require.NoError(t, err)
	defer f.Close()
	row := regexp.MustCompile("^\\| `([^`]+)` \\| ([0-9]+) \\|")
	listed := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := row.FindStringSubmatch(sc.Text()); m != nil {
			st, err := os.Stat(filepath.Join(dir, m[1]))
			require.NoError(t, err, "README lists %s", m[1])
			require.Equal(t, m[2], jsonText(st.Size()), "size of %s", m[1])
			listed[m[1]] = true
		}
	}
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range ents {
		if e.Name() != "README.md" {
			require.True(t, listed[e.Name()], "README does not list %s", e.Name())
		}
	}
}
