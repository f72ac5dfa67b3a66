package main

import (
	"flag"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"regexp"
	"strconv"
)

// shardSpec is -shard i/n: this process encodes the i-th of n shards.
type shardSpec struct{ i, n int }

var shardRE = regexp.MustCompile(`^([0-9]+)/([0-9]+)$`)

// maxShards bounds n: past it a shard of any real corpus is empty.
const maxShards = 1 << 20

// parseShard reads "i/n" with 0 ≤ i < n, 1 ≤ n ≤ maxShards.
func parseShard(s string) (shardSpec, error) {
	m := shardRE.FindStringSubmatch(s)
	if m == nil {
		return shardSpec{}, fmt.Errorf("want i/n, the 0-based index i of n shards (0/4 … 3/4)")
	}
	i, err1 := strconv.Atoi(m[1])
	n, err2 := strconv.Atoi(m[2])
	if err2 != nil || n < 1 || n > maxShards {
		return shardSpec{}, fmt.Errorf("want i/n with n from 1 to %d", maxShards)
	}
	if err1 != nil || i >= n {
		return shardSpec{}, fmt.Errorf("want i/n with 0 ≤ i < n: 0/%d … %d/%d", n, n-1, n)
	}
	return shardSpec{i, n}, nil
}

func (s shardSpec) String() string { return fmt.Sprintf("%d/%d", s.i, s.n) }

// shardOf is the shard of an image: FNV-1a (64-bit) of its base name,
// mod n. The base name is what names its embedding in the output folder
// (unique there) and is the same on every machine, wherever the corpus
// is mounted; a hash rather than the index in the sorted list means that
// adding or removing an image moves no other image to another shard, so
// each shard finds its earlier work where it left it. The cost is a
// binomial spread of shard sizes (about ±√(N/n)) rather than exact equality.
func shardOf(image string, n int) int {
	h := fnv.New64a()
	h.Write([]byte(filepath.Base(image)))
	return int(h.Sum64() % uint64(n))
}

// selectShard returns the images (and their output names) of shard s, in
// their order.
func selectShard(images, names []string, s shardSpec) ([]string, []string) {
	var fs, ns []string
	for k, im := range images {
		if shardOf(im, s.n) == s.i {
			fs, ns = append(fs, im), append(ns, names[k])
		}
	}
	return fs, ns
}

// shardFlag is the -shard flag.
type shardFlag struct {
	spec *shardSpec
	set  bool
}

func (f *shardFlag) String() string {
	if f == nil || f.spec == nil || !f.set {
		return ""
	}
	return f.spec.String()
}

func (f *shardFlag) Set(v string) error {
	s, err := parseShard(v)
	if err != nil {
		return err
	}
	*f.spec, f.set = s, true
	return nil
}

func shardVar(fs *flag.FlagSet, f *shardFlag, usage string) {
	fs.Var(f, "shard", usage)
}

// manifestName is the manifest a run writes: manifest.jsonl, or with
// -shard i/n manifest-<i>-of-<n>.jsonl, so that n processes (on one
// machine or many, on a shared volume where appends from several writers
// are not atomic, as on NFS) never write to the same file. Resume reads
// them all (readManifests).
func manifestName(s *shardSpec) string {
	if s == nil {
		return embedManifest
	}
	return fmt.Sprintf("manifest-%d-of-%d.jsonl", s.i, s.n)
}
