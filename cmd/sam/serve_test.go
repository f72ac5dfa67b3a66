package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines to write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServe runs `sam serve` with the demo model on a free port: the web
// app, an upload and a prediction answer; a signal (here: the test's
// stand-in for SIGTERM) drains it, it exits 0 and prints its summary.
func TestServe(t *testing.T) {
	stop, fire := context.WithCancel(context.Background())
	defer fire()
	addrs := make(chan string, 1)
	oldSignals, oldListening := serveSignals, serveListening
	serveSignals = func(parent context.Context) (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(parent)
		go func() {
			<-stop.Done()
			cancel()
		}()
		return ctx, cancel
	}
	serveListening = func(addr string) { addrs <- addr }
	defer func() { serveSignals, serveListening = oldSignals, oldListening }()

	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"serve", "-checkpoint", filepath.Join(testdata, "demo", "model.safetensors"),
			"-addr", "127.0.0.1:0", "-cache-dir", t.TempDir(), "-log", "warn"}, &stdout, &stderr)
	}()
	var addr string
	select {
	case addr = <-addrs:
	case code := <-done:
		t.Fatalf("serve exited %d: %s", code, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not start listening")
	}
	base := "http://" + addr
	get := func(path string) (int, []byte) {
		res, err := http.Get(base + path)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	code, page := get("/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(page), "<script src=\"app.js\"")
	code, _ = get("/healthz")
	require.Equal(t, http.StatusOK, code)

	img, err := os.ReadFile(filepath.Join(testdata, "demo", "scene_2.png"))
	require.NoError(t, err)
	res, err := http.Post(base+"/v1/images", "image/png", bytes.NewReader(img))
	require.NoError(t, err)
	var info struct{ ID string }
	require.NoError(t, json.NewDecoder(res.Body).Decode(&info))
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	res, err = http.Post(base+"/v1/images/"+info.ID+"/predict?format=rle", "application/json",
		bytes.NewReader([]byte(`{"points": [[178, 204]]}`)))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)

	fire()
	select {
	case code := <-done:
		require.Equal(t, 0, code, "stderr: %s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	require.Contains(t, stderr.String(), "shutting down")
	var summary map[string]any
	require.NoError(t, json.Unmarshal([]byte(stdout.String()), &summary), "stdout %q", stdout.String())
	require.Equal(t, addr, summary["addr"])
	require.NotEmpty(t, summary["model"])
}

func TestServeUsageErrors(t *testing.T) {
	demo := filepath.Join(testdata, "demo", "model.safetensors")
	for _, args := range [][]string{
		{"serve", "-checkpoint", demo, "-cache", "memcached://x"},
		{"serve", "-checkpoint", demo, "-queue", "0"},
		{"serve", "-checkpoint", demo, "-timeout", "-1s"},
		{"serve", "-checkpoint", demo, "-cache-bytes", "lots"},
		{"serve", "-checkpoint", demo, "-auto-defaults", `{"points_per_side": -1}`},
		{"serve", "-checkpoint", demo, "-log", "loud"},
		{"serve", "stray"},
	} {
		code, _, stderr := samCLI(args...)
		require.Equal(t, 2, code, "%v: %s", args, stderr)
		require.NotEmpty(t, stderr, args)
	}
}
