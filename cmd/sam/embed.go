package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/npy"
)

func init() {
	register(&command{
		name: "embed",
		args: "-checkpoint F [-config C] -image I [-image I2 ... | -image DIR] -out E.safetensors|E.npy|DIR [-devices all|0,1|cpu|cpu:N] [-shard i/n] [-overwrite]",
		summary: "encode images. One image and -out E.safetensors writes the embedding with the image sizes and the model's identity, what " +
			"'predict -embedding' reads; -out E.npy writes only the (1,C,h,w) float32 features. Several images, a directory, or an -out that " +
			"is neither writes DIR/<image base name>.safetensors per image, sharded across -devices, and resumes: an embedding recorded in " +
			"DIR/manifest.jsonl as made by this encoder, precision and image is skipped; one made otherwise is refused unless -overwrite. " +
			"-shard i/n encodes only the i-th (0-based) of n shards of the images, for a batch job over many machines: an image's shard is " +
			"a hash of its file name mod n, the same on every machine and unmoved when images are added; n processes may share one -out " +
			"(shard i records in DIR/manifest-<i>-of-<n>.jsonl, and resume reads every manifest in DIR)",
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

// embedManifest is the record of what made each embedding of a folder.
const embedManifest = "manifest.jsonl"

func runEmbed(args []string, stdout, stderr io.Writer) error {
	c := commands["embed"]
	fs := newFlags(c, stderr)
	var mf modelFlags
	mf.register(fs)
	var images listFlag
	var out string
	fs.Var(&images, "image", "input image `FILE` (PNG, JPEG, GIF, BMP, TIFF, WebP) or a directory of them; repeatable")
	onceVar(fs, &out, "out", "", "`OUT`: E.safetensors (or E.npy, features only) for one image; otherwise a directory")
	devices := fs.String("devices", "", "devices: all | 0,1 | cpu | cpu:N (N virtual CPU devices); default -device. One image uses the first")
	workers := fs.Int("workers", 1, fmt.Sprintf("concurrent workers (streams) per device, 1…%d", maxWorkers))
	batch := fs.Int("batch", 0, fmt.Sprintf("images per encoder pass, 1…%d (default: sized from device memory; 1 on the CPU)", maxEncoderBatch))
	var shard shardSpec
	shardFl := &shardFlag{spec: &shard}
	shardVar(fs, shardFl, "encode only shard `i/n` of the images: those whose file name hashes to i mod n (0 ≤ i < n); n processes may write to one -out")
	overwrite := fs.Bool("overwrite", false, "re-encode images whose embedding in the output folder another encoder, precision or image made (otherwise refused), and those already done")
	var budget budgetFlag
	budget.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(images) == 0 || out == "" {
		return usageErr(fs, "-image and -out are required")
	}
	if err := intRange(fs, "workers", *workers, 1, maxWorkers); err != nil {
		return err
	}
	if setFlags(fs)["batch"] {
		if err := intRange(fs, "batch", *batch, 1, maxEncoderBatch); err != nil {
			return err
		}
	}
	if err := budget.resolve(fs); err != nil {
		return err
	}
	lopts, err := mf.loadOptions()
	if err != nil {
		return err
	}
	if *devices == "" {
		*devices = mf.device
	}
	devs, err := sam.ParseDevices(*devices)
	if err != nil {
		return usageErr(fs, "-%v", err)
	}
	files, fromDir, err := expandImages(images)
	if err != nil {
		return err
	}
	file := strings.HasSuffix(out, ".npy") || strings.HasSuffix(out, ".safetensors")
	var sh *shardSpec
	if shardFl.set {
		if file {
			return usageErr(fs, "-shard: -out is a directory (shards write DIR/<name>.safetensors side by side), not %s", out)
		}
		// Collisions are checked over all the images, so that every shard
		// refuses the same ones (two shards must never write one name).
		names, err := outputNames(files, ".safetensors")
		if err != nil {
			return err
		}
		total := len(files)
		files, _ = selectShard(files, names, shard)
		sh = &shard
		fmt.Fprintf(stderr, "sam embed: shard %s: %d of %d images\n", shard, len(files), total)
		if len(files) == 0 {
			if err := checkWritable(out); err != nil {
				return err
			}
			return writeJSON(stdout, map[string]any{"images": []embedRecord{}, "shard": shard.String(), "images_total": total})
		}
	}
	if len(files) == 1 && !fromDir && file {
		if len(devs) > 1 {
			fmt.Fprintf(stderr, "sam embed: one image: encoding it on %s\n", devs[0])
		}
		return embedOne(&mf, lopts, devs[0], files[0], out, stdout, stderr)
	}
	if file {
		return fmt.Errorf("-out %s: with %d images -out is a directory", out, len(files))
	}
	return embedMany(&mf, lopts, files, out, devs, *workers, *batch, *overwrite, sh, &budget, stdout, stderr)
}

func embedOne(mf *modelFlags, lopts sam.LoadOptions, device, image, out string, stdout, stderr io.Writer) error {
	if err := checkWritable(filepath.Dir(out)); err != nil {
		return err
	}
	ctx, stop := notifyContext(context.Background())
	defer stop()
	t0 := time.Now()
	m, err := mf.loadWith(lopts, device, stderr)
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
	e, err := m.EncodeImage(ctx, img)
	if err != nil {
		return interrupted(ctx, err)
	}
	tEnc := time.Since(t1)
	if e.Model == "" {
		e.Model = m.EncoderIdentity()
	}
	if strings.HasSuffix(out, ".safetensors") {
		err = e.Save(out)
	} else {
		err = npy.WriteFile(out, e.Features, 1, e.C, e.G, e.G)
		fmt.Fprintf(stderr, "sam embed: note: %s holds the features only; 'predict -embedding' reads the .safetensors form (-out E.safetensors)\n", out)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "sam embed: %s → %s (%d×%d×%d) in %s (load %s)\n", image, out, e.C, e.G, e.G, tEnc.Round(time.Millisecond), tLoad.Round(time.Millisecond))
	return writeJSON(stdout, map[string]any{
		"image": image, "out": out, "shape": []int{1, e.C, e.G, e.G},
		"original_size": []int{e.OriginalH, e.OriginalW}, "input_size": []int{e.InputH, e.InputW},
		"device": m.Backend().Name(), "model": e.Model,
		"timings_ms": map[string]float64{"load": ms(tLoad), "encode": ms(tEnc)},
	})
}

// embedRecord is one image's line in the summary.
type embedRecord struct {
	Image   string `json:"image"`
	Out     string `json:"out,omitempty"`
	Worker  string `json:"worker,omitempty"`
	Skipped bool   `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`
}

func embedMany(mf *modelFlags, lopts sam.LoadOptions, files []string, outDir string, devs []string, workers, batch int, overwrite bool,
	shard *shardSpec, budget *budgetFlag, stdout, stderr io.Writer) error {
	names, err := outputNames(files, ".safetensors")
	if err != nil {
		return err
	}
	if err := checkWritable(outDir); err != nil {
		return err
	}
	info, err := sam.InspectWith(mf.checkpoint, lopts)
	if err != nil {
		return err
	}
	cfg := info.Config
	if err := budget.check(embedBytes(&cfg, devs, workers, batch), fmt.Sprintf("encoding with %d worker(s) on %s, batch %d", workers*len(devs), strings.Join(devs, ", "), max(batch, 1)),
		"use a smaller -batch or fewer -workers"); err != nil {
		return err
	}
	ctx, stop := notifyContext(context.Background())
	defer stop()

	t0 := time.Now()
	eng, encoderID, err := newEngine(mf, info, devs, workers, batch, stderr)
	if err != nil {
		return err
	}
	defer eng.Close()
	tLoad := time.Since(t0)
	cur := runRecord{Command: "embed", Model: encoderID, Options: map[string]any{"precision": mf.precision}, Checkpoint: mf.checkpoint, Version: versionString()}

	// Resume: embeddings recorded as made by this encoder, precision and
	// image are skipped; others are refused unless -overwrite.
	manifest, err := readManifests(outDir)
	if err != nil {
		return err
	}
	records := make([]embedRecord, len(files))
	var todo []int
	var conflicts []conflict
	for i, f := range files {
		records[i] = embedRecord{Image: f}
		path := filepath.Join(outDir, names[i])
		if _, err := os.Stat(path); err != nil || overwrite {
			todo = append(todo, i)
			continue
		}
		old, ok := manifest[names[i]]
		if !ok {
			conflicts = append(conflicts, conflict{path, "not in " + embedManifest + " or a shard's manifest (made by an older sam, or elsewhere)"})
			continue
		}
		sum, err := fileSHA256(f)
		if err != nil {
			return err
		}
		r := cur
		r.ImageSHA256 = sum
		if d := old.differs(&r); len(d) > 0 {
			conflicts = append(conflicts, conflict{path, strings.Join(d, "; ")})
			continue
		}
		records[i].Out, records[i].Skipped = path, true
	}
	if len(conflicts) > 0 {
		return conflictError(conflicts, "embedding(s)")
	}
	mname := manifestName(shard)
	mfile, err := os.OpenFile(filepath.Join(outDir, mname), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer mfile.Close()
	fmt.Fprintf(stderr, "sam embed: %d images (%d done earlier) on %s\n", len(files), len(files)-len(todo), strings.Join(devs, ", "))

	status := newStatusLine(stderr)
	sums := make([]string, len(files))
	failed, done := 0, 0
	t1 := time.Now()
	err = eng.EncodeStream(ctx, len(todo), func(_ context.Context, k int) (*imgproc.RGB, error) {
		i := todo[k]
		data, err := os.ReadFile(files[i])
		if err != nil {
			return nil, err
		}
		s := sha256.Sum256(data)
		sums[i] = hex.EncodeToString(s[:])
		return imgproc.Decode(bytes.NewReader(data))
	}, func(r sam.EncodeResult) {
		i := todo[r.Index]
		rec := embedRecord{Image: files[i], Worker: r.Worker}
		if r.Err == nil {
			path := filepath.Join(outDir, names[i])
			if r.Err = r.Embedding.Save(path); r.Err == nil {
				rec.Out = path
				line := manifestLine{runRecord: cur, Time: time.Now().UTC()}
				line.Model, line.Image, line.ImageSHA256, line.Out = r.Embedding.Model, files[i], sums[i], names[i]
				b, _ := json.Marshal(line)
				if _, err := mfile.Write(append(b, '\n')); err != nil {
					r.Err = fmt.Errorf("%s: %w", mname, err)
				}
			}
		}
		done++
		if r.Err != nil {
			rec.Error = r.Err.Error()
			failed++
			status.println("sam embed: %d/%d %s: failed: %v", done, len(todo), files[i], r.Err)
		} else if !status.term {
			status.println("sam embed: %d/%d %s → %s (%s)", done, len(todo), files[i], rec.Out, r.Worker)
		} else {
			status.draw(fmt.Sprintf("sam embed: %s %d/%d (%.2f/s)", bar(done, len(todo)), done, len(todo), perSecond(done, time.Since(t1))))
		}
		records[i] = rec
		if afterItem != nil {
			afterItem(done)
		}
	})
	status.done()
	stopped := ctx.Err() != nil
	if err != nil && !stopped {
		return err
	}
	el := time.Since(t1)
	stats := eng.Stats()
	for _, s := range stats {
		fmt.Fprintf(stderr, "sam embed: %-14s %4d images, %.2f images/s (busy %.1fs)%s\n", s.Worker, s.Images, s.PerSecond, s.BusySec, map[bool]string{true: ", retired: " + s.Retired}[s.Retired != ""])
	}
	encoded := done - failed
	summary := map[string]any{
		"images": records, "devices": devs, "workers": stats, "model": encoderID,
		"images_per_second": perSecond(encoded, el),
		"timings_ms":        map[string]float64{"load": ms(tLoad), "encode": ms(el)},
	}
	if shard != nil {
		summary["shard"] = shard.String()
	}
	if stopped {
		summary["interrupted"] = true
		fmt.Fprintf(stderr, "sam embed: interrupted: %d of %d image(s) encoded, %d done earlier, %d failed, %d not done; the same command resumes\n",
			encoded, len(files), len(files)-len(todo), failed, len(todo)-done)
	} else {
		fmt.Fprintf(stderr, "sam embed: %d images in %.1fs: %.2f images/s overall\n", encoded, el.Seconds(), perSecond(encoded, el))
	}
	if err := writeJSON(stdout, summary); err != nil {
		return err
	}
	if stopped {
		return errInterrupted
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d images failed", failed, len(todo))
	}
	return nil
}

// newEngine loads the model on every device (sam.NewEngine: GPUs whose
// free memory is short are skipped) and returns it with the encoder's
// identity, which the resume check needs before any image is encoded.
func newEngine(mf *modelFlags, info *sam.CheckpointInfo, devs []string, workers, batch int, stderr io.Writer) (*sam.Engine, string, error) {
	reportConfig(stderr, info.ConfigSource, info.Assumed)
	cfg := info.Config
	eng, err := sam.NewEngine(mf.checkpoint, sam.EngineOptions{Devices: devs, Config: &cfg, Precision: mf.precision,
		WorkersPerDevice: workers, MaxBatch: batch, Threads: mf.threads})
	if err != nil {
		return nil, "", err
	}
	return eng, eng.EncoderIdentity(), nil
}

// embedBytes estimates the host memory of an embed run: the weights, and
// per worker its queue of preprocessed inputs (twice its batch) and, on
// a CPU device, its encoder activations.
func embedBytes(cfg *sam.Config, devs []string, workers, batch int) int64 {
	S := int64(cfg.ImgSize)
	need := cfg.WeightBytes(4)
	for _, d := range devs {
		k, _, _ := nn.ParseDevice(d)
		b := int64(batch)
		if b == 0 {
			b = 8 // the engine's most on a GPU
			if k == "cpu" {
				b = 1
			}
		}
		per := 2 * b * S * S * 3 * 4
		if k == "cpu" {
			per += b * cfg.EncoderBytesPerImage(4)
		}
		need += int64(workers) * per
	}
	return need
}

// manifestLine is one line of a manifest: the run record and when it was
// written, which orders the records of one embedding found in several
// manifests (a sharded run after a plain one, or -overwrite).
type manifestLine struct {
	runRecord
	Time time.Time `json:"time,omitzero"`
}

// readManifests reads the folder's manifests: manifest.jsonl and every
// shard's manifest-<i>-of-<n>.jsonl. For each file the latest record
// wins: by its time, and among records of equal time (older ones have
// none) the later in the file, manifest.jsonl before the shards'. A line
// that does not parse (cut by a crash) is ignored.
func readManifests(dir string) (map[string]*runRecord, error) {
	paths := []string{filepath.Join(dir, embedManifest)}
	shards, err := filepath.Glob(filepath.Join(dir, "manifest-*-of-*.jsonl"))
	if err != nil {
		return nil, err
	}
	sort.Strings(shards)
	paths = append(paths, shards...)
	out := map[string]*runRecord{}
	when := map[string]time.Time{}
	for _, p := range paths {
		if err := readManifest(p, out, when); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readManifest adds one manifest's records to out.
func readManifest(path string, out map[string]*runRecord, when map[string]time.Time) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		var r manifestLine
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.Out == "" {
			continue
		}
		if t, ok := when[r.Out]; ok && r.Time.Before(t) {
			continue
		}
		out[r.Out], when[r.Out] = &r.runRecord, r.Time
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// perSecond is n/d, 0 for no time (JSON has no NaN).
func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
