package serve

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLRU checks the bound by bytes and the eviction order.
func TestLRU(t *testing.T) {
	var evicted []string
	c := newLRU(100)
	c.onEvict = func(k string, _ any) { evicted = append(evicted, k) }
	require.True(t, c.add("a", 1, 40))
	require.True(t, c.add("b", 2, 40))
	_, ok := c.get("a") // a is now the most recent
	require.True(t, ok)
	require.True(t, c.add("c", 3, 40)) // 120 > 100: b goes
	require.Equal(t, []string{"b"}, evicted)
	n, b := c.stats()
	require.Equal(t, 2, n)
	require.EqualValues(t, 80, b)
	require.True(t, c.add("a", 1, 90)) // resized: c goes
	require.Equal(t, []string{"b", "c"}, evicted)
	require.False(t, c.add("huge", 0, 101), "a value larger than the bound is not kept")
	_, ok = c.get("huge")
	require.False(t, ok)
	c.remove("a")
	n, b = c.stats()
	require.Equal(t, 0, n)
	require.EqualValues(t, 0, b)
}

// TestMemoryCacheEviction bounds the memory cache to about one image and
// its embedding: the least recently used image goes and is unknown (404)
// until uploaded again; /metrics reports the bytes held within the bound.
func TestMemoryCacheEviction(t *testing.T) {
	const bound = 300 << 10
	s := newTestServer(t, nil, Options{CacheBytes: bound})
	a, b := loadScene(t, 2), loadScene(t, 1) // 117 KB and 190 KB PNGs, 64 KiB embeddings
	ida := s.upload(t, a.png).ID
	code, _ := do(t, "GET", s.url+"/v1/images/"+ida, "", nil)
	require.Equal(t, http.StatusOK, code)
	idb := s.upload(t, b.png).ID
	code, body := do(t, "GET", s.url+"/v1/images/"+ida, "", nil)
	require.Equal(t, http.StatusNotFound, code, "%s", body)
	code, _ = do(t, "GET", s.url+"/v1/images/"+idb, "", nil)
	require.Equal(t, http.StatusOK, code)
	mfs := s.scrape(t)
	held := metricValue(mfs, "sam_cache_bytes", "tier", tierMemory)
	require.Positive(t, held)
	require.LessOrEqual(t, held, float64(bound))
	require.Equal(t, "encoded", s.upload(t, a.png).Source, "an evicted image is encoded again")
	require.EqualValues(t, 3, s.encoderRuns(t))
}

// TestDiskTierSurvivesRestart: embeddings and images written to -cache-dir
// (atomically: no temporary file is left, and one a crashed run left is
// removed) are found by the next server on the same folder, which then
// answers prompts and runs the automatic mask generator without encoding
// for the upload. The files are those `sam embed` writes.
func TestDiskTierSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	sc := loadScene(t, 2)
	s1 := newTestServer(t, nil, Options{CacheDir: dir})
	id := s1.upload(t, sc.png).ID
	req := map[string]any{"points": [][2]float64{sc.object(t, 5).Point}, "format": "rle"}
	want := s1.predict(t, id, req)
	emb := filepath.Join(dir, "embeddings", s1.ModelID(), id+".safetensors")
	require.FileExists(t, emb)
	require.FileExists(t, filepath.Join(dir, "images", id))
	// What a run killed in the middle of a write leaves.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "embeddings", s1.ModelID(), ".x.safetensors.tmp"), []byte("partial"), 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s1.Shutdown(ctx))

	s2 := newTestServer(t, nil, Options{CacheDir: dir})
	require.NoError(t, filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		require.False(t, strings.HasSuffix(path, ".tmp"), "temporary file %s left", path)
		return nil
	}))
	code, b := do(t, "GET", s2.url+"/v1/images/"+id, "", nil)
	require.Equal(t, http.StatusOK, code, "%s", b)
	require.Contains(t, string(b), `"source":"disk"`)
	got := s2.predict(t, id, req)
	require.Equal(t, want.Predictions, got.Predictions)
	require.Equal(t, tierMemory, s2.upload(t, sc.png).Source, "the disk hit was copied to memory")
	code, b = s2.post(t, "/v1/images/"+id+"/auto", map[string]any{"points_per_side": 4})
	require.Equal(t, http.StatusOK, code, "the image bytes survived too: %s", b)
	mfs := s2.scrape(t)
	require.EqualValues(t, 0, metricValue(mfs, "sam_encoder_runs_total"))
	require.Positive(t, metricValue(mfs, "sam_cache_hits_total", "tier", tierDisk))
	require.Positive(t, metricValue(mfs, "sam_cache_bytes", "tier", tierDisk))

	// A corrupt file is a miss (and dropped), not an error.
	require.NoError(t, os.WriteFile(emb, []byte("not safetensors"), 0o644))
	s3 := newTestServer(t, nil, Options{CacheDir: dir})
	require.Equal(t, "encoded", s3.upload(t, sc.png).Source)
	require.EqualValues(t, 1, metricValue(s3.scrape(t), "sam_cache_errors_total", "tier", tierDisk))
}

