package checkpoint

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNameHashPrefix(t *testing.T) {
	tests := []struct{ path, want string }{
		{"sam_vit_b_01ec64.pth", "01ec64"},
		{"/models/sam_vit_l_0b3195.pth", "0b3195"},
		{"sam_vit_h_4B8939.pth", "4b8939"},
		{"resnet18-f37072fd.pth", "f37072fd"}, // torch.hub style
		{"sam_vit_b.pth", ""},
		{"sam_vit_b_01ec6.pth", ""}, // 5 digits: too short
		{"sam_vit_b_01ec6g.pth", ""},
		{"model.safetensors", ""},
		{"01ec64.pth", ""}, // no separator
		{"x_" + strings.Repeat("a", 65) + ".pth", ""},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, NameHashPrefix(tc.path), tc.path)
	}
}

func TestNamePrefixCheck(t *testing.T) {
	dir := t.TempDir()
	content := []byte("not really a checkpoint\n")
	digest := sha256.Sum256(content)
	sum := hex.EncodeToString(digest[:])
	write := func(name string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, content, 0o644))
		return p
	}
	wrong := "000000"
	if strings.HasPrefix(sum, wrong) {
		wrong = "111111"
	}

	tests := []struct {
		name       string
		file       string
		wantPrefix string
		wantOK     bool
		wantSum    string
	}{
		{"matching prefix", "sam_vit_x_" + sum[:6] + ".pth", sum[:6], true, sum},
		{"upper-case prefix", "sam_vit_x_" + strings.ToUpper(sum[:10]) + ".pth", sum[:10], true, sum},
		{"wrong prefix", "sam_vit_x_" + wrong + ".pth", wrong, false, sum},
		{"no prefix: nothing to check", "model.pth", "", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefix, ok, got, err := NamePrefixCheck(write(tc.file))
			require.NoError(t, err)
			require.Equal(t, tc.wantPrefix, prefix)
			require.Equal(t, tc.wantOK, ok)
			require.Equal(t, tc.wantSum, got)
		})
	}

	t.Run("missing file", func(t *testing.T) {
		prefix, ok, _, err := NamePrefixCheck(filepath.Join(dir, "sam_vit_b_01ec64.pth"))
		require.ErrorIs(t, err, os.ErrNotExist)
		require.Equal(t, "01ec64", prefix)
		require.False(t, ok)
	})
	t.Run("empty file", func(t *testing.T) {
		p := filepath.Join(dir, "empty_e3b0c4.bin")
		require.NoError(t, os.WriteFile(p, nil, 0o644))
		prefix, ok, got, err := NamePrefixCheck(p)
		require.NoError(t, err)
		require.Equal(t, "e3b0c4", prefix)
		require.True(t, ok)
		require.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", got) // sha256("")
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := SHA256Context(ctx, write("c.pth"))
		require.ErrorIs(t, err, context.Canceled)
	})
}
