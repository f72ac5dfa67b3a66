package imgproc

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fuzzMaxPixels keeps each fuzz input cheap: a header may claim any size,
// and the decoders allocate the whole image before reading pixel data.
const fuzzMaxPixels = 1 << 20

// fuzzSlow is far above what any input up to fuzzMaxPixels needs (tens of
// milliseconds), even on a loaded machine. It applies while fuzzing only:
// a plain go test runs the seed corpus as an ordinary test, where the race
// detector and a busy machine may well take longer, and a wall-clock limit
// would fail it for the machine's sake, not the decoder's.
const fuzzSlow = 3 * time.Second

// fuzzing reports a go test -fuzz run: -test.fuzz is set in the
// coordinator and in its workers (which get the same flags), and empty
// when go test only runs the seed corpus.
func fuzzing() bool {
	f := flag.Lookup("test.fuzz")
	return f != nil && f.Value.String() != ""
}

// FuzzDecode feeds arbitrary bytes to Decode: it must never panic, either
// fail with one of the package's sentinel errors or return an image whose
// Pix holds exactly W·H·3 bytes, and the result must survive the rest of
// the pipeline; while fuzzing, within fuzzSlow. Seeds:
// testdata/fuzz/FuzzDecode (one small file per format and colour model).
func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add(pngHeaderOnly(1<<15, 1<<15))
	timed := fuzzing()
	f.Fuzz(func(t *testing.T, data []byte) {
		if timed {
			start := time.Now()
			defer func() {
				// A bounded image must decode in bounded time; report slow
				// inputs as failures so that the fuzzer keeps them.
				if d := time.Since(start); d > fuzzSlow {
					t.Fatalf("%d-byte input took %v", len(data), d)
				}
			}()
		}
		m, err := DecodeLimit(bytes.NewReader(data), fuzzMaxPixels)
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrEmpty) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			if m != nil {
				t.Fatalf("image returned with error %v", err)
			}
			return
		}
		if m.W < 1 || m.H < 1 || m.W*m.H > fuzzMaxPixels || len(m.Pix) != m.W*m.H*3 {
			t.Fatalf("bad image: %dx%d with %d bytes", m.W, m.H, len(m.Pix))
		}
		r := ResizeLongestSide(m, 64)
		if _, err := Normalize(r, 64, PixelMean, PixelStd); err != nil {
			t.Fatalf("normalize after resize: %v", err)
		}
	})
}

// readCorpusFile decodes a `go test fuzz v1` file holding one []byte.
func readCorpusFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
		return nil, errors.New("not a one-[]byte fuzz corpus file")
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	return []byte(s), err
}

func corpusSeeds(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecode", "seed_*"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no seeds: %v", err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		data, err := readCorpusFile(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[filepath.Base(p)] = data
	}
	return out
}
