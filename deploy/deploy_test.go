package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

const root = ".." // the repository root, where the Dockerfiles' context is

var (
	buildOnce sync.Once
	samBin    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if samBin != "" {
		os.RemoveAll(filepath.Dir(samBin))
	}
	os.Exit(code)
}

// sam builds cmd/sam once per test binary.
func sam(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sam-deploy-test-")
		if err != nil {
			buildErr = err
			return
		}
		samBin = filepath.Join(dir, "sam")
		cmd := exec.Command("go", "build", "-o", samBin, "./cmd/sam")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New(string(out))
		}
	})
	require.NoError(t, buildErr)
	return samBin
}

var (
	flagMu    sync.Mutex
	flagCache = map[string]map[string]bool{}
	flagLine  = regexp.MustCompile(`(?m)^  -([A-Za-z0-9][A-Za-z0-9-]*)`)
)

// helpFlags are the flags `sam <command> -h` lists.
func helpFlags(t *testing.T, command string) map[string]bool {
	t.Helper()
	flagMu.Lock()
	defer flagMu.Unlock()
	if f, ok := flagCache[command]; ok {
		return f
	}
	var stderr bytes.Buffer
	cmd := exec.Command(sam(t), command, "-h")
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Run(), "sam %s -h: %s", command, stderr.String())
	f := map[string]bool{}
	for _, m := range flagLine.FindAllStringSubmatch(stderr.String(), -1) {
		f[m[1]] = true
	}
	flagCache[command] = f
	return f
}

// checkSamArgs checks that argv (after "sam") is a command whose every
// flag its -h lists; it returns the flags' values by name.
func checkSamArgs(t *testing.T, where string, argv []string) map[string]string {
	t.Helper()
	require.NotEmpty(t, argv, where)
	known := helpFlags(t, argv[0])
	vals := map[string]string{}
	for k := 1; k < len(argv); k++ {
		a := argv[k]
		require.True(t, strings.HasPrefix(a, "-"), "%s: sam %s: stray argument %q", where, argv[0], a)
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		require.True(t, known[name], "%s: sam %s has no flag -%s (sam %s -h)", where, argv[0], name, argv[0])
		if !hasVal && k+1 < len(argv) && !strings.HasPrefix(argv[k+1], "-") {
			k++
			val = argv[k]
		}
		vals[name] = val
	}
	return vals
}

