# Segment Anything for Go — build, test, benchmark, demo.
#
#   make            build bin/sam (CPU)
#   make test       vet + the whole CPU test suite (the README's test command)
#   make bench      Go benchmarks + `sam bench` (ViT-B encoder, random weights)
#   make demo       segment the bundled demo scenes with the bundled demo model
#   make cuda       build kernels/ (CMake + nvcc) and bin/sam with the cuda tag
#   make test-gpu   the CUDA-tagged suite (on a machine with an NVIDIA GPU)

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
		-image $(DEMO)/scene_0.png -out $(OUT)/demo/scene_0 \
		-box 303,379,448,479 -box 446,0,563,93 -box 0,340,27,412 -box 0,171,99,338 -box 456,307,513,373 -box 402,270,441,309 >/dev/null
	$(BIN) predict -checkpoint $(DEMO)/model.safetensors -config $(DEMO)/config.json \
		-image $(DEMO)/scene_1.png -out $(OUT)/demo/scene_1 \
		-box 156,171,273,288 -box 236,114,299,194 -box 100,0,165,61 -box 0,58,72,205 -box 112,267,229,419 >/dev/null
	$(BIN) predict -checkpoint $(DEMO)/model.safetensors -config $(DEMO)/config.json \
		-image $(DEMO)/scene_2.png -out $(OUT)/demo/scene_2 -multimask -point 178,204 >/dev/null
	$(BIN) auto -checkpoint $(DEMO)/model.safetensors -config $(DEMO)/config.json \
		-image $(DEMO)/scene_0.png -out $(OUT)/demo/auto_scene_0 \
		-points-per-side 16 -pred-iou-thresh 0.5 -stability-score-thresh 0.7 >/dev/null
	@echo "demo: masks, overlays and result.json under $(OUT)/demo/scene_{0,1,2}/; segment-everything masks.json + overlay.png under $(OUT)/demo/auto_scene_0/"

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./sam/checkpoint/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./sam/imgproc/

# CUDA build (make cuda) and the CUDA-tagged tests (make test-gpu; with
# SANITIZE=1 the test binaries of sam/nn/gpu and tests/ run under
# compute-sanitizer's memcheck, each tensor in its own cudaMalloc).
# The cgo lines of cuda/ and bindings/ look in /usr/local/cuda and the
# system paths; another toolkit is found through CUDA_HOME: its lib64 on
# the linker path and its include/ on CPATH (searched after the packages'
# own -I, so go-nvml keeps its bundled nvml.h). go-nvml's deprecation
# warnings are silenced.
CUDA_HOME ?= /usr/local/cuda
ifneq ($(CUDA_HOME),/usr/local/cuda)
CUDA_CPATH := CPATH="$(CUDA_HOME)/include$${CPATH:+:$$CPATH}"
endif
CUDA_GO   := CGO_LDFLAGS="$(CGO_LDFLAGS) -L$(CUDA_HOME)/lib64" $(CUDA_CPATH) \
	CGO_CFLAGS="$${CGO_CFLAGS:--O2 -g} -Wno-deprecated-declarations" $(GO)
SANITIZE  ?=
# CUDA_ARCHS, e.g. 90-real, overrides CMakeLists.txt's architectures
# (CI compiles one to check the build quickly).
CUDA_ARCHS ?=

cuda:
	cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release $(if $(CUDA_ARCHS),-DCMAKE_CUDA_ARCHITECTURES=$(CUDA_ARCHS))
	cmake --build build
	$(CUDA_GO) build -tags cuda -o $(BIN) ./cmd/sam

test-gpu: cuda
ifeq ($(SANITIZE),1)
	$(CUDA_GO) test -c -tags cuda -o build/gpu.test ./sam/nn/gpu
	$(CUDA_GO) test -c -tags cuda -o build/tests.test ./tests
	cd sam/nn/gpu && SAMGO_CUDA_POOL=exact compute-sanitizer --tool memcheck --error-exitcode 1 \
		../../../build/gpu.test -test.short -test.count=1 -test.timeout 30m
	cd tests && SAMGO_CUDA_POOL=exact compute-sanitizer --tool memcheck --error-exitcode 1 \
		../build/tests.test -test.run 'GPU' -test.short -test.count=1 -test.timeout 30m
else
	$(CUDA_GO) vet -tags cuda ./...
	$(CUDA_GO) test -tags cuda -count=1 -timeout 30m ./...
endif

clean:
	rm -rf bin build $(OUT)
