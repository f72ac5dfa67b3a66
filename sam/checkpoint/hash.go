package checkpoint

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Official SAM checkpoints carry the start of their SHA-256 in their name:
// sam_vit_b_01ec64.pth, sam_vit_l_0b3195.pth, sam_vit_h_4b8939.pth (the same
// idea as torch.hub's "<name>-<sha256 prefix>.pth" with check_hash=True). A
// mismatch means a corrupt or partial download, or a renamed file.

// minNameHex is the shortest trailing hex run taken as a hash prefix; the
// official names use 6.
const minNameHex = 6

// NameHashPrefix returns the lower-case hash prefix in a checkpoint's file
// name: the hex digits after the last '_' (or '-') of the base name, its
// extension removed, if there are 6 to 64 of them; "" if there is none.
func NameHashPrefix(path string) string {
	base := filepath.Base(path)
	base = strings.TrimSuffix(base, filepath.Ext(base))
	i := strings.LastIndexAny(base, "_-")
	if i < 0 {
		return ""
	}
	tail := base[i+1:]
	if len(tail) < minNameHex || len(tail) > 2*sha256.Size {
		return ""
	}
	for _, c := range tail {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return ""
		}
	}
	return strings.ToLower(tail)
}

// SHA256 returns the lower-case hex SHA-256 of the file at path, read as a
// stream (a ViT-H checkpoint is 2.5 GB).
func SHA256(path string) (string, error) { return SHA256Context(context.Background(), path) }

// SHA256Context is SHA256 that stops early when ctx is cancelled.
func SHA256Context(ctx context.Context, path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("sha256: %w", err)
	}
	defer fh.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("sha256 %s: %w", path, err)
		}
		n, err := fh.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("sha256: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// NamePrefixCheck compares the hash prefix in path's name (see
// NameHashPrefix) with the file's SHA-256. prefix == "" means the name has
// no prefix and there is nothing to check: the file is not read, ok is false
// and sum is "". Otherwise sum is the full digest and ok tells whether it
// starts with prefix. A name that merely ends in something hex-looking
// (model_20230405.pth) fails the check, so callers should warn on !ok rather
// than refuse the file.
func NamePrefixCheck(path string) (prefix string, ok bool, sum string, err error) {
	prefix = NameHashPrefix(path)
	if prefix == "" {
		return "", false, "", nil
	}
	sum, err = SHA256(path)
	if err != nil {
		return prefix, false, "", err
	}
	return prefix, strings.HasPrefix(sum, prefix), sum, nil
}
