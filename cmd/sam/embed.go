package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/npy"
)

func init() {
	register(&command{
		name: "embed",
		args: "-checkpoint F [-config C] -image I [-image I2 ... | -image DIR] -out E.npy|DIR [-devices all|0,1|cpu|cpu:N]",
		summary: "encode images; one image writes the (1,C,h,w) float32 embedding to -out (.npy, or .safetensors with the image sizes " +
			"for 'predict -embedding'); several images or a directory write <image base name>.npy per image into the -out directory, " +
			"sharded across -devices",
		run: runEmbed,
	})
}

// imageExts are the file types -image DIR picks up.
var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".gif": true, ".bmp": true, ".tif": true, ".tiff": true, ".webp": true}

// expandImages turns -image values (files or directories) into files.
func expandImages(args []string) ([]string, bool, error) {
	var out []string
	dir := false
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, false, err
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		dir = true
		ents, err := os.ReadDir(a)
		if err != nil {
			return nil, false, err
		}
		var names []string
		for _, e := range ents {
			if !e.IsDir() && imageExts[strings.ToLower(filepath.Ext(e.Name()))] {
				names = append(names, filepath.Join(a, e.Name()))
			}
		}
		sort.Strings(names)
		if len(names) == 0 {
			return nil, false, fmt.Errorf("%s: no images (%s)", a, "png, jpg, gif, bmp, tiff, webp")
		}
		out = append(out, names...)
	}
	return out, dir, nil
}

// outputNames maps each image to <base name><ext>, refusing collisions.
func outputNames(images []string, ext string) ([]string, error) {
	seen := map[string]string{}
	out := make([]string, len(images))
	for i, p := range images {
		b := filepath.Base(p)
		name := strings.TrimSuffix(b, filepath.Ext(b)) + ext
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("%s and %s would both be written to %s", prev, p, name)
		}
		seen[name] = p
		out[i] = name
	}
	return out, nil
}

func runEmbed(args []string, stdout, stderr io.Writer) error {
	c := commands["embed"]
	fs := newFlags(c, stderr)
	var mf modelFlags
	mf.register(fs)
	var images listFlag
	fs.Var(&images, "image", "input image (PNG, JPEG, GIF, BMP, TIFF, WebP) or a directory of them; repeatable")
	out := fs.String("out", "", "output: a .npy/.safetensors file for one image, a directory for several")
	devices := fs.String("devices", "", "devices for several images: all | 0,1 | cpu | cpu:N (N virtual CPU devices); default -device")
	workers := fs.Int("workers", 1, "concurrent workers (streams) per device")
	batch := fs.Int("batch", 0, "images per encoder pass (0: sized from device memory; 1 on the CPU)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(images) == 0 || *out == "" {
		return usageErr(fs, "-image and -out are required")
	}
	files, fromDir, err := expandImages(images)
	if err != nil {
		return err
	}
	if len(files) == 1 && !fromDir {
		if *devices != "" {
			mf.device = *devices
		}
		return embedOne(&mf, fs, files[0], *out, stdout, stderr)
	}
	return embedMany(&mf, fs, files, *out, *devices, *workers, *batch, stdout, stderr)
}

func embedOne(mf *modelFlags, fs *flag.FlagSet, image, out string, stdout, stderr io.Writer) error {
	t0 := time.Now()
	m, err := mf.load(fs, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	img, err := imgproc.Load(image)
	if err != nil {
		return err
	}
	tLoad := time.Since(t0)
	t1 := time.Now()
	e, err := m.EncodeImage(context.Background(), img)
	if err != nil {
		return err
	}
	tEnc := time.Since(t1)
	if err := writeEmbedding(out, e); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "sam embed: %s → %s (%d×%d×%d) in %s (load %s)\n", image, out, e.C, e.G, e.G, tEnc.Round(time.Millisecond), tLoad.Round(time.Millisecond))
	return writeJSON(stdout, map[string]any{
		"image": image, "out": out, "shape": []int{1, e.C, e.G, e.G},
		"original_size": []int{e.OriginalH, e.OriginalW}, "input_size": []int{e.InputH, e.InputW},
		"device":     m.Backend().Name(),
		"timings_ms": map[string]float64{"load": ms(tLoad), "encode": ms(tEnc)},
	})
}

