package checkpoint

import (
	"archive/zip"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParse feeds arbitrary bytes to Parse: it may fail, never panic, and
// what it accepts must be self-consistent. Run it with
//
//	go test ./sam/checkpoint -run '^$' -fuzz FuzzParse -fuzztime 2m
//
// Seeds: the files in testdata/fuzz/FuzzParse (regenerate the hand-made ones
// with -write-fuzz-seeds; crashers the fuzzer finds land there too and stay
// as regression inputs) plus the in-code ones below.
func FuzzParse(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz", data)
		if err != nil {
			require.Nil(t, file)
			return
		}
		require.Equal(t, file.Len(), len(file.Names()))
		for _, name := range file.Names() {
			x, ok := file.Tensor(name)
			require.True(t, ok)
			require.Equal(t, name, x.Name)
			require.Equal(t, x.Numel()*x.DType.Size(), len(x.Raw()), name)
			v, err := x.Float32()
			require.NoError(t, err, name)
			require.Len(t, v, x.Numel())
		}
	})
}

// FuzzPthPickle fuzzes the pickle side alone: the input becomes data.pkl of
// an otherwise valid archive with storages "0".."3" (64 bytes each), so that
// inserting or deleting bytes does not just break the zip directory, as it
// mostly does under FuzzParse.
func FuzzPthPickle(f *testing.F) {
	for _, p := range fuzzPickles(f) {
		f.Add(p)
	}
	if b, err := os.ReadFile(filepath.Join(testdata, "tiny", "model.pth")); err == nil {
		// torch's own pickle (memo opcodes, _metadata BUILD), 36 KB.
		if zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b))); err == nil {
			if rc, err := zr.Open("model/data.pkl"); err == nil {
				pkl, _ := io.ReadAll(rc)
				f.Add(pkl)
			}
		}
	}
	storage := make([]byte, 64)
	for i := range storage {
		storage[i] = byte(i)
	}
	f.Fuzz(func(t *testing.T, pkl []byte) {
		data := makeZip(t,
			zipEntry{name: "archive/data.pkl", data: pkl},
			zipEntry{name: "archive/data/0", data: storage},
			zipEntry{name: "archive/data/1", data: storage},
			zipEntry{name: "archive/data/2", data: storage},
			zipEntry{name: "archive/data/3", data: storage, deflate: true},
		)
		file, err := Parse("fuzz.pth", data)
		if err != nil {
			require.Nil(t, file)
			return
		}
		for _, name := range file.Names() {
			x, _ := file.Tensor(name)
			require.Equal(t, x.Numel()*x.DType.Size(), len(x.Raw()), name)
			_, err := x.Float32()
			require.NoError(t, err, name)
		}
	})
}

// fuzzPickles are small state_dict pickles over storages "0".."3".
func fuzzPickles(t testing.TB) [][]byte {
	p := newPickle().global("collections", "OrderedDict").op(")R").op("(")
	p.str("w").tensor("FloatStorage", "0", 16, 0, []int{4, 4}, []int{4, 1})
	p.str("w_t").tensor("FloatStorage", "0", 16, 0, []int{4, 4}, []int{1, 4})
	p.str("h").tensor("HalfStorage", "1", 32, 2, []int{2, 3}, []int{3, 1})
	p.str("b").tensor("BFloat16Storage", "2", 32, 0, []int{8}, []int{2})
	p.str("l").tensor("LongStorage", "3", 8, 0, []int{8}, []int{1})
	p.op("u.")
	wrapped := newPickle().op("}(").str("state_dict").op("}(").
		str("m").tensor("BoolStorage", "0", 64, 0, []int{8, 8}, []int{8, 1}).op("uu.")
	param := newPickle().op("}(").str("p").global("torch._utils", "_rebuild_parameter").op("(").
		tensor("IntStorage", "1", 16, 0, []int{16}, []int{1}).op("\x88").global("collections", "OrderedDict").op(")Rt").op("R").op("u.")
	return [][]byte{p.Bytes(), wrapped.Bytes(), param.Bytes()}
}

type fuzzSeed struct {
	name string
	data []byte
}

func fuzzSeeds(t testing.TB) []fuzzSeed {
	var st bytes.Buffer
	require.NoError(t, WriteSafetensors(&st, []WriteTensor{
		{Name: "w", DType: F32, Shape: []int{2, 2}, F32: []float32{1, -2, 3.5, 0}},
		{Name: "m", DType: BOOL, Shape: []int{3}, Bytes: []byte{1, 0, 1}},
	}, map[string]string{"format": "pt"}))
	pth := handMadePth(t)
	evil := makeZip(t, zipEntry{name: "archive/data.pkl", data: newPickle().global("os", "system").str("true").op("\x85R.").Bytes()})
	wrapped := newPickle().op("}(").str("model").op("}(").
		str("a").tensor("BFloat16Storage", "0", 2, 0, []int{2}, []int{1}).op("uu.").Bytes()
	return []fuzzSeed{
		{"safetensors", st.Bytes()},
		{"pth", pth},
		{"pth_truncated", pth[:len(pth)*2/3]},
		{"pth_forbidden_global", evil},
		{"pth_wrapped_deflate", makeZip(t,
			zipEntry{name: "w/data.pkl", data: wrapped, deflate: true},
			zipEntry{name: "w/data/0", data: []byte{0x80, 0x3f, 0x00, 0x40}, deflate: true})},
		{"empty", []byte{}},
	}
}

var writeFuzzSeeds = flag.Bool("write-fuzz-seeds", false, "rewrite the hand-made seeds in testdata/fuzz/FuzzParse")

func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeFuzzSeeds {
		t.Skip("run with -write-fuzz-seeds to regenerate the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, s := range fuzzSeeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s.data)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "seed_"+s.name), []byte(body), 0o644))
	}
}
