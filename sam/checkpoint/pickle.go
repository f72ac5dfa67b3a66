package checkpoint

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// The pickle side of a PyTorch checkpoint. data.pkl is an arbitrary Python
// pickle, i.e. a program for a stack machine that can import and call any
// Python global. We never run Python, but the unpickler still has to be kept
// on a short leash:
//
//   - findClass resolves only the handful of globals a state_dict pickle uses
//     (all to inert Go values, see below); anything else is ErrUnsafeClass.
//   - scanPickle walks the opcodes before gopickle sees them and rejects
//     unknown opcodes, lengths that run past the end of data.pkl and absurd
//     MARK nesting. gopickle allocates the length an opcode announces before
//     reading it, and indexes its dispatch table with the raw opcode byte, so
//     without this a 20-byte file could ask for 4 GB or crash it.
//   - unpickle turns a panic inside gopickle (it trusts its input in a few
//     places: odd SETITEMS counts, unhashable dict keys, empty LONG1) into
//     ErrFormat.

// maxPickle bounds data.pkl. The pickle of a state_dict is about 150 bytes
// per tensor (ViT-H: ~600 tensors, well under 1 MB); gopickle builds Go
// values several times the pickle's size, so a bound keeps a hostile file
// from turning into gigabytes of heap.
const maxPickle = 32 << 20

// maxMarkDepth bounds nested MARKs; a state_dict needs 3 (dict items, the
// _rebuild_tensor_v2 argument tuple, the size/stride tuples inside it).
const maxMarkDepth = 64

// Pickle opcodes (CPython Lib/pickletools.py) grouped by the shape of their
// inline argument.
type argKind uint8

const (
	argNone   argKind = iota + 1
	argFixed          // fixed-width argument, width in opInfo.n
	argLine           // one newline-terminated line
	argLines2         // two newline-terminated lines (GLOBAL, INST)
	argLen1           // uint8 length, then that many bytes
	argLen4           // uint32 little-endian length, then that many bytes
	argLen8           // uint64 little-endian length, then that many bytes
	argFrame          // uint64 frame length (the frame's opcodes follow inline)
)

type opInfo struct {
	kind argKind
	n    int  // width for argFixed
	mark int8 // +1 pushes a MARK, -1 pops one
}

var opTable = func() [256]opInfo {
	var t [256]opInfo
	none := func(ops string, mark int8) {
		for i := 0; i < len(ops); i++ {
			t[ops[i]] = opInfo{kind: argNone, mark: mark}
		}
	}
	fixed := func(ops string, n int) {
		for i := 0; i < len(ops); i++ {
			t[ops[i]] = opInfo{kind: argFixed, n: n}
		}
	}
	set := func(ops string, k argKind, mark int8) {
		for i := 0; i < len(ops); i++ {
			t[ops[i]] = opInfo{kind: k, mark: mark}
		}
	}
	// MARK
	none("(", +1)
	// STOP POP DUP NONE REDUCE APPEND BUILD EMPTY_DICT EMPTY_LIST SETITEM
	// EMPTY_TUPLE BINPERSID NEWOBJ TUPLE1-3 NEWTRUE NEWFALSE EMPTY_SET
	// NEWOBJ_EX STACK_GLOBAL MEMOIZE NEXT_BUFFER READONLY_BUFFER
	none(".02NRab}]s)Q\x81\x85\x86\x87\x88\x89\x8f\x92\x93\x94\x97\x98", 0)
	// POP_MARK DICT APPENDS LIST OBJ TUPLE SETITEMS ADDITEMS FROZENSET
	none("1delotu\x90\x91", -1)
	// PROTO BININT1 BINGET BINPUT EXT1
	fixed("\x80Khq\x82", 1)
	// BININT2 EXT2
	fixed("M\x83", 2)
	// BININT LONG_BINGET LONG_BINPUT EXT4
	fixed("Jjr\x84", 4)
	// BINFLOAT
	fixed("G", 8)
	// INT LONG FLOAT STRING UNICODE GET PUT PERSID
	set("ILFSVgpP", argLine, 0)
	// GLOBAL
	set("c", argLines2, 0)
	// INST pops a MARK
	set("i", argLines2, -1)
	// SHORT_BINSTRING SHORT_BINBYTES SHORT_BINUNICODE LONG1
	set("UC\x8c\x8a", argLen1, 0)
	// BINSTRING BINBYTES BINUNICODE LONG4
	set("TBX\x8b", argLen4, 0)
	// BINUNICODE8 BINBYTES8 BYTEARRAY8
	set("\x8d\x8e\x96", argLen8, 0)
	// FRAME
	set("\x95", argFrame, 0)
	return t
}()

