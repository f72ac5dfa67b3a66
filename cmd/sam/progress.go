package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress reports "done/total" on stderr: a line redrawn in place on a
// terminal, a line every few seconds elsewhere (logs, CI).
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	label    string
	total    int
	done     int
	failed   int
	start    time.Time
	last     time.Time
	terminal bool
}

func newProgress(w io.Writer, label string, total int) *progress {
	p := &progress{w: w, label: label, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

// add counts one finished item.
func (p *progress) add(failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if failed {
		p.failed++
	}
	now := time.Now()
	if p.done < p.total && now.Sub(p.last) < 200*time.Millisecond || (!p.terminal && p.done < p.total && now.Sub(p.last) < 5*time.Second) {
		return
	}
	p.last = now
	rate := float64(p.done) / now.Sub(p.start).Seconds()
	line := fmt.Sprintf("%s: %d/%d (%.2f/s", p.label, p.done, p.total, rate)
	if p.failed > 0 {
		line += fmt.Sprintf(", %d failed", p.failed)
	}
	line += ")"
	if p.terminal {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
		if p.done == p.total {
			fmt.Fprintln(p.w)
		}
	} else {
		fmt.Fprintln(p.w, line)
	}
}
