package imgproc

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/image/bmp"
)

func pngBytes(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	return b.Bytes()
}

func TestLoadTruncatedPNGNamesFile(t *testing.T) {
	data := pngBytes(t, randomRGB(newRand(), 40, 30).ToImage())
	dir := t.TempDir()
	for _, n := range []int{len(data) / 2, 40, 8, 3, 0} {
		path := filepath.Join(dir, "cut.png")
		require.NoError(t, os.WriteFile(path, data[:n], 0o644))
		_, err := Load(path)
		require.Error(t, err, "cut at %d", n)
		require.Contains(t, err.Error(), path)
		require.ErrorIs(t, err, ErrFormat)
	}
	_, err := Load(filepath.Join(dir, "missing.png"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "missing.png")
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestDecodeNotAnImage(t *testing.T) {
	_, err := Decode(strings.NewReader("definitely not an image"))
	require.ErrorIs(t, err, ErrFormat)
	require.ErrorIs(t, err, image.ErrFormat)
	_, err = Decode(bytes.NewReader(nil))
	require.ErrorIs(t, err, ErrFormat)
}

// pngHeaderOnly is a PNG signature and IHDR declaring w×h 8-bit RGB, and
// nothing else: a decoder would allocate w·h·4 bytes before noticing.
func pngHeaderOnly(w, h uint32) []byte {
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	b.WriteString("IHDR")
	b.Write(ihdr)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte("IHDR"), ihdr...)))
	return b.Bytes()
}

func TestDecodeRefusesBombs(t *testing.T) {
	_, err := Decode(bytes.NewReader(pngHeaderOnly(100000, 100000)))
	require.ErrorIs(t, err, ErrTooLarge)
	require.Contains(t, err.Error(), "100000x100000")
	_, err = Decode(bytes.NewReader(pngHeaderOnly(16385, 16384)))
	require.ErrorIs(t, err, ErrTooLarge)

	// DecodeLimit with a small bound; at the bound it decodes.
	data := pngBytes(t, randomRGB(newRand(), 20, 10).ToImage())
	_, err = DecodeLimit(bytes.NewReader(data), 199)
	require.ErrorIs(t, err, ErrTooLarge)
	m, err := DecodeLimit(bytes.NewReader(data), 200)
	require.NoError(t, err)
	require.Equal(t, [2]int{20, 10}, [2]int{m.W, m.H})
}

func TestDecodeEmptyImage(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, bmp.Encode(&b, image.NewRGBA(image.Rect(0, 0, 0, 5))))
	_, err := Decode(&b)
	require.ErrorIs(t, err, ErrEmpty)
}

func TestDecodeRoundTripPNG(t *testing.T) {
	src := randomRGB(newRand(), 17, 9)
	var b bytes.Buffer
	require.NoError(t, WritePNG(&b, src))
	got, err := Decode(&b)
	require.NoError(t, err)
	require.Equal(t, src, got)

	path := filepath.Join(t.TempDir(), "x.png")
	require.NoError(t, SavePNG(path, src))
	got, err = Load(path)
	require.NoError(t, err)
	require.Equal(t, src, got)
}

// TestDecodeSeedsValid keeps the fuzz seeds honest: each is a small valid
// image, and every format is there.
func TestDecodeSeedsValid(t *testing.T) {
	formats := map[string]bool{}
	for name, data := range corpusSeeds(t) {
		_, format, err := image.DecodeConfig(bytes.NewReader(data))
		require.NoError(t, err, name)
		formats[format] = true
		m, err := Decode(bytes.NewReader(data))
		require.NoError(t, err, name)
		require.Len(t, m.Pix, m.W*m.H*3)
		require.Less(t, len(data), 4096, name)
	}
	for _, f := range []string{"png", "jpeg", "gif", "bmp", "tiff", "webp"} {
		require.True(t, formats[f], "no %s seed", f)
	}
}

// TestDecodeTIFFOffsetBomb: a 166-byte TIFF whose strip offset is near 4 GiB
// made x/image/tiff, reached through image.Decode (a reader without
// ReadAt), allocate about 1 GiB before failing. Found by FuzzDecode.
func TestDecodeTIFFOffsetBomb(t *testing.T) {
	data, err := readCorpusFile(filepath.Join("testdata", "fuzz", "FuzzDecode", "tiff_offset_bomb"))
	require.NoError(t, err)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = Decode(bytes.NewReader(data))
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, ErrFormat)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20))
}
