package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/npy"
)

func init() {
	register(&command{
		name:    "embed",
		args:    "-checkpoint F [-config C] -image I -out E.npy",
		summary: "encode an image; write the (1,C,h,w) float32 embedding (.npy, or .safetensors with the image sizes for 'predict -embedding')",
		run:     runEmbed,
	})
}

func runEmbed(args []string, stdout, stderr io.Writer) error {
	c := commands["embed"]
	fs := newFlags(c, stderr)
	var mf modelFlags
	mf.register(fs)
	image := fs.String("image", "", "input image (PNG, JPEG, GIF, BMP, TIFF, WebP)")
	out := fs.String("out", "", "output file: .npy (the embedding) or .safetensors (embedding + sizes)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *image == "" || *out == "" {
		return usageErr(fs, "-image and -out are required")
	}
	t0 := time.Now()
	m, err := mf.load(fs, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	img, err := imgproc.Load(*image)
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
	if strings.HasSuffix(*out, ".safetensors") {
		err = e.Save(*out)
	} else {
		err = npy.WriteFile(*out, e.Features, 1, e.C, e.G, e.G)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "sam embed: %s → %s (%d×%d×%d) in %s (load %s)\n", *image, *out, e.C, e.G, e.G, tEnc.Round(time.Millisecond), tLoad.Round(time.Millisecond))
	return writeJSON(stdout, map[string]any{
		"image": *image, "out": *out, "shape": []int{1, e.C, e.G, e.G},
		"original_size": []int{e.OriginalH, e.OriginalW}, "input_size": []int{e.InputH, e.InputW},
		"device":     m.Backend().Name(),
		"timings_ms": map[string]float64{"load": ms(tLoad), "encode": ms(tEnc)},
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
