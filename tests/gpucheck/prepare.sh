#!/usr/bin/env bash
# Fills .gpu/ for the GPU machine (../shared/gpu/prepare.sh: the Go
# toolchain and `go mod vendor`), then slims .gpu/vendor to the files the
# GPU check compiles: `go mod vendor` copies every file of every imported
# package, for every OS (x/sys/unix alone is 7 MB, mostly other systems'),
# and the packages only the server's tests import (chromedp, its protocol
# bindings). What stays is what `go list -deps -test` reports for the
# packages gpu-check builds and tests, with tag cuda, for linux/amd64;
# vendor/modules.txt and the licences stay as they are, so -mod=vendor
# builds still verify against go.mod. The device's limit is 64 MiB for the
# working tree and .gpu together; this prints both.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
shared=""
for d in "${SAMGO_SHARED:-}" ../shared /work/shared; do
  [ -n "$d" ] && [ -f "$d/gpu/prepare.sh" ] && { shared=$d; break; }
done
[ -n "$shared" ] || { echo "gpu prepare: ../shared/gpu/prepare.sh not found (set SAMGO_SHARED)" >&2; exit 1; }
bash "$shared/gpu/prepare.sh"

keep=$(mktemp)
trap 'rm -f "$keep"; rm -rf "$root/vendor"' EXIT
# go list reads vendor/ at the module root: lend it .gpu/vendor for the query.
[ -e vendor ] && { echo "gpu prepare: a vendor/ folder exists at the root; remove it first" >&2; exit 1; }
cp -r .gpu/vendor vendor
GOOS=linux GOARCH=amd64 CGO_ENABLED=1 GOFLAGS=-mod=vendor go list -tags cuda -deps -test \
  -f '{{if .Module}}{{if not .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{range .CgoFiles}}{{$d}}/{{.}}
{{end}}{{range .SFiles}}{{$d}}/{{.}}
{{end}}{{range .HFiles}}{{$d}}/{{.}}
{{end}}{{range .CFiles}}{{$d}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}
{{end}}{{end}}{{end}}' \
  ./cmd/sam ./tests ./sam/nn/gpu ./cuda ./bindings | sed "s|^$root/vendor/||" | sort -u > "$keep"
rm -rf vendor
before=$(du -sb .gpu/vendor | cut -f1)
(cd .gpu/vendor && find . -type f ! -name modules.txt ! -iname 'LICENSE*' ! -iname 'COPYING*' ! -iname 'NOTICE*' ! -iname 'PATENTS*' -printf '%P\n' \
  | sort | comm -23 - "$keep" | xargs -r rm -f)
find .gpu/vendor -type d -empty -delete
after=$(du -sb .gpu/vendor | cut -f1)
# What travels: tracked and untracked-not-ignored files that exist (a
# tracked file deleted in the working tree does not).
tree=$(git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | du -cb --files0-from=- | tail -1 | cut -f1)
gpu=$(du -sb .gpu | cut -f1)
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "gpu prepare: vendor $(mib "$before") → $(mib "$after"); working tree $(mib "$tree") + .gpu $(mib "$gpu") = $(mib $((tree + gpu))) (limit 64 MiB)" >&2
[ $((tree + gpu)) -le $((64 * 1048576)) ] || { echo "gpu prepare: over the device's 64 MiB" >&2; exit 1; }
