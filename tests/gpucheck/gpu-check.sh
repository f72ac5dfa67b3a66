#!/usr/bin/env bash
# make gpu-check: everything that needs a real GPU, in one command that
# stops at a deadline and keeps what it has. See tests/gpucheck/README.md.
#
# On the GPU machine (CUDA 13, no Go, no network), from the checkout:
#   bash tests/gpucheck/prepare.sh               # here, once: .gpu/ with Go and the (slimmed) modules
#   bash .gpu/enter.sh make gpu-check            # there (the device tool: carry .gpu)
#
# Environment:
#   GPU_CHECK_OUT       report folder (default $OUT when set, as on the device
#                       machine, else out/gpu-check/<UTC time>; not under
#                       build/, which a changed CUDA configuration wipes)
#   GPU_CHECK_DEADLINE  seconds for the whole check (default 540); every step
#                       gets what is left, and steps that no longer fit are
#                       skipped and reported as such
#   GPU_CHECK_SIM=1     rehearse under the GPU simulator (the default when no
#                       nvidia-smi answers): the same steps, the GPU-only
#                       parts skip with a message, tests at simulation sizes
#   GPU_CHECK_STEPS     space-separated subset of the steps below
#
# Steps: env build ctest tests blocking sanitizer gemm bench
# Output (at most 8 files, as the device tool brings back): report.md,
# report.json, bench.json, logs.tar.gz (every step's full log).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
start=$(date +%s)
deadline=$((start + ${GPU_CHECK_DEADLINE:-540}))
out=${GPU_CHECK_OUT:-${OUT:-$root/out/gpu-check/$(date -u +%Y%m%dT%H%M%SZ)}}
mkdir -p "$out"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
echo "gpu-check: report in $out"

sim=${GPU_CHECK_SIM:-}
if [ -z "$sim" ]; then
  if nvidia-smi -L >/dev/null 2>&1; then sim=0; else sim=1; fi
fi
steps=${GPU_CHECK_STEPS:-env build ctest tests blocking sanitizer gemm bench}
export SAMGO_REQUIRE_GPU=$([ "$sim" = 1 ] && echo 0 || echo 1)
mode=$([ "$sim" = 1 ] && echo "GPU simulator rehearsal" || echo "real GPU")

results=() # name|status|seconds|note
left() { echo $((deadline - $(date +%s))); }

# step NAME NOTE-ON-SKIP CMD...: runs CMD with the time that is left, its
# output in logs/NAME.log; status pass, FAIL, TIMEOUT or skipped.
step() {
  local name=$1
  shift
  if ! [[ " $steps " == *" $name "* ]]; then return 0; fi
  local l
  l=$(left)
  if [ "$l" -lt 20 ]; then
    results+=("$name|skipped|0|deadline reached before this step")
    echo "gpu-check: $name skipped (deadline)"
    return 0
  fi
  echo "gpu-check: $name (${l} s left)"
  local t0 rc
  t0=$(date +%s)
  # The step (a function of this script) in a child bash that timeout can
  # stop; the functions and variables it uses are exported below.
  timeout --kill-after=10 "$l" bash -c "$*" >"$logs/$name.log" 2>&1
  rc=$?
  local secs=$(($(date +%s) - t0)) st=pass
  if [ $rc = 124 ] || [ $rc = 137 ]; then st=TIMEOUT; elif [ $rc != 0 ]; then st=FAIL; fi
  local note
  note=$(grep -h '^gpu-check-\(note\|skip\): ' "$logs/$name.log" | sed 's/^gpu-check-[a-z]*: //' | tr '\n' ' ')
  # A step that could not do its work here says so with gpu-check-skip.
  if [ "$st" = pass ] && grep -q '^gpu-check-skip: ' "$logs/$name.log"; then st=skipped; fi
  results+=("$name|$st|$secs|$note")
  echo "gpu-check: $name $st in $secs s"
  tail -3 "$logs/$name.log" | sed 's/^/    /'
  save
}

# cudago ARGS...: the go command with the Makefile's CUDA flags (one
# toolkit, the library's hash; make print-cuda-go).
cudago() {
  local pre
  pre=$(make --no-print-directory -s print-cuda-go) || return 1
  eval "$pre $(printf '%q ' "$@")"
}

