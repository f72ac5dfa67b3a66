package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/samgo/samgo/sam/amg"
)

// budgetFlag is -max-memory: the estimated peak memory above which a
// command refuses work before it starts (a 10¹⁰-point grid, a batch of
// 100000 images), instead of dying of OOM part-way.
type budgetFlag struct {
	s     string
	bytes int64
}

func (b *budgetFlag) register(fs *flag.FlagSet) {
	fs.StringVar(&b.s, "max-memory", "", "refuse work whose estimated peak memory exceeds `SIZE` (8G, 512M, bytes; 0: no limit); "+
		"default: the machine's memory (or the cgroup's limit)"+knownMemory())
}

func knownMemory() string {
	if n := systemMemory(); n > 0 {
		return ", here " + amg.FormatBytes(n)
	}
	return ", unknown here: no limit"
}

// resolve parses the flag (default: systemMemory); 0 is no limit.
func (b *budgetFlag) resolve(fs *flag.FlagSet) error {
	if b.s == "" {
		b.bytes = systemMemory()
		return nil
	}
	n, err := parseSize(b.s)
	if err != nil {
		return usageErr(fs, "-max-memory %v", err)
	}
	b.bytes = n
	return nil
}

// check refuses work whose estimated live memory is live bytes when its
// peak exceeds the budget, naming what and how to fix it. The peak is
// twice the live memory: Go's collector (GOGC=100) lets the heap grow to
// twice what is live before it collects (measured on the demo scene with
// 32² points and a crop layer: 164 MB live at most, a 330 MB heap).
func (b *budgetFlag) check(live int64, what, fix string) error {
	need := 2 * live
	if b.bytes > 0 && need > b.bytes {
		return fmt.Errorf("%s needs about %s (estimated), over the memory budget of %s: %s, or raise -max-memory",
			what, amg.FormatBytes(need), amg.FormatBytes(b.bytes), fix)
	}
	return nil
}

// systemMemory is the physical memory (Linux: MemTotal), or the cgroup v2
// memory limit when lower; 0 when unknown.
func systemMemory() int64 {
	var total int64
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				if err == nil {
					total = kb << 10
				}
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
			total = n
		}
	}
	return total
}
