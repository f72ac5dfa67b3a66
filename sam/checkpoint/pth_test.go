package checkpoint

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"math"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// The fixtures' model.pth is torch.save(sam.state_dict()) from torch 1.13 and
// model.safetensors the same tensors; every tensor must come out identical.
func TestPthMatchesSafetensors(t *testing.T) {
	// Only tiny ships a .pth (the 64 MiB budget of tests/testdata/README.md).
	for _, cfg := range []string{"tiny"} {
		t.Run(cfg, func(t *testing.T) {
			pth, err := Open(filepath.Join(testdata, cfg, "model.pth"))
			require.NoError(t, err)
			defer pth.Close()
			st, err := Open(filepath.Join(testdata, cfg, "model.safetensors"))
			require.NoError(t, err)
			defer st.Close()

			require.Equal(t, FormatPth, pth.Format)
			require.NotZero(t, pth.Len())
			require.Equal(t, st.Names(), pth.Names())
			base := uintptr(unsafe.Pointer(unsafe.SliceData(pth.mapping)))
			for _, name := range st.Names() {
				a, _ := pth.Tensor(name)
				b, _ := st.Tensor(name)
				require.Equal(t, b.DType, a.DType, name)
				require.Equal(t, b.Shape, a.Shape, name)
				require.True(t, bytes.Equal(b.Raw(), a.Raw()), name)
				// Stored, contiguous storages are views into the mapping.
				p := uintptr(unsafe.Pointer(unsafe.SliceData(a.Raw())))
				require.True(t, p >= base && p < base+uintptr(len(pth.mapping)), "%s is not a view", name)
				v, err := a.Float32()
				require.NoError(t, err)
				require.Len(t, v, a.Numel())
			}
		})
	}
}

// pickleWriter emits protocol-2 pickles the way torch.save lays out a
// state_dict, so tests can build small checkpoints (and broken ones).
type pickleWriter struct{ bytes.Buffer }

func newPickle() *pickleWriter {
	p := &pickleWriter{}
	p.WriteString("\x80\x02") // PROTO 2
	return p
}

func (p *pickleWriter) op(ops string) *pickleWriter { p.WriteString(ops); return p }