// scanPickle checks that every opcode up to STOP is known and that its
// argument lies inside p, without building anything.
//
// It also checks every global against the allow-list, because gopickle
// resolves some names itself before it asks findClass (v0.3.0:
// collections.OrderedDict, builtins.list, builtins.dict, __builtin__.object,
// copy_reg._reconstructor, array._array_reconstructor). GLOBAL and INST
// carry the names inline. STACK_GLOBAL takes them from the stack, so the
// scan follows which stack items are string literals (pushed directly or
// fetched from the memo, the two ways CPython's pickler writes them); a
// STACK_GLOBAL whose names are computed any other way is refused.
func scanPickle(p []byte) error {
	depth := 0
	// top holds what is known about the two topmost stack items: the string
	// they are, or nil. Ops that leave the stack alone keep it.
	var top [2]*string
	push := func(s *string) { top[0], top[1] = top[1], s }
	memoKeys := map[int]struct{}{}
	memoStr := map[int]string{}
	memoPut := func(i int) {
		memoKeys[i] = struct{}{}
		if top[1] != nil {
			memoStr[i] = *top[1]
		} else {
			delete(memoStr, i)
		}
	}
	memoGet := func(i int) {
		if s, ok := memoStr[i]; ok {
			push(&s)
		} else {
			push(nil)
		}
	}
	for i := 0; i < len(p); {
		op := p[i]
		info := opTable[op]
		at := i
		i++
		argAt := i
		truncated := func() error {
			return fmt.Errorf("%w: pickle opcode 0x%02x at byte %d", ErrTruncated, op, at)
		}
		var lines [2][]byte
		var payload []byte
		switch info.kind {
		case 0:
			return fmt.Errorf("unknown pickle opcode 0x%02x at byte %d", op, at)
		case argNone:
			if op == '.' {
				return nil
			}
		case argFixed:
			if len(p)-i < info.n {
				return truncated()
			}
			i += info.n
		case argLine, argLines2:
			n := 1
			if info.kind == argLines2 {
				n = 2
			}
			for l := 0; l < n; l++ {
				nl := bytes.IndexByte(p[i:], '\n')
				if nl < 0 {
					return truncated()
				}
				lines[l] = p[i : i+nl]
				i += nl + 1
			}
		case argLen1, argLen4, argLen8, argFrame:
			var n uint64
			switch {
			case info.kind == argLen1 && len(p)-i >= 1:
				n = uint64(p[i])
				i++
			case info.kind == argLen4 && len(p)-i >= 4:
				n = uint64(binary.LittleEndian.Uint32(p[i:]))
				i += 4
			case (info.kind == argLen8 || info.kind == argFrame) && len(p)-i >= 8:
				n = binary.LittleEndian.Uint64(p[i:])
				i += 8
			default:
				return truncated()
			}
			if n > uint64(len(p)-i) {
				return fmt.Errorf("%w: pickle opcode 0x%02x at byte %d announces %d bytes, %d remain", ErrTruncated, op, at, n, len(p)-i)
			}
			if info.kind != argFrame { // a frame's content is more opcodes
				payload = p[i : i+int(n)]
				i += int(n)
			}
		}

		switch op {
		case 'c', 'i': // GLOBAL, INST
			if _, err := findClass(string(lines[0]), string(lines[1])); err != nil {
				return err
			}
			push(nil)
		case 0x93: // STACK_GLOBAL
			if top[0] == nil || top[1] == nil {
				return fmt.Errorf("%w: STACK_GLOBAL at byte %d with names that are not string literals", ErrUnsafeClass, at)
			}
			if _, err := findClass(*top[0], *top[1]); err != nil {
				return err
			}
			push(nil)
			push(nil)
		case 0x8c, 'X', 0x8d, 'U', 'T': // SHORT_BINUNICODE BINUNICODE BINUNICODE8 SHORT_BINSTRING BINSTRING
			s := string(payload)
			push(&s)
		case 'V', 'S': // UNICODE, STRING (quoted)
			s := string(lines[0])
			if op == 'S' && len(s) >= 2 {
				s = s[1 : len(s)-1]
			}
			push(&s)
		case 'q': // BINPUT
			memoPut(int(p[argAt]))
		case 'r': // LONG_BINPUT
			memoPut(int(binary.LittleEndian.Uint32(p[argAt:])))
		case 'p': // PUT
			if n, err := strconv.Atoi(string(lines[0])); err == nil {
				memoPut(n)
			}
		case 0x94: // MEMOIZE
			memoPut(len(memoKeys))
		case 'h': // BINGET
			memoGet(int(p[argAt]))
		case 'j': // LONG_BINGET
			memoGet(int(binary.LittleEndian.Uint32(p[argAt:])))
		case 'g': // GET
			n, err := strconv.Atoi(string(lines[0]))
			if err != nil {
				n = -1
			}
			memoGet(n)
		case 0x80, 0x95: // PROTO, FRAME: no stack effect
		default:
			top = [2]*string{}
		}

		switch info.mark {
		case +1:
			depth++
			if depth > maxMarkDepth {
				return fmt.Errorf("pickle nests more than %d MARKs", maxMarkDepth)
			}
		case -1:
			if depth > 0 {
				depth--
			}
		}
	}
	return fmt.Errorf("%w: pickle has no STOP opcode", ErrTruncated)
}

