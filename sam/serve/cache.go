package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/atomicfile"
)

// Cache tiers, as the metrics and the responses name them.
const (
	tierMemory = "memory"
	tierDisk   = "disk"
	tierRedis  = "redis"
)

// cache holds what the server computed or was sent, in up to three tiers
// looked up in order: memory (an LRU bounded by bytes), disk (a folder
// that survives restarts, also bounded) and Redis (shared by replicas).
// A hit in a lower tier is copied into the tiers above it.
//
// It holds three kinds of value:
//   - embeddings, under the model's encoder identity and the image's
//     sha256 (an embedding is only valid for the encoder that made it);
//   - the uploaded image bytes, under their sha256, for the automatic
//     mask generator, which takes the whole image's embedding from the
//     cache and encodes the crops of later layers itself;
//   - low-res logits that a prediction returned, under a handle the client
//     passes back as mask_input to refine (a separate, smaller LRU).
//
// Lower tiers are a help, not a need: a disk or Redis error is logged and
// counted, and the lookup goes on as a miss.
type cache struct {
	mem    *lru
	logits *lru
	disk   *diskTier  // nil: no disk tier
	redis  *redisTier // nil: no Redis
	met    *metrics
	log    *slog.Logger
}

// memEmbeddingOverhead is what an in-memory embedding holds besides its
// features (the struct, the map entry), as counted against the bound.
const memEmbeddingOverhead = 256

// embeddingBytes is what e holds in memory.
func embeddingBytes(e *sam.Embedding) int64 { return int64(4*len(e.Features)) + memEmbeddingOverhead }

func embKey(model, sha string) string { return "emb/" + model + "/" + sha }
func imgKey(sha string) string        { return "img/" + sha }

// embedding looks the embedding of image sha for encoder model up in
// every tier and says where it was found ("" and nil: nowhere). Only a
// cancelled ctx is an error.
func (c *cache) embedding(ctx context.Context, model, sha string) (*sam.Embedding, string, error) {
	if v, ok := c.mem.get(embKey(model, sha)); ok {
		c.met.cacheHit(tierMemory)
		return v.(*sam.Embedding), tierMemory, nil
	}
	c.met.cacheMiss(tierMemory)
	if c.disk != nil {
		e, err := c.disk.embedding(model, sha)
		switch {
		case err == nil:
			c.met.cacheHit(tierDisk)
			c.putMem(embKey(model, sha), e, embeddingBytes(e))
			return e, tierDisk, nil
		case errors.Is(err, fs.ErrNotExist):
			c.met.cacheMiss(tierDisk)
		default:
			c.tierError(tierDisk, "read embedding", err)
		}
	}
	if c.redis != nil {
		e, err := c.redis.embedding(ctx, model, sha)
		switch {
		case err == nil && e != nil:
			c.met.cacheHit(tierRedis)
			c.putMem(embKey(model, sha), e, embeddingBytes(e))
			if c.disk != nil {
				if err := c.disk.putEmbedding(model, sha, e); err != nil {
					c.tierError(tierDisk, "write embedding", err)
				}
			}
			return e, tierRedis, nil
		case err == nil:
			c.met.cacheMiss(tierRedis)
		case ctx.Err() != nil:
			return nil, "", ctx.Err()
		default:
			c.tierError(tierRedis, "read embedding", err)
		}
	}
	return nil, "", nil
}

// putEmbedding stores e in every tier.
func (c *cache) putEmbedding(ctx context.Context, model, sha string, e *sam.Embedding) {
	c.putMem(embKey(model, sha), e, embeddingBytes(e))
	if c.disk != nil {
		if err := c.disk.putEmbedding(model, sha, e); err != nil {
			c.tierError(tierDisk, "write embedding", err)
		}
	}
	if c.redis != nil {
		if err := c.redis.putEmbedding(ctx, model, sha, e); err != nil {
			c.tierError(tierRedis, "write embedding", err)
		}
	}
}

