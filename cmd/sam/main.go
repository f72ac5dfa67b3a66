// Command sam runs Segment Anything from the command line.
//
//	sam info     -checkpoint F [-config C]
//	    the checkpoint's format, tensors and config (what was assumed, too); checks an official file name's sha256
//	sam embed    -checkpoint F -image I|DIR ... -out E.safetensors|E.npy|DIR [-devices all|0,1|cpu|cpu:N] [-overwrite] [-shard i/n]
//	    encode images; a directory (or several images) writes DIR/<name>.safetensors, resumable
//	sam predict  -checkpoint F (-image I | -embedding E) [-point X,Y[,LABEL]]... [-box X0,Y0,X1,Y1]... [-mask-input M.npy[:I]] -out DIR
//	    segment with point, box and mask prompts (SamPredictor)
//	sam auto     -checkpoint F -image I|DIR ... [SamAutomaticMaskGenerator's options] -out DIR [-overwrite]
//	    segment everything (SamAutomaticMaskGenerator); a directory (or several images) is resumable
//	sam bench    [-model vit_b|vit_l|vit_h|vit_t | -checkpoint F] [-batch 1,8] [-prompts 1,64]
//	    time the encoder and the decoder
//	sam serve    [-checkpoint F] [-addr 127.0.0.1:8080] [-cache-dir DIR] [-cache redis://HOST:6379/0] [-token T] [-cors ORIGIN]
//	    the HTTP API and the web app, with a shared embedding cache (sam/serve); Ctrl-C or SIGTERM drains
//	sam devices
//	    list the compute devices
//	sam version
//	    the module version and VCS revision this binary was built from
//
// Every command prints machine-readable results (JSON) on stdout, progress
// and notes on stderr, and exits 0 on success, 1 on error, 2 for bad flags
// (with the usage) and 130 when interrupted (Ctrl-C), after a summary of
// what was done. Progress redraws one line in place only when stderr is a
// terminal; elsewhere (logs, CI) it writes one line per item.
//
// Outputs are written to a temporary name in the output folder and renamed
// once complete, so a full disk or a crash leaves no truncated file under
// a final name; the output folder is checked for writing before any work.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// command is one subcommand.
type command struct {
	name, args, summary string
	run                 func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// errUsage marks a usage error (exit status 2); the flag set already
// printed the usage. errInterrupted marks a run ended by Ctrl-C (exit
// status 130); the command printed its summary.
var (
	errUsage       = errors.New("usage")
	errInterrupted = errors.New("interrupted")
)

// exitInterrupted is the shell's status for a process ended by SIGINT.
const exitInterrupted = 130

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sam: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := c.run(args[1:], stdout, stderr); err != nil {
		switch {
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		case errors.Is(err, errInterrupted):
			fmt.Fprintf(stderr, "sam %s: interrupted\n", c.name)
			return exitInterrupted
		}
		fmt.Fprintf(stderr, "sam %s: %v\n", c.name, err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "sam: Segment Anything in Go\n\nUsage:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := commands[n]
		fmt.Fprintf(w, "  sam %-8s %s\n%s", c.name, c.args, wrap(c.summary, "      ", 100))
	}
	fmt.Fprintf(w, "\nRun 'sam <command> -h' for a command's flags.\n")
}

// wrap breaks text into lines of at most width runes, each indented.
func wrap(text, indent string, width int) string {
	var b strings.Builder
	line := indent
	for _, word := range strings.Fields(text) {
		if line != indent && len([]rune(line))+1+len([]rune(word)) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += word
	}
	b.WriteString(line + "\n")
	return b.String()
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(c *command, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sam "+c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sam %s %s\n%s\nFlags:\n", c.name, c.args, wrap(c.summary, "  ", 100))
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags; a parse error or stray argument is a usage error.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

// usageErr prints msg and the usage and returns errUsage.
func usageErr(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), "sam: "+format+"\n", args...)
	fs.Usage()
	return errUsage
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// onceFlag is a string flag that may be given once: the flag package lets
// a repeated flag silently replace the earlier value, which for -image
// meant that all but the last image were ignored.
type onceFlag struct {
	p   *string
	set bool
}

func (o *onceFlag) String() string {
	if o == nil || o.p == nil {
		return ""
	}
	return *o.p
}

func (o *onceFlag) Set(v string) error {
	if o.set {
		return fmt.Errorf("given twice (%q, then %q); it takes one value", *o.p, v)
	}
	*o.p, o.set = v, true
	return nil
}

// onceVar defines a string flag that refuses a second value.
func onceVar(fs *flag.FlagSet, p *string, name, value, usage string) {
	*p = value
	fs.Var(&onceFlag{p: p}, name, usage)
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// intRange refuses v outside lo…hi for flag name.
func intRange(fs *flag.FlagSet, name string, v, lo, hi int) error {
	if v < lo || v > hi {
		return usageErr(fs, "-%s %d: want %d…%d", name, v, lo, hi)
	}
	return nil
}

// maxThreads, maxWorkers and maxEncoderBatch bound the flags of the same
// names: beyond them nothing runs faster, and an encoder batch of B images
// holds B preprocessed inputs and activations (12 MiB and about 100 MiB an
// image for ViT-B).
const (
	maxThreads      = 1024
	maxWorkers      = 64
	maxEncoderBatch = 1024
)

// parseSize reads a byte count: 123, 512K, 64M, 8G, 1.5T (powers of 1024;
// an optional trailing "iB" or "B").
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := 1.0
	if n := len(t); n > 0 {
		if k := strings.IndexByte("KMGT", t[n-1]); k >= 0 {
			mult = float64(int64(1) << (10 * (k + 1)))
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || v*mult > 1<<62 {
		return 0, fmt.Errorf("%q: want a size such as 8G, 512M or 1000000", s)
	}
	return int64(v * mult), nil
}