// TestCacheKeyHasModelIdentity: two servers with different models (the
// demo model and random weights of the same shapes) share a cache folder;
// the second never takes the first's embedding of an image, and each
// answers with its own model's masks.
func TestCacheKeyHasModelIdentity(t *testing.T) {
	dir := t.TempDir()
	sc := loadScene(t, 2)
	a := newTestServer(t, nil, Options{CacheDir: dir})
	b := newTestServer(t, otherModel(t), Options{CacheDir: dir})
	require.NotEqual(t, a.ModelID(), b.ModelID())
	ia := a.upload(t, sc.png)
	ib := b.upload(t, sc.png)
	require.Equal(t, ia.ID, ib.ID)
	require.Equal(t, "encoded", ib.Source, "the other model encodes the image itself")
	require.Equal(t, b.ModelID(), ib.Model)
	require.EqualValues(t, 1, b.encoderRuns(t))
	req := map[string]any{"points": [][2]float64{sc.object(t, 5).Point}, "format": "rle"}
	pa, pb := a.predict(t, ia.ID, req), b.predict(t, ib.ID, req)
	require.NotEqual(t, pa.Predictions[0].Masks[0].Score, pb.Predictions[0].Masks[0].Score)
	// A logits handle of one model is refused by the other.
	code, body := b.post(t, "/v1/images/"+ib.ID+"/predict", map[string]any{"points": [][2]float64{{10, 10}},
		"mask_input": pa.Predictions[0].Masks[0].Logits})
	require.Equal(t, http.StatusBadRequest, code, "%s", body)
}

// startRedis runs Debian's redis-server on a free loopback port with its
// files in a temporary folder, no persistence; it is stopped at the end
// of the test. The test is skipped when there is no redis-server.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (Debian: apt-get install redis-server): skipping the Redis tier test")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			t.Log("redis-server: " + sc.Text())
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-logged // all read (EOF) before Wait, and before the test ends
		cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		fmt.Fprint(c, "PING\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		return strings.HasPrefix(line, "+PONG")
	}, 10*time.Second, 20*time.Millisecond, "redis-server did not answer on %s", addr)
	return "redis://" + addr + "/0"
}

// TestRedisTwoReplicas: two servers (two replicas behind a load balancer)
// share a real Redis. An image uploaded to the first is predicted on the
// second, refined there with the first's logits handle, and uploaded to
// it, without the second ever running its encoder (its /metrics say 0
// encoder runs and Redis hits). A third replica with another model does
// not take those embeddings.
func TestRedisTwoReplicas(t *testing.T) {
	url := startRedis(t)
	sc := loadScene(t, 2)
	r1 := newTestServer(t, nil, Options{Redis: url, CacheTTL: time.Hour})
	r2 := newTestServer(t, nil, Options{Redis: url, CacheTTL: time.Hour})
	require.Equal(t, r1.ModelID(), r2.ModelID())

	id := r1.upload(t, sc.png).ID
	req := map[string]any{"points": [][2]float64{sc.object(t, 3).Point}, "format": "rle"}
	p1 := r1.predict(t, id, req)
	p2 := r2.predict(t, id, req)
	require.Equal(t, tierRedis, p2.Source)
	require.Equal(t, p1.Predictions, p2.Predictions, "the same masks from the shared embedding")

	// Refinement on r2 with a handle r1 gave: the logits are shared too.
	r3req := map[string]any{"points": [][2]float64{sc.object(t, 3).Point, sc.object(t, 5).Point}, "labels": []int{1, 0},
		"mask_input": p1.Predictions[0].Masks[p1.Predictions[0].Best].Logits, "multimask_output": false, "format": "rle"}
	require.Equal(t, r1.predict(t, id, r3req).Predictions, r2.predict(t, id, r3req).Predictions)

	// r2 forgets nothing it found in Redis: an upload is a memory hit; the
	// automatic mask generator finds the image bytes in Redis.
	require.Equal(t, tierMemory, r2.upload(t, sc.png).Source)
	code, b := r2.post(t, "/v1/images/"+id+"/auto", map[string]any{"points_per_side": 4})
	require.Equal(t, http.StatusOK, code, "%s", b)

	m2 := r2.scrape(t)
	require.EqualValues(t, 0, metricValue(m2, "sam_encoder_runs_total"), "r2 never ran its encoder")
	require.Positive(t, metricValue(m2, "sam_cache_hits_total", "tier", tierRedis))
	require.EqualValues(t, 0, metricValue(m2, "sam_cache_errors_total"))
	require.EqualValues(t, 1, metricValue(r1.scrape(t), "sam_encoder_runs_total"))

	code, b = do(t, "GET", r2.url+"/readyz", "", nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(b), `"redis":"ok"`)

	// Another model on the same Redis encodes for itself.
	r3 := newTestServer(t, otherModel(t), Options{Redis: url})
	require.Equal(t, "encoded", r3.upload(t, sc.png).Source)
	code, _ = do(t, "GET", r3.url+"/v1/images/"+strings.Repeat("0", 64), "", nil)
	require.Equal(t, http.StatusNotFound, code)
}
