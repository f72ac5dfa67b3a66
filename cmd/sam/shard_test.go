package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam"
)

// Issue 9: shards partition the inputs: their union is every input, no
// two share one, the same on every call, and adding inputs moves none of
// the others.
func TestShardPartition(t *testing.T) {
	var images, names []string
	for k := range 200 {
		im := filepath.Join(fmt.Sprintf("/corpus/%d", k%3), fmt.Sprintf("img_%03d.png", k))
		images = append(images, im)
		names = append(names, fmt.Sprintf("img_%03d.safetensors", k))
	}
	for _, n := range []int{1, 2, 3, 7, 16} {
		seen := map[string]int{}
		for i := range n {
			fs, ns := selectShard(images, names, shardSpec{i, n})
			again, _ := selectShard(images, names, shardSpec{i, n})
			require.Equal(t, fs, again, "shard %d/%d: deterministic", i, n)
			require.Len(t, ns, len(fs))
			if n <= 7 {
				require.NotEmpty(t, fs, "shard %d/%d of 200", i, n)
			}
			for _, f := range fs {
				prev, dup := seen[f]
				require.False(t, dup, "%s in shards %d and %d of %d", f, prev, i, n)
				seen[f] = i
				// Only the base name counts: another mount point, same shard.
				require.Equal(t, i, shardOf(filepath.Join("/mnt/elsewhere", filepath.Base(f)), n))
			}
		}
		require.Len(t, seen, len(images), "n=%d: the union is every image", n)
		more := append([]string{"/corpus/aaa_new.png"}, images...)
		more = append(more, "/corpus/zzz_new.png")
		moreNames := append([]string{"aaa_new.safetensors"}, names...)
		moreNames = append(moreNames, "zzz_new.safetensors")
		for i := range n {
			fs, _ := selectShard(more, moreNames, shardSpec{i, n})
			for _, f := range fs {
				if prev, ok := seen[f]; ok {
					require.Equal(t, prev, i, "adding images moved %s", f)
				}
			}
		}
	}
	// Pinned values: the rule must not change between versions (a job
	// resumed with a newer sam would otherwise redo other shards' work).
	require.Equal(t, []int{shardOf("image_0.png", 4), shardOf("image_1.png", 4)}, []int{pinned("image_0.png", 4), pinned("image_1.png", 4)})
}

// pinned is FNV-1a 64 written out, for TestShardPartition.
func pinned(name string, n int) int {
	h := uint64(14695981039346656037)
	for _, c := range []byte(name) {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return int(h % uint64(n))
}

func TestShardBadValues(t *testing.T) {
	in := imageDir(t, nil)
	for _, v := range []string{"3/3", "-1/2", "1/0", "0/0", "x", "", "1", "1/2/3", "a/b", " 0/2", "0/2x", "0/99999999999999999999"} {
		code, _, stderr := samCLI("embed", "-checkpoint", tinyCk, "-image", in, "-out", t.TempDir(), "-shard", v)
		require.Equal(t, 2, code, "-shard %q: %s", v, stderr)
		require.Contains(t, stderr, "-shard", v)
		require.Contains(t, stderr, "Usage: sam embed", v)
	}
	code, _, stderr := samCLI("embed", "-checkpoint", tinyCk, "-image", in, "-out", filepath.Join(t.TempDir(), "e.safetensors"), "-shard", "0/2")
	require.Equal(t, 2, code, stderr)
	require.Contains(t, stderr, "-out is a directory")

	// A shard with no images (more shards than images) succeeds, empty.
	files := []string{filepath.Join(in, "image_0.png"), filepath.Join(in, "image_1.png")}
	n := 64
	empty := -1
	for i := range n {
		if shardOf(files[0], n) != i && shardOf(files[1], n) != i {
			empty = i
			break
		}
	}
	code, stdout, stderr := samCLI("embed", "-checkpoint", tinyCk, "-image", in, "-out", t.TempDir(), "-shard", fmt.Sprintf("%d/%d", empty, n))
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "0 of 2 images")
	var sum struct {
		Images []embedRecord
		Shard  string
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &sum))
	require.Empty(t, sum.Images)
	require.Equal(t, fmt.Sprintf("%d/%d", empty, n), sum.Shard)
}

// TestShardHelperProcess is sam itself when SAM_SHARD_HELPER holds its
// arguments (as JSON): what TestEmbedShardsConcurrently runs as separate
// processes.
func TestShardHelperProcess(t *testing.T) {
	a := os.Getenv("SAM_SHARD_HELPER")
	if a == "" {
		t.Skip("a helper, run by TestEmbedShardsConcurrently")
	}
	var args []string
	if err := json.Unmarshal([]byte(a), &args); err != nil {
		os.Exit(3)
	}
	os.Exit(run(args, os.Stdout, os.Stderr))
}

type shardSummary struct {
	Images []embedRecord
	Shard  string
}

