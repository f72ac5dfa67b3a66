# Segment Anything for Go — build, test, benchmark, demo.
#
#   make            build bin/sam (CPU)
#   make test       vet + the whole CPU test suite (the README's test command)
#   make bench      Go benchmarks + `sam bench` (ViT-B encoder, random weights)
#   make demo       segment the bundled demo scenes with the bundled demo model
#   make serve      the HTTP API and web app (sam serve) with the demo model on 127.0.0.1:8080
#   make cuda       build kernels/ (CMake + nvcc) and bin/sam with the cuda tag
#   make test-gpu   the CUDA-tagged suite (on a machine with an NVIDIA GPU)
#   make test-sim   the kernels and the CUDA-tagged suite under the GPU simulator
#   make gpu-check  the one command for a real GPU: builds, tests, sanitizer, bench, report

GO      ?= go
BIN     := bin/sam
DEMO    := tests/testdata/demo
OUT     ?= out

.PHONY: all build test vet bench demo fuzz cuda test-gpu clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/sam

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

# The whole suite runs under the race detector (about a minute on 2 cores).
test: vet
	$(GO) test -count=1 -race ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./sam/nn/cpu/... ./sam/imgproc/
	$(BIN) bench -model vit_b -batch 1 -prompts 1,64

# The demo model is a small SAM trained on synthetic shapes (see
# $(DEMO)/README.md); it segments the scenes it was made for, not photos.
demo: build
	@mkdir -p $(OUT)/demo
	$(BIN) predict -checkpoint $(DEMO)/model.safetensors -config $(DEMO)/config.json \
		-image $(DEMO)/scene_0.png -out $(OUT)/demo/scene_0 -multimask=false \
		-box 303,379,448,479 -box 446,0,563,93 -box 0,340,27,412 -box 0,171,99,338 -box 456,307,513,373 -box 402,270,441,309 >/dev/null
	$(BIN) predict -checkpoint $(DEMO)/model.safetensors -config $(DEMO)/config.json \
		-image $(DEMO)/scene_1.png -out $(OUT)/demo/scene_1 -multimask=false \
		-box 156,171,273,288 -box 236,114,299,194 -box 100,0,165,61 -box 0,58,72,205 -box 112,267,229,419 >/dev/null
	$(BIN) predict -checkpoint $(DEMO)/model.safetensors -config $(DEMO)/config.json \
		-image $(DEMO)/scene_2.png -out $(OUT)/demo/scene_2 -logits -point 178,204 >/dev/null
	$(BIN) auto -checkpoint $(DEMO)/model.safetensors -config $(DEMO)/config.json \
		-image $(DEMO)/scene_0.png -out $(OUT)/demo/auto_scene_0 \
		-points-per-side 16 -pred-iou-thresh 0.5 -stability-score-thresh 0.7 >/dev/null
	@echo "demo: masks, overlays and result.json under $(OUT)/demo/scene_{0,1,2}/; segment-everything masks.json + overlay.png under $(OUT)/demo/auto_scene_0/"

# The HTTP API and the web app with the demo model, on this machine only
# (ADDR=0.0.0.0:8080 SERVE_FLAGS=-token=SECRET to serve a network; every
# flag: bin/sam serve -h). Segment-everything defaults are the thresholds
# the demo model needs (its README). Ctrl-C drains and stops. It runs the
# built binary rather than go run, whose exit status after Ctrl-C is 1.
ADDR        ?= 127.0.0.1:8080
SERVE_FLAGS ?=
.PHONY: serve
serve: build
	$(BIN) serve -checkpoint $(DEMO)/model.safetensors -addr $(ADDR) \
		-auto-defaults '{"points_per_side":16,"pred_iou_thresh":0.5,"stability_score_thresh":0.7}' $(SERVE_FLAGS)