// image returns the bytes of image sha, or nil when no tier has them.
func (c *cache) image(ctx context.Context, sha string) ([]byte, error) {
	if v, ok := c.mem.get(imgKey(sha)); ok {
		return v.([]byte), nil
	}
	if c.disk != nil {
		b, err := c.disk.image(sha)
		if err == nil {
			c.putMem(imgKey(sha), b, int64(len(b)))
			return b, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			c.tierError(tierDisk, "read image", err)
		}
	}
	if c.redis != nil {
		b, err := c.redis.image(ctx, sha)
		switch {
		case err == nil && b != nil:
			c.putMem(imgKey(sha), b, int64(len(b)))
			return b, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			c.tierError(tierRedis, "read image", err)
		}
	}
	return nil, nil
}

// hasImage reports whether the memory tier holds image sha (lower tiers
// are not asked: storing it again there is harmless).
func (c *cache) hasImage(sha string) bool {
	_, ok := c.mem.get(imgKey(sha))
	return ok
}

// putImage stores the image bytes in every tier.
func (c *cache) putImage(ctx context.Context, sha string, data []byte) {
	c.putMem(imgKey(sha), data, int64(len(data)))
	if c.disk != nil {
		if err := c.disk.putImage(sha, data); err != nil {
			c.tierError(tierDisk, "write image", err)
		}
	}
	if c.redis != nil {
		if err := c.redis.putImage(ctx, sha, data); err != nil {
			c.tierError(tierRedis, "write image", err)
		}
	}
}

func (c *cache) putMem(key string, v any, size int64) {
	if !c.mem.add(key, v, size) {
		c.log.Warn("cache: value larger than the whole memory cache, not kept", "key", key, "bytes", size)
	}
}

func (c *cache) tierError(tier, what string, err error) {
	c.met.cacheErrors.WithLabelValues(tier).Inc()
	c.log.Warn("cache tier error", "tier", tier, "op", what, "err", err)
}

// lowRes is one low-res logit plane (LowRes×LowRes, row-major) kept for
// refinement, with the image and encoder it belongs to.
type lowRes struct {
	model, image string
	size         int
	logits       []float32
}

// logitsHandle names a low-res plane by its content: the same answer on
// two replicas has the same handle.
func logitsHandle(l *lowRes) string {
	h := sha256.New()
	io.WriteString(h, l.model+"\x00"+l.image+"\x00")
	binary.Write(h, binary.LittleEndian, l.logits)
	return "lr_" + hex.EncodeToString(h.Sum(nil))[:32]
}

// putLogits keeps the planes under their handles (logitsHandle).
func (c *cache) putLogits(ctx context.Context, handles []string, planes []*lowRes) {
	for i, l := range planes {
		c.logits.add(handles[i], l, int64(4*len(l.logits))+128)
	}
	if c.redis != nil {
		if err := c.redis.putLogits(ctx, handles, planes); err != nil {
			c.tierError(tierRedis, "write logits", err)
		}
	}
}

// lowRes returns the plane under handle, or nil.
func (c *cache) lowRes(ctx context.Context, handle string) (*lowRes, error) {
	if v, ok := c.logits.get(handle); ok {
		return v.(*lowRes), nil
	}
	if c.redis == nil {
		return nil, nil
	}
	l, err := c.redis.lowRes(ctx, handle)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		c.tierError(tierRedis, "read logits", err)
		return nil, nil
	}
	if l != nil {
		c.logits.add(handle, l, int64(4*len(l.logits))+128)
	}
	return l, nil
}

// encodeLowRes serialises a plane for Redis: "samgo-lowres/1\n", the
// model, the image and the side as text lines, then the float32 values
// (little-endian).
func encodeLowRes(l *lowRes) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "samgo-lowres/1\n%s\n%s\n%d\n", l.model, l.image, l.size)
	binary.Write(&b, binary.LittleEndian, l.logits)
	return b.Bytes()
}