// routes starts sam serve (the bundled demo model) and returns a function
// telling the status a GET of a path gets.
func routes(t *testing.T) func(path string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, sam(t), "serve", "-addr", "127.0.0.1:0")
	cmd.Dir = root
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`listening on (\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- strings.TrimSuffix(m[1], ";")
			}
		}
		close(addr)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	a, ok := <-addr
	require.True(t, ok, "sam serve did not start")
	return func(path string) int {
		resp, err := http.Get("http://" + a + path)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
}

// docs reads the YAML documents of a manifest.
func docs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var out []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, path)
		if d != nil {
			out = append(out, d)
		}
	}
	return out
}

// get walks a path of map keys and list indices.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func strs(v any) []string {
	var out []string
	for _, x := range asList(v) {
		out = append(out, toString(x))
	}
	return out
}

func asList(v any) []any { l, _ := v.([]any); return l }

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func kinds(ds []map[string]any) []string {
	var k []string
	for _, d := range ds {
		k = append(k, toString(d["kind"])+"/"+toString(get(d, "metadata", "name")))
	}
	return k
}

// samImage is an image built from deploy/Dockerfile*: its entrypoint is
// `sam serve`.
func samImage(image string) bool { return strings.HasPrefix(image, "samgo:") }

// samArgv is the sam command line of a container of a sam image.
func samArgv(t *testing.T, where string, c any) []string {
	cmd, args := strs(get(c, "command")), strs(get(c, "args"))
	switch {
	case len(cmd) == 0:
		return append([]string{"serve"}, args...) // the entrypoint
	case cmd[0] == "sam":
		return append(cmd[1:], args...)
	}
	t.Fatalf("%s: command %v: want sam (or none: the image's sam serve)", where, cmd)
	return nil
}

// probePaths are the HTTP paths of a container's probes.
func probePaths(c any) map[string]string {
	out := map[string]string{}
	for _, p := range []string{"readinessProbe", "livenessProbe", "startupProbe"} {
		if path := get(c, p, "httpGet", "path"); path != nil {
			out[p] = toString(path)
		}
	}
	return out
}

func TestServeManifest(t *testing.T) {
	ds := docs(t, "k8s/serve.yaml")
	require.Equal(t, []string{"Deployment/sam-serve", "Service/sam-serve", "Deployment/redis", "Service/redis"}, kinds(ds))
	status := routes(t)
	services := map[string]map[string]any{}
	deployments := map[string]map[string]any{}
	for _, d := range ds {
		require.NotEmpty(t, d["apiVersion"])
		switch d["kind"] {
		case "Service":
			services[toString(get(d, "metadata", "name"))] = d
		case "Deployment":
			deployments[toString(get(d, "metadata", "name"))] = d
		}
	}
	for name, d := range deployments {
		labels := get(d, "spec", "template", "metadata", "labels").(map[string]any)
		require.Equal(t, get(d, "spec", "selector", "matchLabels"), any(labels), "%s: the selector matches the pods", name)
		svc := services[name]
		require.NotNil(t, svc, "a Service for %s", name)
		for k, v := range get(svc, "spec", "selector").(map[string]any) {
			require.Equal(t, v, labels[k], "Service %s selects %s's pods", name, name)
		}
		c := get(d, "spec", "template", "spec", "containers", 0)
		ports := map[string]int{}
		for _, p := range asList(get(c, "ports")) {
			ports[toString(get(p, "name"))] = get(p, "containerPort").(int)
		}
		for _, p := range asList(get(svc, "spec", "ports")) {
			_, ok := ports[toString(get(p, "targetPort"))]
			require.True(t, ok, "Service %s: targetPort %v is a port of the container", name, get(p, "targetPort"))
		}
		if !samImage(toString(get(c, "image"))) {
			continue
		}
		vals := checkSamArgs(t, "k8s/serve.yaml "+name, samArgv(t, name, c))
		_, port, _ := strings.Cut(vals["addr"], ":")
		require.Equal(t, strconv.Itoa(ports["http"]), port, "-addr listens on the container's http port")
		require.NotContains(t, vals["addr"], "127.0.0.1", "-addr must answer beyond the pod")
		// -cache names the Redis Service and its port.
		m := regexp.MustCompile(`^redis://([^:/]+):(\d+)/\d+$`).FindStringSubmatch(vals["cache"])
		require.NotNil(t, m, "-cache %q", vals["cache"])
		rs := services[m[1]]
		require.NotNil(t, rs, "-cache %s: a Service of that name", vals["cache"])
		require.Equal(t, m[2], toString(get(rs, "spec", "ports", 0, "port")))
		probes := probePaths(c)
		require.Equal(t, "/readyz", probes["readinessProbe"])
		require.Equal(t, "/healthz", probes["livenessProbe"])
		for p, path := range probes {
			require.Equal(t, http.StatusOK, status(path), "%s %s: sam serve answers it", p, path)
			require.Equal(t, "http", toString(get(c, p, "httpGet", "port")))
		}
		require.NotNil(t, get(c, "resources", "requests", "memory"))
		require.NotNil(t, get(c, "resources", "limits", "memory"))
		grace := get(d, "spec", "template", "spec", "terminationGracePeriodSeconds").(int)
		drain, err := time.ParseDuration(vals["shutdown-timeout"])
		require.NoError(t, err)
		require.Greater(t, time.Duration(grace)*time.Second, drain, "the grace period outlasts the drain")
	}
}