# The loaders and the public API's entry points (prompts, mask inputs,
# embedding files), 30 s each.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./sam/checkpoint/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./sam/imgproc/
	$(GO) test -run '^$$' -fuzz '^FuzzPredict$$' -fuzztime 30s ./sam/
	$(GO) test -run '^$$' -fuzz '^FuzzEmbeddingFile$$' -fuzztime 30s ./sam/

# ------------------------------------------------------------------ CUDA
#
#   make cuda        libsamkernels.a (CMake + nvcc) and bin/sam with the cuda tag
#   make test-gpu    the CUDA-tagged suite on a machine with an NVIDIA GPU
#                    (SANITIZE=1: under compute-sanitizer's memcheck, each
#                    tensor its own cudaMalloc, no deliberate out-of-memory)
#   make test-sim    the same kernels and CUDA-tagged tests under the GPU
#                    simulator (GPGPU-Sim, ../shared/gpusim), no GPU needed
#   make gpu-check   everything a real GPU must confirm, one report (tests/gpucheck)
#   make profile     Nsight Systems / Compute over `sam bench` where installed
#
# One toolkit for everything: CUDA_HOME (default /usr/local/cuda when it
# has nvcc, else the prefix of the nvcc on PATH, e.g. Debian's /usr) gives
# CMake its nvcc and cgo its headers (CPATH: searched after the packages'
# own -I, so go-nvml keeps its bundled nvml.h) and libraries (-L, rpath).
CUDA_HOME ?= $(shell if [ -x /usr/local/cuda/bin/nvcc ]; then echo /usr/local/cuda; \
	elif command -v nvcc >/dev/null 2>&1; then dirname "$$(dirname "$$(command -v nvcc)")"; fi)
NVCC      := $(CUDA_HOME)/bin/nvcc
CUDA_LIB  := $(if $(filter-out /usr,$(CUDA_HOME)),$(wildcard $(CUDA_HOME)/lib64))
# Real SASS for Ampere, Ada and Hopper plus compute_90 PTX for newer GPUs.
# Always passed to CMake, never left to its cache (a build configured for
# one architecture must not be reused for another).
CUDA_ARCHS ?= 80-real;86-real;89-real;90
SAMK_LINEINFO ?= ON
BUILD     := build
SANITIZE  ?=

# The configuration libsamkernels.a is built for; build/ is wiped and
# reconfigured whenever it changes (toolkit, architectures, flags).
CUDA_CONFIG = nvcc=$(NVCC) archs=$(CUDA_ARCHS) lineinfo=$(SAMK_LINEINFO)

# cgo's view of the same toolkit. The library's hash goes into CGO_LDFLAGS
# as an -L of a directory that does not exist: the go command does not
# hash external archives, and a changed flag is what makes it relink.
CUDA_GO = $(CUDA_CPATH) \
	CGO_LDFLAGS="$(CGO_LDFLAGS) $(CUDA_LDFLAGS) -L/nonexistent/samkernels-$$(sha256sum $(BUILD)/libsamkernels.a | cut -c1-16)" \
	CGO_CFLAGS="$${CGO_CFLAGS:--O2 -g} -Wno-deprecated-declarations" $(GO)
ifneq ($(filter-out /usr,$(CUDA_HOME)),)
CUDA_CPATH := CPATH="$(CUDA_HOME)/include$${CPATH:+:$$CPATH}"
endif
ifneq ($(CUDA_LIB),)
CUDA_LDFLAGS := -L$(CUDA_LIB) -Wl,-rpath,$(CUDA_LIB)
endif

.PHONY: kernels vet-cuda test-sim gpu-check profile print-cuda-go

