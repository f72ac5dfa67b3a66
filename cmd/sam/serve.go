package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/samgo/samgo/sam/amg"
	"github.com/samgo/samgo/sam/serve"
)

func init() {
	register(&command{
		name: "serve",
		args: "[-checkpoint F] [-addr 127.0.0.1:8080] [-cache-dir DIR] [-cache redis://HOST:6379/0] [-token T] [-cors ORIGIN] ...",
		summary: "serve the HTTP API (POST /v1/images, /v1/images/{id}/predict, /v1/images/{id}/auto, GET /v1/models, /healthz, /readyz, /metrics) " +
			"and the web app at /, with an embedding cache in memory, optionally on disk and in Redis (shared by replicas). Without -checkpoint " +
			"it serves the bundled demo model when run from the repository. SIGINT or SIGTERM drains: requests in flight finish, then the model is closed.",
		run: runServe,
	})
}

// demoCheckpoint is what serve loads without -checkpoint, when it is there
// (run from the repository root, as `make serve` does).
const demoCheckpoint = "tests/testdata/demo/model.safetensors"

// serveSignals ends a serve run: SIGINT (Ctrl-C) or SIGTERM (what
// Kubernetes and docker stop send). Tests replace it.
var serveSignals = func(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// serveListening, when set (by tests), is told the address serve listens on.
var serveListening func(addr string)

// sizeFlag is a byte count flag read with parseSize (8G, 512M, 1000000).
type sizeFlag struct{ n *int64 }

func (s sizeFlag) String() string {
	if s.n == nil {
		return ""
	}
	return amg.FormatBytes(*s.n)
}

func (s sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s.n = n
	return nil
}

func sizeVar(fs *flag.FlagSet, p *int64, name string, def int64, usage string) {
	*p = def
	fs.Var(sizeFlag{p}, name, usage)
}

func runServe(args []string, stdout, stderr io.Writer) error {
	c := commands["serve"]
	fs := newFlags(c, stderr)
	var mf modelFlags
	mf.register(fs)
	def := serve.DefaultOptions()
	o := def
	var addr, autoDefaults, logLevel string
	var maxPixels int
	onceVar(fs, &addr, "addr", "127.0.0.1:8080", "listen `HOST:PORT`; the default answers this machine only: give 0.0.0.0:8080 (behind a proxy, with -token) to serve a network")
	sizeVar(fs, &o.CacheBytes, "cache-bytes", def.CacheBytes, "memory cache bound `SIZE` (embeddings and uploaded images, LRU; a ViT-B embedding is 4 MiB)")
	onceVar(fs, &o.CacheDir, "cache-dir", "", "keep embeddings (as 'sam embed' writes them) and uploaded images in `DIR` too, across restarts")
	sizeVar(fs, &o.CacheDirBytes, "cache-dir-bytes", def.CacheDirBytes, "bound `SIZE` of -cache-dir (least recently used files are deleted)")
	onceVar(fs, &o.Redis, "cache", "", "share the cache through Redis: `URL` redis://[user:password@]host:6379/0; a replica that finds an embedding there never encodes that image")
	fs.DurationVar(&o.CacheTTL, "cache-ttl", def.CacheTTL, "time to live of Redis entries, refreshed on each read")
	onceVar(fs, &o.Token, "token", "", "require `TOKEN` as 'Authorization: Bearer TOKEN' on /v1/ and /metrics (default: $SAM_TOKEN; none: no auth)")
	onceVar(fs, &o.CORSOrigin, "cors", "", "allow browser calls from `ORIGIN` (https://app.example.com, or *); default: none")
	sizeVar(fs, &o.MaxBodyBytes, "max-body", def.MaxBodyBytes, "largest upload `SIZE` (413 past it)")
	fs.IntVar(&maxPixels, "max-pixels", def.MaxPixels, "largest image in pixels (W·H), checked from the header before decoding (413 past it)")
	fs.IntVar(&o.MaxPrompts, "max-prompts", def.MaxPrompts, "most prompts (boxes) in one predict request")
	fs.IntVar(&o.MaxPoints, "max-points", def.MaxPoints, "most points in one prompt")
	fs.IntVar(&o.Encoders, "encoders", def.Encoders, "encoder workers")
	fs.IntVar(&o.QueueSize, "queue", def.QueueSize, "encoder jobs that may wait (a full queue answers 503 with Retry-After)")
	fs.IntVar(&o.EncoderThreads, "encoder-threads", 0, "CPU threads of the encoder workers (default: all; fewer leaves cores to the decoder)")
	fs.IntVar(&o.Decoders, "decoders", def.Decoders, "predict requests decoding at once")
	fs.DurationVar(&o.Timeout, "timeout", def.Timeout, "per-request timeout (504 past it)")
	fs.DurationVar(&o.AutoTimeout, "auto-timeout", def.AutoTimeout, "timeout of a segment-everything request")
	sizeVar(fs, &o.AutoMaxMemory, "auto-max-memory", def.AutoMaxMemory, "refuse segment-everything requests whose estimated peak memory is larger (413)")
	onceVar(fs, &autoDefaults, "auto-defaults", "", "segment-everything options for what a request leaves out, as `JSON` with the official names "+
		"(e.g. {\"points_per_side\":16,\"pred_iou_thresh\":0.5,\"stability_score_thresh\":0.7} for the demo model); default: the official defaults")
	shutdownTimeout := fs.Duration("shutdown-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long requests in flight may take to finish")
	fs.StringVar(&logLevel, "log", "info", "request log level: debug, info, warn, error")
	if err := parse(fs, args); err != nil {
		return err
	}
	set := setFlags(fs)
	o.MaxPixels = maxPixels
	if !set["token"] {
		o.Token = os.Getenv("SAM_TOKEN")
	}
	checks := []struct {
		name   string
		v      int
		lo, hi int
	}{
		{"max-pixels", o.MaxPixels, 1, 1 << 28}, {"max-prompts", o.MaxPrompts, 1, 1024}, {"max-points", o.MaxPoints, 1, 1024},
		{"encoders", o.Encoders, 1, maxWorkers}, {"queue", o.QueueSize, 1, 1 << 16}, {"decoders", o.Decoders, 1, 1024},
		{"encoder-threads", o.EncoderThreads, 0, maxThreads},
	}
	for _, k := range checks {
		if err := intRange(fs, k.name, k.v, k.lo, k.hi); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"timeout", o.Timeout}, {"auto-timeout", o.AutoTimeout}, {"cache-ttl", o.CacheTTL}, {"shutdown-timeout", *shutdownTimeout}} {
		if d.v <= 0 {
			return usageErr(fs, "-%s %v: want a positive duration", d.name, d.v)
		}
	}
	if o.CacheBytes <= 0 || o.CacheDirBytes <= 0 || o.MaxBodyBytes <= 0 || o.AutoMaxMemory <= 0 {
		return usageErr(fs, "-cache-bytes, -cache-dir-bytes, -max-body and -auto-max-memory must be positive")
	}
	if o.Redis != "" && !strings.HasPrefix(o.Redis, "redis://") && !strings.HasPrefix(o.Redis, "rediss://") {
		return usageErr(fs, "-cache %q: want redis://host:6379/0 (or rediss:// for TLS)", o.Redis)
	}
	if autoDefaults != "" {
		a, err := serve.ParseAutoOptions([]byte(autoDefaults), amg.DefaultOptions())
		if err != nil {
			return usageErr(fs, "-auto-defaults: %v", err)
		}
		o.AutoDefaults = &a
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return usageErr(fs, "-log %q: want debug, info, warn or error", logLevel)
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if mf.checkpoint == "" {
		if _, err := os.Stat(demoCheckpoint); err == nil {
			mf.checkpoint = demoCheckpoint
			fmt.Fprintf(stderr, "sam serve: no -checkpoint: serving the bundled demo model %s (it knows synthetic shapes only)\n", demoCheckpoint)
		}
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	ctx, stop := serveSignals(context.Background())
	defer stop()
	t0 := time.Now()
	m, err := mf.load(stderr)
	if err != nil {
		return err
	}
	s, err := serve.New(ctx, m, o) // s owns m from here
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String()
	fmt.Fprintf(stderr, "sam serve: %s on %s loaded in %s; listening on %s (web app at %s/)\n",
		mf.checkpoint, m.Backend().Name(), time.Since(t0).Round(time.Millisecond), ln.Addr(), url)
	if o.Token == "" && !isLoopback(ln.Addr()) {
		fmt.Fprintf(stderr, "sam serve: warning: listening beyond this machine without -token: anyone who reaches %s can use it\n", ln.Addr())
	}
	if serveListening != nil {
		serveListening(ln.Addr().String())
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	select {
	case err = <-served:
		// The listener failed: nothing to drain.
		s.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	fmt.Fprintf(stderr, "sam serve: shutting down: finishing requests in flight (up to %s)\n", *shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	err = s.Shutdown(sctx)
	if serr := <-served; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	fmt.Fprintf(stderr, "sam serve: stopped\n")
	return writeJSON(stdout, map[string]any{"addr": ln.Addr().String(), "model": s.ModelID(), "uptime_s": time.Since(t0).Seconds()})
}

func isLoopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}