func TestEmbedJob(t *testing.T) {
	ds := docs(t, "k8s/embed-job.yaml")
	require.Equal(t, []string{"Job/sam-embed"}, kinds(ds))
	j := ds[0]
	require.Equal(t, "batch/v1", j["apiVersion"])
	require.Equal(t, "Indexed", get(j, "spec", "completionMode"))
	completions := get(j, "spec", "completions").(int)
	require.LessOrEqual(t, get(j, "spec", "parallelism").(int), completions)
	c := get(j, "spec", "template", "spec", "containers", 0)
	argv := samArgv(t, "embed-job", c)
	require.Equal(t, "embed", argv[0])
	vals := checkSamArgs(t, "k8s/embed-job.yaml", argv)
	m := regexp.MustCompile(`^\$\(([A-Z_]+)\)/(\d+)$`).FindStringSubmatch(vals["shard"])
	require.NotNil(t, m, "-shard %q: want $(JOB_COMPLETION_INDEX)/N", vals["shard"])
	require.Equal(t, "JOB_COMPLETION_INDEX", m[1])
	require.Equal(t, strconv.Itoa(completions), m[2], "completions equals the n of -shard")
	var env []string
	for _, e := range asList(get(c, "env")) {
		env = append(env, toString(get(e, "name")))
		if get(e, "name") == "JOB_COMPLETION_INDEX" {
			require.Equal(t, "metadata.annotations['batch.kubernetes.io/job-completion-index']", get(e, "valueFrom", "fieldRef", "fieldPath"))
		}
	}
	require.Contains(t, env, "JOB_COMPLETION_INDEX")
	// -image and -out are on mounted volumes.
	var mounts []string
	for _, v := range asList(get(c, "volumeMounts")) {
		mounts = append(mounts, toString(get(v, "mountPath")))
	}
	for _, f := range []string{"image", "out", "checkpoint"} {
		require.True(t, slices.ContainsFunc(mounts, func(m string) bool { return strings.HasPrefix(vals[f], m+"/") }),
			"-%s %s is on a mounted volume (%v)", f, vals[f], mounts)
	}
	rp := get(j, "spec", "template", "spec", "restartPolicy")
	require.Contains(t, []any{"OnFailure", "Never"}, rp)
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct{ op, args string }

func dockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []instruction
	cur := ""
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		cur += trimmed
		op, args, _ := strings.Cut(cur, " ")
		out = append(out, instruction{strings.ToUpper(op), strings.TrimSpace(args)})
		cur = ""
	}
	require.Empty(t, cur, "%s ends in a continuation", path)
	return out
}