func (p *pickleWriter) str(s string) *pickleWriter {
	p.WriteByte('X') // BINUNICODE
	binary.Write(&p.Buffer, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
	return p
}

func (p *pickleWriter) int(i int) *pickleWriter {
	p.WriteByte('J') // BININT
	binary.Write(&p.Buffer, binary.LittleEndian, int32(i))
	return p
}

func (p *pickleWriter) global(module, name string) *pickleWriter {
	p.WriteString("c" + module + "\n" + name + "\n")
	return p
}

// short emits SHORT_BINUNICODE s, MEMOIZE (how protocol 4 writes names).
func (p *pickleWriter) short(s string) *pickleWriter {
	p.WriteByte(0x8c)
	p.WriteByte(byte(len(s)))
	p.WriteString(s)
	p.WriteByte(0x94)
	return p
}

func (p *pickleWriter) ints(v []int) *pickleWriter {
	p.op("(")
	for _, x := range v {
		p.int(x)
	}
	return p.op("t")
}

// tensor emits _rebuild_tensor_v2((storage pid), offset, size, stride,
// False, OrderedDict()).
func (p *pickleWriter) tensor(storage, key string, numel, offset int, size, stride []int) *pickleWriter {
	p.global("torch._utils", "_rebuild_tensor_v2").op("(")
	p.op("(").str("storage").global("torch", storage).str(key).str("cpu").int(numel).op("tQ")
	p.int(offset).ints(size).ints(stride).op("\x89")
	p.global("collections", "OrderedDict").op(")R")
	return p.op("tR")
}

type zipEntry struct {
	name    string
	data    []byte
	deflate bool
}

func makeZip(t testing.TB, entries ...zipEntry) []byte {
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, e := range entries {
		m := zip.Store
		if e.deflate {
			m = zip.Deflate
		}
		fw, err := w.CreateHeader(&zip.FileHeader{Name: e.name, Method: m})
		require.NoError(t, err)
		_, err = fw.Write(e.data)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	return buf.Bytes()
}

func f32bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// handMadePth is a small valid checkpoint: a 2×3 F32 weight, its transpose
// sharing the storage (non-contiguous), a slice at a storage offset, an F16
// and a BOOL tensor, a 0-d I64, an empty tensor and an I32 nn.Parameter.
func handMadePth(t testing.TB) []byte {
	p := newPickle().global("collections", "OrderedDict").op(")R").op("(")
	p.str("w").tensor("FloatStorage", "0", 6, 0, []int{2, 3}, []int{3, 1})
	p.str("w_t").tensor("FloatStorage", "0", 6, 0, []int{3, 2}, []int{1, 3})
	p.str("row1").tensor("FloatStorage", "0", 6, 3, []int{3}, []int{1})
	p.str("h").tensor("HalfStorage", "1", 2, 0, []int{2}, []int{1})
	p.str("m").tensor("BoolStorage", "2", 3, 0, []int{3}, []int{1})
	p.str("n").tensor("LongStorage", "3", 1, 0, []int{}, []int{})
	p.str("e").tensor("FloatStorage", "4", 0, 0, []int{0, 5}, []int{5, 1})
	p.str("p").global("torch._utils", "_rebuild_parameter").op("(") // an nn.Parameter
	p.tensor("IntStorage", "5", 2, 0, []int{2}, []int{1}).op("\x88").global("collections", "OrderedDict").op(")RtR")
	p.op("u")
	// state_dict() sets _metadata ({"": {"version": 1}}) on the OrderedDict;
	// torch pickles it as BUILD state.
	p.op("}(").str("_metadata").global("collections", "OrderedDict").op(")R")
	p.op("(").str("").op("}(").str("version").int(1).op("uu")
	p.op("ub.")
	return makeZip(t,
		zipEntry{name: "archive/data.pkl", data: p.Bytes()},
		zipEntry{name: "archive/byteorder", data: []byte("little")},
		zipEntry{name: "archive/data/0", data: f32bytes(1, 2, 3, 4, 5, 6)},
		zipEntry{name: "archive/data/1", data: []byte{0x00, 0x3c, 0x00, 0xc0}, deflate: true}, // 1, -2
		zipEntry{name: "archive/data/2", data: []byte{1, 0, 1}},
		zipEntry{name: "archive/data/3", data: []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, // -2
		zipEntry{name: "archive/data/4", data: nil},
		zipEntry{name: "archive/data/5", data: []byte{7, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}}, // 7, -1
		zipEntry{name: "archive/version", data: []byte("3\n")},
	)
}

func TestPthHandMade(t *testing.T) {
	f, err := Parse("hand.pth", handMadePth(t))
	require.NoError(t, err)
	require.Equal(t, []string{"e", "h", "m", "n", "p", "row1", "w", "w_t"}, f.Names())
	tests := []struct {
		name  string
		dtype DType
		shape []int
		want  []float32
	}{
		{"w", F32, []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}},
		{"w_t", F32, []int{3, 2}, []float32{1, 4, 2, 5, 3, 6}},
		{"row1", F32, []int{3}, []float32{4, 5, 6}},
		{"h", F16, []int{2}, []float32{1, -2}},
		{"m", BOOL, []int{3}, []float32{1, 0, 1}},
		{"n", I64, []int{}, []float32{-2}},
		{"e", F32, []int{0, 5}, []float32{}},
		{"p", I32, []int{2}, []float32{7, -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x, ok := f.Tensor(tc.name)
			require.True(t, ok)
			require.Equal(t, tc.dtype, x.DType)
			require.Equal(t, tc.shape, x.Shape)
			v, err := x.Float32()
			require.NoError(t, err)
			require.Equal(t, tc.want, v)
		})
	}
}

// torch.save(..., pickle_protocol=4) names globals with STACK_GLOBAL, the
// second time through memo lookups; the allow-list must follow both.
func TestPthProtocol4(t *testing.T) {
	p := &pickleWriter{}
	p.op("\x80\x04")
	p.short("collections").short("OrderedDict").op("\x93\x94)R") // memo 0, 1, 2
	p.op("(").short("a")
	p.short("torch._utils").short("_rebuild_tensor_v2").op("\x93(")
	p.op("(").short("storage").short("torch").short("FloatStorage").op("\x93").short("0").short("cpu").int(2).op("tQ")
	p.int(0).ints([]int{2}).ints([]int{1}).op("\x89")
	p.op("h\x00h\x01\x93)R") // OrderedDict() from memoised names
	p.op("tRu.")
	f, err := Parse("p4.pth", makeZip(t,
		zipEntry{name: "archive/data.pkl", data: p.Bytes()},
		zipEntry{name: "archive/data/0", data: f32bytes(3, 4)},
	))
	require.NoError(t, err)
	a, ok := f.Tensor("a")
	require.True(t, ok)
	v, err := a.Float32()
	require.NoError(t, err)
	require.Equal(t, []float32{3, 4}, v)
}

func TestPthWrappers(t *testing.T) {
	for _, wrapper := range []string{"model", "state_dict"} {
		t.Run(wrapper, func(t *testing.T) {
			p := newPickle().op("}(").str("epoch").int(3).str(wrapper).op("}(")
			p.str("a.weight").tensor("FloatStorage", "0", 2, 0, []int{2}, []int{1})
			p.op("uu.")
			f, err := Parse("wrapped.pth", makeZip(t,
				zipEntry{name: "ckpt/data.pkl", data: p.Bytes()},
				zipEntry{name: "ckpt/data/0", data: f32bytes(7, 8)},
			))
			require.NoError(t, err)
			require.Equal(t, []string{"a.weight"}, f.Names())
		})
	}
}

func TestPthErrors(t *testing.T) {
	fixture, err := Open(filepath.Join(testdata, "tiny", "model.pth"))
	require.NoError(t, err)
	defer fixture.Close()
	tiny := fixture.mapping

	// rezip copies the fixture, dropping or replacing entries.
	rezip := func(t *testing.T, drop string, replace map[string][]byte) []byte {
		zr, err := zip.NewReader(bytes.NewReader(tiny), int64(len(tiny)))
		require.NoError(t, err)
		var buf bytes.Buffer
		w := zip.NewWriter(&buf)
		for _, zf := range zr.File {
			if zf.Name == drop {
				continue
			}
			if b, ok := replace[zf.Name]; ok {
				fw, err := w.CreateHeader(&zip.FileHeader{Name: zf.Name, Method: zip.Store})
				require.NoError(t, err)
				fw.Write(b)
				continue
			}
			require.NoError(t, w.Copy(zf))
		}
		for name, b := range replace {
			if _, err := zr.Open(name); err != nil {
				fw, err := w.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
				require.NoError(t, err)
				fw.Write(b)
			}
		}
		require.NoError(t, w.Close())
		return buf.Bytes()
	}
	withPickle := func(t *testing.T, pkl []byte, extra ...zipEntry) []byte {
		return makeZip(t, append([]zipEntry{{name: "archive/data.pkl", data: pkl}}, extra...)...)
	}

	tests := []struct {
		name     string
		data     func(t *testing.T) []byte
		sentinel error
		contains []string
	}{
		{
			name:     "truncated zip",
			data:     func(t *testing.T) []byte { return tiny[:len(tiny)/2] },
			sentinel: ErrTruncated,
			contains: []string{"bad.pth"},
		},
		{
			name:     "zip directory cut short",
			data:     func(t *testing.T) []byte { return tiny[:len(tiny)-30] },
			sentinel: ErrTruncated,
		},
		{
			name: "os.system via GLOBAL",
			data: func(t *testing.T) []byte {
				return withPickle(t, newPickle().global("os", "system").str("echo pwned").op("\x85R.").Bytes())
			},
			sentinel: ErrUnsafeClass,
			contains: []string{"os.system", "archive/data.pkl"},
		},
		{
			name: "builtins.eval via STACK_GLOBAL",
			data: func(t *testing.T) []byte {
				// protocol 4: SHORT_BINUNICODE module, name; STACK_GLOBAL; arg tuple; REDUCE
				pkl := []byte("\x80\x04\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94\x8c\x0b__import__(\x94\x85\x94R\x94.")
				return withPickle(t, pkl)
			},
			sentinel: ErrUnsafeClass,
			contains: []string{"builtins.eval"},
		},
		{
			name: "gopickle's own builtins.list via STACK_GLOBAL is refused too",
			data: func(t *testing.T) []byte {
				return withPickle(t, []byte("\x80\x04\x8c\x08builtins\x94\x8c\x04list\x94\x93\x94)R\x94."))
			},
			sentinel: ErrUnsafeClass,
			contains: []string{"builtins.list"},
		},
		{
			name: "STACK_GLOBAL with computed names",
			data: func(t *testing.T) []byte {
				return withPickle(t, []byte("\x80\x04\x8c\x04list2\x93)R."))
			},
			sentinel: ErrUnsafeClass,
			contains: []string{"not string literals"},
		},
		{
			name: "gopickle's own copy_reg._reconstructor is refused too",
			data: func(t *testing.T) []byte {
				return withPickle(t, newPickle().global("copy_reg", "_reconstructor").op(".").Bytes())
			},
			sentinel: ErrUnsafeClass,
			contains: []string{"copy_reg._reconstructor"},
		},
		{
			name:     "missing data entry",
			data:     func(t *testing.T) []byte { return rezip(t, "model/data/0", nil) },
			sentinel: ErrFormat,
			contains: []string{`tensor "image_encoder.pos_embed"`, "model/data/0 missing"},
		},
		{
			name: "data shorter than the storage",
			data: func(t *testing.T) []byte {
				return rezip(t, "", map[string][]byte{"model/data/1": make([]byte, 100)})
			},
			sentinel: ErrTruncated,
			contains: []string{`tensor "image_encoder.patch_embed.proj.weight"`, "model/data/1 holds 100 bytes"},
		},
		{
			name: "big endian",
			data: func(t *testing.T) []byte {
				return rezip(t, "", map[string][]byte{"model/byteorder": []byte("big")})
			},
			sentinel: ErrFormat,
			contains: []string{"big-endian"},
		},
		{
			name: "unsupported storage type",
			data: func(t *testing.T) []byte {
				p := newPickle().op("}(").str("q").tensor("CharStorage", "0", 2, 0, []int{2}, []int{1}).op("u.")
				return withPickle(t, p.Bytes(), zipEntry{name: "archive/data/0", data: []byte{1, 2}})
			},
			sentinel: ErrDType,
			contains: []string{`tensor "q"`, "torch.CharStorage"},
		},
		{
			name: "view past the end of its storage",
			data: func(t *testing.T) []byte {
				p := newPickle().op("}(").str("v").tensor("FloatStorage", "0", 2, 1, []int{2}, []int{1}).op("u.")
				return withPickle(t, p.Bytes(), zipEntry{name: "archive/data/0", data: f32bytes(1, 2)})
			},
			sentinel: ErrFormat,
			contains: []string{`tensor "v"`, "2-element storage"},
		},
		{
			name: "broadcast view far larger than its storage",
			data: func(t *testing.T) []byte {
				p := newPickle().op("}(").str("b").tensor("FloatStorage", "0", 1, 0, []int{1 << 20, 1 << 10}, []int{0, 0}).op("u.")
				return withPickle(t, p.Bytes(), zipEntry{name: "archive/data/0", data: f32bytes(1)})
			},
			sentinel: ErrFormat,
			contains: []string{`tensor "b"`, "non-contiguous"},
		},
		{
			name:     "not a dict",
			data:     func(t *testing.T) []byte { return withPickle(t, newPickle().op("]").op(".").Bytes()) },
			sentinel: ErrFormat,
			contains: []string{"holds type list"},
		},
		{
			name: "dict entry that is not a tensor",
			data: func(t *testing.T) []byte {
				return withPickle(t, newPickle().op("}(").str("lr").int(1).op("u.").Bytes())
			},
			sentinel: ErrFormat,
			contains: []string{`entry "lr" has type int`},
		},
		{
			name:     "no data.pkl",
			data:     func(t *testing.T) []byte { return makeZip(t, zipEntry{name: "x/version", data: []byte("3")}) },
			sentinel: ErrFormat,
			contains: []string{"data.pkl"},
		},
		{
			name:     "pickle announcing more bytes than it has",
			data:     func(t *testing.T) []byte { return withPickle(t, []byte("\x80\x02X\xff\xff\xff\x7fab.")) },
			sentinel: ErrTruncated,
		},
		// Inputs gopickle v0.3.0 panics on; unpickle turns them into errors.
		{
			name:     "gopickle panic: empty LONG1",
			data:     func(t *testing.T) []byte { return withPickle(t, []byte("\x80\x02\x8a\x00.")) },
			sentinel: ErrFormat,
			contains: []string{"malformed pickle"},
		},
		{
			name:     "gopickle panic: SETITEMS with an odd item count",
			data:     func(t *testing.T) []byte { return withPickle(t, []byte("\x80\x02}(K\x01u.")) },
			sentinel: ErrFormat,
			contains: []string{"malformed pickle"},
		},
		{
			name: "gopickle panic: unhashable OrderedDict key",
			data: func(t *testing.T) []byte {
				return withPickle(t, newPickle().global("collections", "OrderedDict").op(")R(C\x01aK\x01u.").Bytes())
			},
			sentinel: ErrFormat,
			contains: []string{"malformed pickle"},
		},
		{
			name:     "pickle with an unknown opcode",
			data:     func(t *testing.T) []byte { return withPickle(t, []byte("\x80\x02\xff.")) },
			sentinel: ErrFormat,
			contains: []string{"opcode 0xff"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("bad.pth", tc.data(t))
			require.Error(t, err)
			t.Log(err)
			require.Nil(t, f)
			require.ErrorIs(t, err, tc.sentinel, err.Error())
			require.Contains(t, err.Error(), "bad.pth")
			for _, s := range tc.contains {
				require.Contains(t, err.Error(), s)
			}
		})
	}
}