// Issue 9: two shards run at once, as two processes, into one folder
// give every embedding, each shard's record in its own manifest, and a
// resume (by a shard or by a plain run) that skips all of them; a plain
// run's records and a later sharded -overwrite are ordered by time.
func TestEmbedShardsConcurrently(t *testing.T) {
	src := imageDir(t, nil)
	in := t.TempDir()
	var all []string
	for k, name := range []string{"apple", "banana", "cherry", "damson", "elder", "fig"} {
		data, err := os.ReadFile(filepath.Join(src, fmt.Sprintf("image_%d.png", k%2)))
		require.NoError(t, err)
		// A different file each: a byte after the PNG's IEND chunk, which
		// decoders ignore, changes its sha256.
		data = append(data, byte(k))
		require.NoError(t, os.WriteFile(filepath.Join(in, name+".png"), data, 0o644))
		all = append(all, name+".safetensors")
	}
	out := filepath.Join(t.TempDir(), "emb")
	const n = 2
	cmds := make([]*exec.Cmd, n)
	outs := make([]*bytes.Buffer, n)
	errs := make([]*bytes.Buffer, n)
	for i := range n {
		args, _ := json.Marshal([]string{"embed", "-checkpoint", tinyCk, "-image", in, "-out", out, "-shard", fmt.Sprintf("%d/%d", i, n)})
		cmds[i] = exec.Command(os.Args[0], "-test.run=^TestShardHelperProcess$", "-test.count=1")
		cmds[i].Env = append(os.Environ(), "SAM_SHARD_HELPER="+string(args))
		outs[i], errs[i] = &bytes.Buffer{}, &bytes.Buffer{}
		cmds[i].Stdout, cmds[i].Stderr = outs[i], errs[i]
		require.NoError(t, cmds[i].Start())
	}
	var union []string
	for i := range n {
		require.NoError(t, cmds[i].Wait(), "shard %d: %s", i, errs[i])
		var s shardSummary
		require.NoError(t, json.Unmarshal(outs[i].Bytes(), &s), outs[i].String())
		require.Equal(t, fmt.Sprintf("%d/%d", i, n), s.Shard)
		require.NotEmpty(t, s.Images, "shard %d/%d of these six names is not empty", i, n)
		recorded := manifestOuts(t, filepath.Join(out, fmt.Sprintf("manifest-%d-of-%d.jsonl", i, n)))
		var mine []string
		for _, im := range s.Images {
			require.Empty(t, im.Error)
			require.False(t, im.Skipped)
			require.Equal(t, i, shardOf(im.Image, n))
			mine = append(mine, filepath.Base(im.Out))
		}
		sort.Strings(mine)
		require.Equal(t, mine, recorded, "shard %d's manifest lists its embeddings", i)
		union = append(union, mine...)
	}
	sort.Strings(union)
	require.Equal(t, all, union, "the shards together encode every image once")
	require.NoFileExists(t, filepath.Join(out, embedManifest))
	for _, name := range all {
		e, err := sam.LoadEmbedding(filepath.Join(out, name))
		require.NoError(t, err)
		require.NotEmpty(t, e.Model)
	}

	// Resume: a shard again, and a plain run, skip everything.
	for _, args := range [][]string{{"-shard", "0/2"}, {"-shard", "1/2"}, {}} {
		code, stdout, stderr := samCLI(append([]string{"embed", "-checkpoint", tinyCk, "-image", in, "-out", out}, args...)...)
		require.Equal(t, 0, code, stderr)
		var s shardSummary
		require.NoError(t, json.Unmarshal([]byte(stdout), &s))
		for _, im := range s.Images {
			require.True(t, im.Skipped, "%v: %s", args, im.Image)
		}
	}
	// Another model is refused by a shard too (it reads every manifest)...
	code, _, stderr := samCLI("embed", "-checkpoint", smallCk, "-image", in, "-out", out, "-shard", "1/2")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "-overwrite")
	// ... and after a sharded -overwrite, the newer records win over the
	// older ones in the other manifest: that shard's images are skipped
	// for the new model and refused for the old one.
	code, _, stderr = samCLI("embed", "-checkpoint", smallCk, "-image", in, "-out", out, "-shard", "1/2", "-overwrite")
	require.Equal(t, 0, code, stderr)
	code, stdout, stderr := samCLI("embed", "-checkpoint", smallCk, "-image", in, "-out", out, "-shard", "1/2")
	require.Equal(t, 0, code, stderr)
	var s shardSummary
	require.NoError(t, json.Unmarshal([]byte(stdout), &s))
	for _, im := range s.Images {
		require.True(t, im.Skipped, im.Image)
	}
	code, _, stderr = samCLI("embed", "-checkpoint", tinyCk, "-image", in, "-out", out, "-shard", "1/2")
	require.Equal(t, 1, code, stderr)
	code, _, stderr = samCLI("embed", "-checkpoint", tinyCk, "-image", in, "-out", out, "-shard", "0/2")
	require.Equal(t, 0, code, stderr)
}

// manifestOuts lists the embeddings a manifest records, sorted.
func manifestOuts(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var outs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l manifestLine
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), sc.Text())
		require.False(t, l.Time.IsZero())
		require.Equal(t, "embed", l.Command)
		outs = append(outs, l.Out)
	}
	require.NoError(t, sc.Err())
	sort.Strings(outs)
	return outs
}