// writeEmbedding writes .safetensors (with sizes) or .npy (features only).
func writeEmbedding(path string, e *sam.Embedding) error {
	if strings.HasSuffix(path, ".safetensors") {
		return e.Save(path)
	}
	return npy.WriteFile(path, e.Features, 1, e.C, e.G, e.G)
}

func embedMany(mf *modelFlags, fs *flag.FlagSet, files []string, outDir, devices string, workers, batch int, stdout, stderr io.Writer) error {
	if strings.HasSuffix(outDir, ".npy") || strings.HasSuffix(outDir, ".safetensors") {
		return fmt.Errorf("-out %s: with %d images -out is a directory", outDir, len(files))
	}
	names, err := outputNames(files, ".npy")
	if err != nil {
		return err
	}
	if devices == "" {
		devices = mf.device
	}
	devs, err := sam.ParseDevices(devices)
	if err != nil {
		return err
	}
	cfg, err := mf.checkpointConfig(fs, stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	t0 := time.Now()
	eng, err := sam.NewEngine(mf.checkpoint, sam.EngineOptions{Devices: devs, Config: cfg, Precision: mf.precision,
		WorkersPerDevice: workers, MaxBatch: batch, Threads: mf.threads})
	if err != nil {
		return err
	}
	defer eng.Close()
	tLoad := time.Since(t0)
	fmt.Fprintf(stderr, "sam embed: %d images on %s\n", len(files), strings.Join(devs, ", "))

	type record struct {
		Image  string `json:"image"`
		Out    string `json:"out,omitempty"`
		Worker string `json:"worker,omitempty"`
		Error  string `json:"error,omitempty"`
	}
	records := make([]record, len(files))
	prog := newProgress(stderr, "sam embed", len(files))
	failed := 0
	t1 := time.Now()
	err = eng.EncodeStream(context.Background(), len(files), func(_ context.Context, i int) (*imgproc.RGB, error) {
		return imgproc.Load(files[i])
	}, func(r sam.EncodeResult) {
		rec := record{Image: files[r.Index], Worker: r.Worker}
		if r.Err == nil {
			path := filepath.Join(outDir, names[r.Index])
			if r.Err = writeEmbedding(path, r.Embedding); r.Err == nil {
				rec.Out = path
			}
		}
		if r.Err != nil {
			rec.Error = r.Err.Error()
			failed++
			fmt.Fprintf(stderr, "sam embed: %s: %v\n", files[r.Index], r.Err)
		}
		records[r.Index] = rec
		prog.add(r.Err != nil)
	})
	if err != nil {
		return err
	}
	el := time.Since(t1)
	stats := eng.Stats()
	for _, s := range stats {
		fmt.Fprintf(stderr, "sam embed: %-14s %4d images, %.2f images/s (busy %.1fs)%s\n", s.Worker, s.Images, s.PerSecond, s.BusySec, map[bool]string{true: ", retired: " + s.Retired}[s.Retired != ""])
	}
	fmt.Fprintf(stderr, "sam embed: %d images in %.1fs: %.2f images/s overall\n", len(files)-failed, el.Seconds(), float64(len(files)-failed)/el.Seconds())
	if err := writeJSON(stdout, map[string]any{
		"images": records, "devices": devs, "workers": stats,
		"images_per_second": float64(len(files)-failed) / el.Seconds(),
		"timings_ms":        map[string]float64{"load": ms(tLoad), "encode": ms(el)},
	}); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d images failed", failed, len(files))
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
