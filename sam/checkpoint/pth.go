package checkpoint

import "fmt"

func parsePth(f *File, data []byte) error {
	return fmt.Errorf("%s: %w: .pth not implemented yet", f.Path, ErrFormat)
}
