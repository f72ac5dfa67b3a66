#!/usr/bin/env bash
# Runs CUDA-tagged Go test binaries under GPGPU-Sim (make test-sim calls it).
#
#   tests/gpusim/run.sh RUN BIN:PKG [BIN:PKG ...]
#
# RUN is a go test -run pattern ("" runs everything); each BIN is a test
# binary (go test -c -tags cuda) of package directory PKG. Every binary runs
#   - with the simulator's libcudart first on LD_LIBRARY_PATH (env.sh of
#     tests/gpusim/build.sh), functional mode, config SM86_RTX3070;
#   - with SAMGO_GEMM=reference (cuBLASLt cannot run under the simulator);
#   - in a mirror of its package directory under build/sim/work/ (symlinks
#     to the real files, so testdata/ and ../ paths resolve as in the
#     package): the simulator writes its config and the PTX it extracts into
#     the working directory, which must not be the checkout;
#   - with the simulator's own messages in build/sim/logs/<pkg>.gpgpusim.log
#     (GPGPUSIM_LOG, tests/gpusim/simulator-log.patch) and the test output on
#     the console and in build/sim/logs/<pkg>.log.
# The exit status is non-zero when any binary fails.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
run=${1:-}
shift || true
prefix=$(bash "$here/build.sh" --prefix)
if [ ! -f "$prefix/env.sh" ]; then echo "gpusim: not built ($prefix/env.sh missing): run tests/gpusim/build.sh" >&2; exit 1; fi
# shellcheck disable=SC1091
source "$prefix/env.sh"
export SAMGO_GEMM=reference
cfg=$GPGPUSIM_CONFIGS/SM86_RTX3070
work=$root/build/sim/work
logs=$root/build/sim/logs
rm -rf "$work"
mkdir -p "$work" "$logs"

# mirror REL: build/sim/work/REL is a real directory whose entries are
# symlinks to those of REL, and so is every directory above it, with
# symlinks to all their other entries.
mirror() {
  local cur="" keep name e
  local -a parts
  IFS=/ read -ra parts <<< "$1"
  for ((i = 0; i <= ${#parts[@]}; i++)); do
    keep=${parts[$i]:-} # the entry that stays a real directory ("" in the package itself)
    [ -L "$work/${cur%/}" ] && rm "$work/${cur%/}" # a link an earlier package's mirror made
    mkdir -p "$work/$cur"
    for e in "$root/$cur"*; do
      name=${e##*/}
      if [ "$name" = "$keep" ] || { [ -z "$cur" ] && [ "$name" = build ]; }; then continue; fi
      [ -e "$work/$cur$name" ] || ln -s "$e" "$work/$cur$name"
    done
    cur="$cur$keep/"
  done
}

# Lines the simulator's helper commands (md5sum, cuobjdump) print on the
# inherited stdout; everything else on stdout is the test's.
noise='^(Extracting (PTX file|specific PTX file)|Running md5sum|[0-9a-f]{32}  /|self exe links to)'

status=0
summary=()
for spec in "$@"; do
  bin=${spec%%:*}
  pkg=${spec#*:}
  pkg=${pkg#./}
  case "$bin" in /*) ;; *) bin=$root/$bin ;; esac
  mirror "$pkg"
  dir=$work/$pkg
  cp "$cfg"/* "$dir"/
  name=$(echo "$pkg" | tr / _)
  log=$logs/$name.log
  : > "$logs/$name.gpgpusim.log"
  echo "=== gpusim: $pkg ($(basename "$bin"))${run:+ -run $run}"
  start=$(date +%s)
  (cd "$dir" && GPGPUSIM_LOG=$logs/$name.gpgpusim.log "$bin" -test.count=1 -test.v -test.timeout 60m ${run:+-test.run "$run"}) 2>&1 |
    grep --line-buffered -Ev "$noise" | tee "$log"
  rc=${PIPESTATUS[0]}
  secs=$(( $(date +%s) - start ))
  passed=$(grep -c -- '--- PASS' "$log" || true)
  skipped=$(grep -c -- '--- SKIP' "$log" || true)
  failed=$(grep -c -- '--- FAIL' "$log" || true)
  summary+=("$(printf '%-14s %s in %4d s: %d passed, %d skipped, %d failed (tests and subtests)' "$pkg" "$([ "$rc" = 0 ] && echo ok || echo FAIL)" "$secs" "$passed" "$skipped" "$failed")")
  [ "$rc" = 0 ] || status=1
done
echo "=== gpusim summary (logs in build/sim/logs/)"
printf '%s\n' "${summary[@]}"
exit $status