# gotest RUN PKG...: the CUDA-tagged tests of the packages, under the
# simulator (make test-sim) or on the GPU (go test -v).
gotest() {
  local run=$1
  shift
  if [ "$sim" = 1 ]; then
    make --no-print-directory test-sim SIM_RUN="$run" SIM_PKGS="$*"
  else
    make --no-print-directory kernels >/dev/null || return 1
    if [ -n "$run" ]; then
      cudago test -tags cuda -count=1 -v -timeout 30m -run "$run" "$@"
    else
      cudago test -tags cuda -count=1 -v -timeout 30m "$@"
    fi
  fi
}

# Lines of the tests' logs that carry measured numbers, each after the
# name of the test it belongs to.
metrics() {
  local f files=()
  for f in "$@"; do [ -f "$f" ] && files+=("$f"); done
  [ ${#files[@]} -gt 0 ] || return 0
  awk '/^=== RUN/ { t = $3 } /max\/std|NMSE|max \|Δ\|\/scale|agree with the CPU|fell back|mean IoU|peak [0-9.]+ [KMG]iB/ { sub(/^ +/, ""); sub(/^[a-z_]+_test\.go:[0-9]+: /, ""); print t ": " $0 }' "${files[@]}"
}

save() {
  {
    echo "# gpu-check: $mode"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(($(date +%s) - start)) s of ${GPU_CHECK_DEADLINE:-540} s, commit $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
    echo
    [ -f "$logs/env.log" ] && { echo '```'; grep -v '^gpu-check-note' "$logs/env.log"; echo '```'; echo; }
    echo "| step | status | seconds | note |"
    echo "|---|---|---|---|"
    for r in "${results[@]}"; do IFS='|' read -r n s t note <<<"$r"; echo "| $n | $s | $t | $note |"; done
    echo
    echo "## Measured"
    echo '```'
    metrics "$logs"/tests.log "$logs"/gemm.log | head -300
    echo '```'
    if [ -f "$logs/bench.log" ]; then echo "## sam bench"; echo '```'; grep -v '^sam bench:' "$logs/bench.log" | head -60; echo '```'; fi
    echo
    echo "Full logs: logs.tar.gz."
  } >"$out/report.md"
  {
    printf '{"mode": "%s", "seconds": %d, "deadline_seconds": %d, "steps": [' "$mode" $(($(date +%s) - start)) "${GPU_CHECK_DEADLINE:-540}"
    local first=1
    for r in "${results[@]}"; do
      IFS='|' read -r n s t note <<<"$r"
      [ $first = 1 ] || printf ', '
      first=0
      printf '{"step": "%s", "status": "%s", "seconds": %s, "note": "%s"}' "$n" "$s" "$t" "$(echo "$note" | sed 's/"/\\"/g')"
    done
    printf '], "metrics": ['
    first=1
    while IFS= read -r line; do
      [ $first = 1 ] || printf ', '
      first=0
      printf '"%s"' "$(echo "$line" | sed 's/^ *//; s/\\/\\\\/g; s/"/\\"/g')"
    done < <(metrics "$logs"/tests.log "$logs"/gemm.log | head -300)
    printf ']}\n'
  } >"$out/report.json"
  tar -czf "$out/logs.tar.gz" -C "$logs" . 2>/dev/null
}

env_step() {
  echo "mode: $mode"
  echo "host: $(uname -n), $(nproc) CPUs"
  if [ "$sim" = 1 ]; then
    echo "device: GPGPU-Sim 4.2 (SM86_RTX3070 config, functional mode)"
  else
    nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader
    nvidia-smi | sed -n 3p
  fi
  local nvcc=nvcc
  [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ] && nvcc=${CUDA_HOME:-/usr/local/cuda}/bin/nvcc
  echo "nvcc: $($nvcc --version 2>&1 | grep -i release)"
  echo "go: $(go version)"
  command -v compute-sanitizer >/dev/null && echo "compute-sanitizer: $(compute-sanitizer --version | head -1)"
  command -v nsys >/dev/null && echo "nsys: $(nsys --version)"
  true
}

# The CUDA build for every architecture of CMakeLists.txt (sm_80, 86, 89,
# 90 SASS and compute_90 PTX); under the simulator a compile check.
build_step() { make --no-print-directory cuda; }

ctest_step() {
  make --no-print-directory kernels >/dev/null && ctest --test-dir build --output-on-failure
}

tests_step() {
  if [ "$sim" = 1 ]; then
    # The rehearsal: every package's plumbing, a few tests each.
    gotest 'TestDevices|TestGemmVariants|TestAttention|TestGPUParityFP32/Encoder' ./cuda ./sam/nn/gpu ./tests
  else
    gotest '' ./cuda/... ./bindings ./sam/nn/gpu ./tests ./cmd/sam
  fi
}

# The op tests again with every launch synchronous: an asynchronous fault
# is then reported by the op that caused it.
blocking_step() {
  local run='TestLinear|TestMatMulT|TestConv|TestLayerNorm|TestAttention|TestWindow|TestElementwise|TestCopies|TestMask|TestUpscale|TestGemm'
  [ "$sim" = 1 ] && run='TestLayerNorm|TestWindow'
  CUDA_LAUNCH_BLOCKING=1 gotest "$run" ./sam/nn/gpu
}

sanitizer_step() {
  if [ "$sim" = 1 ] || ! command -v compute-sanitizer >/dev/null; then
    echo "gpu-check-skip: compute-sanitizer needs a real GPU (and its tool): not run"
    return 0
  fi
  make --no-print-directory kernels >/dev/null || return 1
  cudago test -c -tags cuda -o build/gpu.test ./sam/nn/gpu || return 1
  local ops='TestLinear|TestMatMulT|TestConv|TestLayerNorm|TestAttention|TestWindow|TestElementwise|TestCopies|TestMask|TestUpscale|TestGemm'
  (cd sam/nn/gpu && SAMGO_CUDA_POOL=exact SAMGO_SANITIZER=1 compute-sanitizer --tool memcheck --error-exitcode 1 \
    ../../../build/gpu.test -test.short -test.count=1 -test.run "$ops") || return 1
  (cd sam/nn/gpu && SAMGO_SANITIZER=1 compute-sanitizer --tool racecheck --error-exitcode 1 \
    ../../../build/gpu.test -test.short -test.count=1 -test.run 'TestAttention')
}

gemm_step() {
  if [ "$sim" = 1 ]; then
    echo "gpu-check-note: cuBLASLt does not run under the simulator: TestGemmCuBLASLtVsReference skips there"
  fi
  gotest 'TestGemmCuBLASLtVsReference|TestGemmVariants' ./sam/nn/gpu
}

bench_step() {
  if [ "$sim" = 1 ]; then
    echo "gpu-check-skip: timings under the simulator mean nothing: sam bench runs on a real GPU only"
    return 0
  fi
  make --no-print-directory cuda >/dev/null || return 1
  local rc=0 files=()
  for model in vit_b vit_h; do
    for prec in fp32 bf16; do
      local f=$logs/bench-$model-$prec.json
      bin/sam bench -device cuda:0 -model $model -precision $prec -batch 1,8 -prompts 1,64 -json "$f" || rc=1
      [ -f "$f" ] && files+=("$f")
    done
  done
  # One JSON file of every run for the report folder.
  { echo '['; local first=1; for f in "${files[@]}"; do [ $first = 1 ] || echo ','; first=0; cat "$f"; done; echo ']'; } >"$out/bench.json"
  return $rc
}

export -f env_step build_step ctest_step tests_step blocking_step sanitizer_step gemm_step bench_step cudago gotest
export sim logs out mode

step env env_step
step build build_step
step ctest ctest_step
step tests tests_step
step blocking blocking_step
step sanitizer sanitizer_step
step gemm gemm_step
step bench bench_step
save
echo "gpu-check: done in $(($(date +%s) - start)) s: $out/report.md"
failed=0
for r in "${results[@]}"; do [[ "$r" == *"|FAIL|"* || "$r" == *"|TIMEOUT|"* ]] && failed=1; done
exit $failed
