package nn

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Options configure a backend at creation.
type Options struct {
	// Precision of weights and activations: "fp32" (default) or "bf16".
	// Backends that only compute in one precision reject the other.
	Precision string
	// Threads bounds host parallelism (0: GOMAXPROCS).
	Threads int
}

// PrecisionOf is the precision b computes in: what its Precision method
// says ("fp32" or "bf16"; the CPU backend asked for bf16 says "fp32" where
// the CPU lacks AVX512_BF16), "fp32" for a backend without one.
func PrecisionOf(b Backend) string {
	if p, ok := b.(interface{ Precision() string }); ok {
		return p.Precision()
	}
	return "fp32"
}

// Factory creates a backend on device index dev (0 where the kind has
// no devices, e.g. the CPU).
type Factory func(dev int, opts Options) (Backend, error)

var (
	regMu     sync.Mutex
	factories = map[string]Factory{}
	hints     = map[string]string{}
)

// Register makes a backend kind available to Open; backends call it from
// an init function, so importing a backend package is enough to enable it.
func Register(kind string, f Factory) {
	regMu.Lock()
	defer regMu.Unlock()
	factories[kind] = f
}

// RegisterHint records what to tell a user who asks for a kind that this
// build lacks (e.g. how to build with CUDA).
func RegisterHint(kind, hint string) {
	regMu.Lock()
	defer regMu.Unlock()
	hints[kind] = hint
}

// Kinds lists the registered backend kinds.
func Kinds() []string {
	regMu.Lock()
	defer regMu.Unlock()
	var ks []string
	for k := range factories {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// ParseDevice splits "cuda:1" into ("cuda", 1); "cpu" gives ("cpu", 0).
func ParseDevice(spec string) (kind string, index int, err error) {
	kind, idx, found := strings.Cut(strings.TrimSpace(spec), ":")
	if kind == "" {
		return "", 0, fmt.Errorf("empty device")
	}
	if found {
		index, err = strconv.Atoi(idx)
		if err != nil || index < 0 {
			return "", 0, fmt.Errorf("device %q: bad index %q", spec, idx)
		}
	}
	return kind, index, nil
}

// Open creates a backend from a device spec such as "cpu", "cuda" or "cuda:1".
func Open(spec string, opts Options) (Backend, error) {
	kind, idx, err := ParseDevice(spec)
	if err != nil {
		return nil, err
	}
	regMu.Lock()
	f, ok := factories[kind]
	hint := hints[kind]
	regMu.Unlock()
	if !ok {
		if hint != "" {
			return nil, fmt.Errorf("device %q is not available: %s", spec, hint)
		}
		return nil, fmt.Errorf("unknown device %q (available: %s)", spec, strings.Join(Kinds(), ", "))
	}
	return f(idx, opts)
}

// Forker is implemented by backends that can run a second, independent
// stream of work on the same device: the fork accepts the original's
// tensors (weights are shared, not copied) and has its own stream and
// scratch memory. threads bounds a CPU fork's parallelism (0: unchanged).
type Forker interface {
	Fork(threads int) Backend
}

// MemoryReporter is implemented by backends that account for the memory
// their tensors hold.
type MemoryReporter interface {
	MemoryInUse() int64 // bytes held by live tensors now
	PeakMemory() int64  // the most held since creation or ResetPeakMemory
	ResetPeakMemory()
}

// DeviceInfo describes one device of a backend kind.
type DeviceInfo struct {
	Kind              string  `json:"kind"`  // "cuda"
	Index             int     `json:"index"` // as Open takes it ("cuda:<Index>")
	Name              string  `json:"name"`
	UUID              string  `json:"uuid,omitempty"`
	ComputeCapability string  `json:"compute_capability,omitempty"`
	MemoryTotal       int64   `json:"memory_total_bytes"`
	MemoryFree        int64   `json:"memory_free_bytes"`
	Utilization       float64 `json:"utilization_percent"` // -1 when unknown
	Driver            string  `json:"driver_version,omitempty"`
	CUDA              string  `json:"cuda_version,omitempty"`
	Note              string  `json:"note,omitempty"` // e.g. why some fields are missing
}

var enumerators = map[string]func() ([]DeviceInfo, error){}

// RegisterEnumerator lets a backend kind list its devices.
func RegisterEnumerator(kind string, f func() ([]DeviceInfo, error)) {
	regMu.Lock()
	defer regMu.Unlock()
	enumerators[kind] = f
}

// Devices lists the devices of a kind; a kind without an enumerator (or a
// build without it) has none.
func Devices(kind string) ([]DeviceInfo, error) {
	regMu.Lock()
	f := enumerators[kind]
	regMu.Unlock()
	if f == nil {
		return nil, nil
	}
	return f()
}