// unpickle runs gopickle over a scanned pickle. persistentLoad receives the
// persistent ids (torch storages).
func unpickle(p []byte, persistentLoad func(any) (any, error)) (result any, err error) {
	if err := scanPickle(p); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			result = nil
			err = fmt.Errorf("%w: malformed pickle (%v)", ErrFormat, r)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(p))
	u.FindClass = findClass
	u.PersistentLoad = persistentLoad
	return u.Load()
}

// findClass is the allow-list: the globals `torch.save(model.state_dict())`
// writes with torch 1.13–2.x, resolved to Go stand-ins that only record
// their arguments. Nothing is imported and nothing runs.
func findClass(module, name string) (any, error) {
	switch module + "." + name {
	case "collections.OrderedDict":
		// gopickle answers this one itself; listed so that scanPickle
		// accepts it.
		return &types.OrderedDictClass{}, nil
	case "torch._utils._rebuild_tensor_v2":
		return rebuildTensorV2{}, nil
	case "torch._utils._rebuild_parameter":
		return rebuildParameter{nargs: 3}, nil
	case "torch._utils._rebuild_parameter_with_state":
		return rebuildParameter{nargs: 4}, nil
	}
	if module == "torch" {
		if dt, known := storageDTypes[name]; known {
			return storageClass{name: "torch." + name, dtype: dt}, nil
		}
	}
	return nil, fmt.Errorf("%w: %s.%s", ErrUnsafeClass, module, name)
}