func decodeLowRes(data []byte) (*lowRes, error) {
	parts := bytes.SplitN(data, []byte("\n"), 5)
	if len(parts) != 5 || string(parts[0]) != "samgo-lowres/1" {
		return nil, errors.New("not a samgo-lowres/1 value")
	}
	n, err := strconv.Atoi(string(parts[3]))
	if err != nil || n <= 0 || n > 4096 || len(parts[4]) != 4*n*n {
		return nil, fmt.Errorf("low-res logits: bad size %q for %d bytes", parts[3], len(parts[4]))
	}
	v := make([]float32, n*n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(parts[4][4*i:]))
	}
	return &lowRes{model: string(parts[1]), image: string(parts[2]), size: n, logits: v}, nil
}

// diskTier keeps embeddings as the .safetensors files `sam embed` writes
// and images as their bytes, each written atomically (a temporary file
// renamed into place), in a folder bounded by bytes: the least recently
// used files are deleted past the bound. Layout:
//
//	DIR/embeddings/<encoder identity>/<image sha256>.safetensors
//	DIR/images/<image sha256>
type diskTier struct {
	dir   string
	index *lru // path → nil, sized by the file
}

func openDiskTier(dir string, maxBytes int64) (*diskTier, error) {
	for _, d := range []string{filepath.Join(dir, "embeddings"), filepath.Join(dir, "images")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("cache dir: %w", err)
		}
	}
	t := &diskTier{dir: dir, index: newLRU(maxBytes)}
	t.index.onEvict = func(path string, _ any) { os.Remove(path) }
	// What an earlier run left: oldest first, so the newest are the most
	// recently used. Temporary files of a run that died are removed.
	type file struct {
		path string
		size int64
		mod  int64
	}
	var files []file
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && strings.HasSuffix(d.Name(), ".tmp") {
			os.Remove(path)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // gone meanwhile
		}
		files = append(files, file{path, info.Size(), info.ModTime().UnixNano()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cache dir: %w", err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].mod < files[j].mod })
	for _, f := range files {
		if !t.index.add(f.path, nil, f.size) {
			os.Remove(f.path)
		}
	}
	return t, nil
}

// safeName keeps a key usable as a file name: identities and sha256s are
// hex, but a model identity comes from a checkpoint and is checked anyway.
func safeName(s string) (string, error) {
	if s == "" || len(s) > 128 || strings.Trim(s, "0123456789abcdefghijklmnopqrstuvwxyz_-") != "" {
		return "", fmt.Errorf("cache: %q is not a safe file name", s)
	}
	return s, nil
}

func (t *diskTier) embeddingPath(model, sha string) (string, error) {
	m, err := safeName(model)
	if err != nil {
		return "", err
	}
	s, err := safeName(sha)
	if err != nil {
		return "", err
	}
	return filepath.Join(t.dir, "embeddings", m, s+".safetensors"), nil
}

func (t *diskTier) embedding(model, sha string) (*sam.Embedding, error) {
	path, err := t.embeddingPath(model, sha)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	e, err := sam.LoadEmbedding(path)
	if err != nil {
		t.index.remove(path) // corrupt: drop it (onEvict deletes the file)
		return nil, err
	}
	t.index.get(path)
	return e, nil
}

func (t *diskTier) putEmbedding(model, sha string, e *sam.Embedding) error {
	path, err := t.embeddingPath(model, sha)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := e.Save(path); err != nil {
		return err
	}
	return t.track(path)
}

func (t *diskTier) imagePath(sha string) (string, error) {
	s, err := safeName(sha)
	if err != nil {
		return "", err
	}
	return filepath.Join(t.dir, "images", s), nil
}

func (t *diskTier) image(sha string) ([]byte, error) {
	path, err := t.imagePath(sha)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != sha {
		t.index.remove(path)
		return nil, fmt.Errorf("cache: %s does not hold the image it is named after", path)
	}
	t.index.get(path)
	return b, nil
}

func (t *diskTier) putImage(sha string, data []byte) error {
	path, err := t.imagePath(sha)
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); err == nil {
		t.index.get(path)
		return nil
	}
	if err := atomicfile.Write(path, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		return err
	}
	return t.track(path)
}

// track counts a file just written against the bound.
func (t *diskTier) track(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !t.index.add(path, nil, info.Size()) {
		os.Remove(path)
		return fmt.Errorf("cache: %s (%d bytes) is larger than the whole disk cache", path, info.Size())
	}
	return nil
}