// makeTargets are the Makefile's targets.
func makeTargets(t *testing.T) map[string]bool {
	data, err := os.ReadFile(filepath.Join(root, "Makefile"))
	require.NoError(t, err)
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Za-z0-9_.-]+):`).FindAllStringSubmatch(string(data), -1) {
		out[m[1]] = true
	}
	return out
}

func TestDockerfiles(t *testing.T) {
	targets := makeTargets(t)
	status := routes(t)
	for _, name := range []string{"Dockerfile", "Dockerfile.cuda"} {
		t.Run(name, func(t *testing.T) {
			ins := dockerfile(t, name)
			stages := map[string]bool{}
			workdir := map[string]string{} // stage → its WORKDIR
			stage := ""
			var froms []string
			var entry, cmd []string
			var health string
			var user string
			makes := 0
			for _, in := range ins {
				switch in.op {
				case "FROM":
					f := strings.Fields(in.args)
					froms = append(froms, f[0])
					stage = ""
					if len(f) == 3 && strings.EqualFold(f[1], "AS") {
						stages[f[2]], stage = true, f[2]
					}
				case "WORKDIR":
					workdir[stage] = in.args
				case "RUN":
					for _, m := range regexp.MustCompile(`(?:^|&&|;|\|\|)\s*(?:[A-Za-z_]+=\S+\s+)*make((?:\s+[^\s&|;]+)+)`).FindAllStringSubmatch(in.args, -1) {
						for _, a := range strings.Fields(m[1]) {
							if strings.Contains(a, "=") || strings.HasPrefix(a, "-") {
								continue
							}
							a = strings.Trim(a, `"`)
							require.True(t, targets[a], "%s: make %s: no such Makefile target", name, a)
							makes++
						}
					}
					for _, m := range regexp.MustCompile(`\./bin/sam\s+(\w+)`).FindAllStringSubmatch(in.args, -1) {
						helpFlags(t, m[1])
					}
				case "COPY":
					f := strings.Fields(in.args)
					from := ""
					for len(f) > 0 && strings.HasPrefix(f[0], "--") {
						if v, ok := strings.CutPrefix(f[0], "--from="); ok {
							from = v
						}
						f = f[1:]
					}
					srcs := f[:len(f)-1]
					if from == "" {
						for _, s := range srcs {
							if s != "." {
								require.FileExists(t, filepath.Join(root, s), "%s: COPY %s", name, s)
							}
						}
						continue
					}
					if !stages[from] || workdir[from] != "/src" {
						continue // an image, or a stage that only provides a toolchain (golang's /usr/local/go)
					}
					for _, s := range srcs {
						rel, ok := strings.CutPrefix(s, "/src/")
						require.True(t, ok, "%s: COPY --from=%s %s: the build stage works in /src", name, from, s)
						if rel == "bin/sam" {
							require.Regexp(t, `(?m)^BIN\s*:=\s*bin/sam\s*$`, mustRead(t, filepath.Join(root, "Makefile")))
							continue
						}
						require.FileExists(t, filepath.Join(root, rel), "%s: COPY %s", name, s)
					}
				case "ENTRYPOINT":
					require.NoError(t, json.Unmarshal([]byte(in.args), &entry), "%s: ENTRYPOINT in exec form", name)
				case "CMD":
					require.NoError(t, json.Unmarshal([]byte(in.args), &cmd), "%s: CMD in exec form", name)
				case "HEALTHCHECK":
					m := regexp.MustCompile(`http://127\.0\.0\.1:(\d+)(/\S*)`).FindStringSubmatch(in.args)
					require.NotNil(t, m, "%s: HEALTHCHECK %s", name, in.args)
					health = m[2]
					require.Equal(t, "/healthz", health)
					require.Equal(t, http.StatusOK, status(health), "%s: HEALTHCHECK %s", name, health)
					health = m[1]
				case "USER":
					user = in.args
				}
			}
			require.Positive(t, makes, "%s builds with make", name)
			require.GreaterOrEqual(t, len(froms), 2, "%s is a multi-stage build", name)
			runtime := froms[len(froms)-1]
			require.NotEmpty(t, user, "%s: runs as a user", name)
			require.NotContains(t, []string{"root", "0", "0:0"}, user)
			require.Equal(t, []string{"sam", "serve"}, entry)
			vals := checkSamArgs(t, name+" ENTRYPOINT+CMD", append(entry[1:], cmd...))
			_, port, _ := strings.Cut(vals["addr"], ":")
			require.Equal(t, health, port, "%s: HEALTHCHECK asks the port of -addr", name)
			if name == "Dockerfile.cuda" {
				require.Contains(t, froms, "nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU}")
				require.Equal(t, "nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}", runtime)
				require.True(t, targets["cuda"])
				require.Equal(t, "cuda", vals["device"])
			} else {
				require.True(t, strings.HasPrefix(runtime, "debian:") && strings.HasSuffix(runtime, "-slim"), runtime)
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(data)
}

// The README's and the manifests' commands stay in step with the flags.
func TestReadmeCommands(t *testing.T) {
	text := mustRead(t, "README.md")
	re := regexp.MustCompile("(?m)^\\s*(?:bin/)?sam (embed|serve|predict|auto|info) ([^\\n`]*)")
	found := 0
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		argv := append([]string{m[1]}, strings.Fields(strings.SplitN(m[2], "#", 2)[0])...)
		var clean []string
		for _, a := range argv {
			if a == "\\" {
				continue
			}
			clean = append(clean, strings.Trim(a, `"'`))
		}
		checkSamArgs(t, "deploy/README.md", clean)
		found++
	}
	require.Positive(t, found)
	// docker run IMAGE ARGS: sam serve's flags, or with --entrypoint sam a command.
	runs := 0
	for _, m := range regexp.MustCompile(`(?m)^docker run (.*)samgo:(?:cpu|cuda)(.*)$`).FindAllStringSubmatch(text, -1) {
		args := strings.Fields(strings.SplitN(m[2], "#", 2)[0])
		argv := append([]string{"serve"}, args...)
		if strings.Contains(m[1], "--entrypoint sam") {
			argv = args
		}
		if len(argv) > 1 || argv[0] != "serve" {
			for k := range argv {
				argv[k] = strings.Trim(argv[k], `"'`)
			}
			checkSamArgs(t, "deploy/README.md docker run", argv)
			runs++
		}
	}
	require.GreaterOrEqual(t, runs, 3)
}