// storageDTypes maps torch's legacy typed-storage class names (what the
// persistent ids of torch 1.x and 2.x name) to DTypes; "" marks a storage
// torch can write but this package cannot hold, reported as ErrDType.
var storageDTypes = map[string]DType{
	"FloatStorage":         F32,
	"HalfStorage":          F16,
	"BFloat16Storage":      BF16,
	"DoubleStorage":        F64,
	"LongStorage":          I64,
	"IntStorage":           I32,
	"ByteStorage":          U8,
	"BoolStorage":          BOOL,
	"ShortStorage":         "",
	"CharStorage":          "",
	"ComplexFloatStorage":  "",
	"ComplexDoubleStorage": "",
	"QInt8Storage":         "",
	"QUInt8Storage":        "",
	"QInt32Storage":        "",
	"QUInt4x2Storage":      "",
	"QUInt2x4Storage":      "",
}

// storageClass stands for torch.XxxStorage. It is deliberately not callable.
type storageClass struct {
	name  string
	dtype DType // "" if unsupported
}

// rebuildTensorV2 stands for torch._utils._rebuild_tensor_v2(storage,
// storage_offset, size, stride, requires_grad, backward_hooks[, metadata]).
// The arguments are checked later, when the tensor's name is known.
type rebuildTensorV2 struct{}

func (rebuildTensorV2) Call(args ...any) (any, error) {
	if len(args) != 6 && len(args) != 7 {
		return nil, fmt.Errorf("%w: _rebuild_tensor_v2 with %d arguments, want 6 or 7", ErrFormat, len(args))
	}
	return &pendingTensor{args: args}, nil
}

// rebuildParameter stands for torch._utils._rebuild_parameter(data,
// requires_grad, backward_hooks) and _rebuild_parameter_with_state(...,
// state): a Parameter is its data tensor for our purposes.
type rebuildParameter struct{ nargs int }

func (r rebuildParameter) Call(args ...any) (any, error) {
	if len(args) != r.nargs {
		return nil, fmt.Errorf("%w: _rebuild_parameter with %d arguments, want %d", ErrFormat, len(args), r.nargs)
	}
	t, ok := args[0].(*pendingTensor)
	if !ok {
		return nil, fmt.Errorf("%w: _rebuild_parameter of type %s, not a tensor", ErrFormat, pyType(args[0]))
	}
	return t, nil
}

// pendingTensor is an unpickled _rebuild_tensor_v2 call.
type pendingTensor struct{ args []any }

// storageRef is an unpickled persistent id ('storage', storage_type, key,
// location, numel).
type storageRef struct {
	class *storageClass
	key   string
	numel int64
}

// pyType names a pickled value's type for error messages. Values are never
// printed whole: a pickle can build cyclic or huge structures.
func pyType(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case *types.Tuple:
		return "tuple"
	case *types.List:
		return "list"
	case *types.Dict, *types.OrderedDict:
		return "dict"
	case *pendingTensor:
		return "tensor"
	case storageClass:
		return v.name
	}
	return fmt.Sprintf("%T", v)
}

type dictEntry = types.DictEntry

// dictItems returns the items of a pickled dict or OrderedDict in order.
func dictItems(v any) ([]dictEntry, bool) {
	switch d := v.(type) {
	case *types.Dict:
		return *d, true
	case *types.OrderedDict:
		out := make([]dictEntry, 0, d.Len())
		for e := d.List.Front(); e != nil; e = e.Next() {
			ent := e.Value.(*types.OrderedDictEntry)
			out = append(out, dictEntry{Key: ent.Key, Value: ent.Value})
		}
		return out, true
	}
	return nil, false
}

// seq returns the items of a pickled tuple or list.
func seq(v any) ([]any, bool) {
	switch s := v.(type) {
	case *types.Tuple:
		return *s, true
	case *types.List:
		return *s, true
	}
	return nil, false
}

// nonNegInt accepts a pickled int in [0, MaxInt64]; big ints are refused.
func nonNegInt(v any) (int64, bool) {
	i, ok := v.(int)
	if !ok || i < 0 {
		return 0, false
	}
	return int64(i), true
}
