package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
)

// isTerminal reports whether w is a terminal (a character device). Only
// then does progress redraw a line with '\r' and ESC [K; a log file or a
// pipe gets one plain line per item. A variable, so that tests can pretend.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// notifyContext is cancelled by Ctrl-C (SIGINT), after which a second
// Ctrl-C ends the process at once; tests replace it.
var notifyContext = func(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt)
	go func() {
		<-ctx.Done()
		stop() // restore the default: the next SIGINT kills
	}()
	return ctx, stop
}

// afterItem, when set (by tests), is called after each image of auto and
// embed has been handled, with the number handled so far.
var afterItem func(done int)

// statusLine is stderr as progress sees it: on a terminal one line drawn
// over in place, plus whole lines printed above it; elsewhere only the
// whole lines.
type statusLine struct {
	mu    sync.Mutex
	w     io.Writer
	term  bool
	drawn bool
}

func newStatusLine(w io.Writer) *statusLine { return &statusLine{w: w, term: isTerminal(w)} }

// draw replaces the status line (terminal only; elsewhere nothing).
func (s *statusLine) draw(line string) {
	if !s.term {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.w, "\r\033[K%s", line)
	s.drawn = true
}

// println prints a whole line (above the status line on a terminal).
func (s *statusLine) println(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drawn {
		fmt.Fprint(s.w, "\r\033[K")
		s.drawn = false
	}
	fmt.Fprintf(s.w, format+"\n", args...)
}

// done ends the status line.
func (s *statusLine) done() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drawn {
		fmt.Fprintln(s.w)
		s.drawn = false
	}
}

// bar renders done/total as [#####.....].
func bar(done, total int) string {
	const width = 20
	n := 0
	if total > 0 {
		n = min(width, done*width/total)
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}