kernels:
	@test -x "$(NVCC)" || { echo "no nvcc at '$(NVCC)': install the CUDA toolkit or set CUDA_HOME" >&2; exit 1; }
	@if [ "$$(cat $(BUILD)/.cuda-config 2>/dev/null)" != "$(CUDA_CONFIG)" ]; then \
		[ -d $(BUILD) ] && echo "kernels: configuration changed, reconfiguring $(BUILD)/ ($(CUDA_CONFIG))"; \
		rm -rf $(BUILD); fi
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER=$(NVCC) \
		"-DCMAKE_CUDA_ARCHITECTURES=$(CUDA_ARCHS)" -DSAMK_LINEINFO=$(SAMK_LINEINFO) >/dev/null
	cmake --build $(BUILD)
	@echo "$(CUDA_CONFIG)" > $(BUILD)/.cuda-config

cuda: kernels
	$(CUDA_GO) build -tags cuda -o $(BIN) ./cmd/sam

# The go command with these flags, for scripts:
#   eval "$$(make -s print-cuda-go) test -tags cuda ./sam/nn/gpu"
print-cuda-go:
	@echo '$(CUDA_GO)'

vet-cuda: kernels
	$(CUDA_GO) vet -tags cuda ./...

test-gpu: cuda
	ctest --test-dir $(BUILD) --output-on-failure
ifeq ($(SANITIZE),1)
	$(CUDA_GO) test -c -tags cuda -o $(BUILD)/gpu.test ./sam/nn/gpu
	$(CUDA_GO) test -c -tags cuda -o $(BUILD)/tests.test ./tests
	cd sam/nn/gpu && SAMGO_CUDA_POOL=exact SAMGO_SANITIZER=1 compute-sanitizer --tool memcheck --error-exitcode 1 \
		../../../$(BUILD)/gpu.test -test.short -test.count=1 -test.timeout 30m
	cd tests && SAMGO_CUDA_POOL=exact SAMGO_SANITIZER=1 compute-sanitizer --tool memcheck --error-exitcode 1 \
		../$(BUILD)/tests.test -test.run 'GPU' -test.short -test.count=1 -test.timeout 30m
else
	$(CUDA_GO) vet -tags cuda ./...
	$(CUDA_GO) test -tags cuda -count=1 -timeout 30m ./...
endif

# The GPU simulator: built once into GPGPUSIM_PREFIX (a folder per set of
# patches: ../shared/gpusim's and ours in tests/gpusim/; GPGPUSIM_SRC
# overrides where its source is), kernels as
# compute_75 PTX without -lineinfo (its PTX parser has no bf16 type and
# trips over debug sections), CUDA-tagged tests with SAMGO_GEMM=reference
# (cuBLASLt cannot run there) and their simulation sizes. SIM_RUN selects
# tests (a go test -run pattern), SIM_PKGS the packages.
GPGPUSIM_SRC    ?=
GPGPUSIM_PREFIX ?= /var/cache/gpgpu-sim
SIM_PKGS ?= ./cuda ./bindings ./sam/nn/gpu ./tests
SIM_RUN  ?=

test-sim:
	$(MAKE) kernels CUDA_ARCHS=75-virtual SAMK_LINEINFO=OFF
	GPGPUSIM_SRC=$(GPGPUSIM_SRC) GPGPUSIM_PREFIX=$(GPGPUSIM_PREFIX) bash tests/gpusim/build.sh
	@mkdir -p $(BUILD)/sim
	for p in $(SIM_PKGS); do \
		$(CUDA_GO) test -c -tags cuda -o $(BUILD)/sim/$$(basename $$p).test $$p || exit 1; done
	GPGPUSIM_PREFIX=$(GPGPUSIM_PREFIX) bash tests/gpusim/run.sh '$(value SIM_RUN)' $(foreach p,$(SIM_PKGS),$(BUILD)/sim/$(notdir $(p)).test:$(p))

# Everything that needs a real GPU, in one command with a deadline
# (tests/gpucheck/README.md). On the GPU machine: bash .gpu/enter.sh make gpu-check
gpu-check:
	bash tests/gpucheck/gpu-check.sh

profile: cuda
	bash tests/gpucheck/profile.sh

clean:
	rm -rf bin build $(OUT)
