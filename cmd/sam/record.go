package main

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
)

// runRecord says what produced an output, so that a resumed run can tell
// an output it would write itself (skip it) from one made by another
// model, other options or another image (refuse, or redo with
// -overwrite). auto writes one as run.json in each image's folder, last;
// embed appends one line per embedding to manifest.jsonl in its output
// folder.
type runRecord struct {
	Command string `json:"command"` // auto | embed
	// Model is sam.Model.Identity for auto (the whole model shapes the
	// masks) and EncoderIdentity for embed (only the encoder shapes an
	// embedding).
	Model       string         `json:"model"`
	Options     map[string]any `json:"options"` // auto: the generator's; embed: precision
	Image       string         `json:"image"`
	ImageSHA256 string         `json:"image_sha256"`
	Checkpoint  string         `json:"checkpoint"`
	Version     string         `json:"version"`
	Out         string         `json:"out,omitempty"`     // embed: the file, relative to the folder
	Outputs     []string       `json:"outputs,omitempty"` // auto: the files written
	Masks       *int           `json:"masks,omitempty"`   // auto
}

// differs lists how r (found beside an output) differs from cur (this
// run) in what shapes the output; nil when r would be written by cur.
func (r *runRecord) differs(cur *runRecord) []string {
	var d []string
	if r.Command != cur.Command {
		d = append(d, fmt.Sprintf("made by sam %s", r.Command))
	}
	if r.Model != cur.Model {
		d = append(d, fmt.Sprintf("model %s (this run: %s, from %s)", orNone(r.Model), orNone(cur.Model), cur.Checkpoint))
	}
	if r.ImageSHA256 != cur.ImageSHA256 {
		d = append(d, "another image (its sha256 differs)")
	}
	a, b := normalise(r.Options), normalise(cur.Options)
	var keys []string
	for k := range b {
		keys = append(keys, k)
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !reflect.DeepEqual(a[k], b[k]) {
			d = append(d, fmt.Sprintf("%s %v (this run: %v)", k, jsonText(a[k]), jsonText(b[k])))
		}
	}
	return d
}

func orNone(s string) string {
	if s == "" {
		return "(none recorded)"
	}
	return s
}

// normalise passes options through JSON, as they are when read back.
func normalise(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

func jsonText(v any) string {
	if v == nil {
		return "(unset)"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// conflict is an output that this run would not have written.
type conflict struct {
	out, why string
}

// conflictError refuses a resumed run whose output folder holds outputs
// that another model, other options or other images made.
func conflictError(cs []conflict, what string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s already in the output folder came from another run:", len(cs), what)
	for i, c := range cs {
		if i == 5 {
			fmt.Fprintf(&b, "\n  … and %d more", len(cs)-5)
			break
		}
		fmt.Fprintf(&b, "\n  %s: %s", c.out, c.why)
	}
	b.WriteString("\nrun with -overwrite to redo them with this model and these options, or choose another -out")
	return fmt.Errorf("%s", b.String())
}

// readRecord reads a run.json; nil, nil when there is none.
func readRecord(path string) (*runRecord, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r runRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return &r, nil
}
