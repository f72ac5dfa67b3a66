#!/usr/bin/env bash
# Builds GPGPU-Sim for this project once, and reuses it afterwards:
# ../shared/gpusim's source, build script and fixes, plus this folder's own
# fixes (*.patch, applied after the shared ones; README.md says what each
# does). The result goes to $GPGPUSIM_PREFIX/samgo-<hash of every patch>, so
# a changed patch gets a fresh build and an unchanged one is reused.
#
#   tests/gpusim/build.sh            build if needed (about 2.5 min on 2 cores)
#   tests/gpusim/build.sh --prefix   print the folder (env.sh inside) and exit
#
# Environment: GPGPUSIM_SRC (default ../shared/gpusim beside the checkout),
# GPGPUSIM_PREFIX (default /var/cache/gpgpu-sim, or ~/.cache/gpgpu-sim when
# that is not writable). Debian packages it needs are installed when missing
# (as root, or with sudo).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# The simulator's source: GPGPUSIM_SRC, else ../shared/gpusim beside the
# checkout, else the workplace's /work/shared/gpusim (a clone elsewhere).
src=${GPGPUSIM_SRC:-}
if [ -z "$src" ]; then
  for cand in "$root/../shared/gpusim" /work/shared/gpusim; do
    if [ -f "$cand/build.sh" ]; then src=$cand; break; fi
  done
  src=${src:-$root/../shared/gpusim}
fi
case "$src" in /*) ;; *) src=$root/$src ;; esac
if [ ! -f "$src/build.sh" ] || [ ! -f "$src/gpgpu-sim.patch" ]; then
  echo "gpusim: no simulator source at $src (want build.sh, gpgpu-sim.patch and the tarball of ../shared/gpusim); set GPGPUSIM_SRC" >&2
  exit 1
fi
base=${GPGPUSIM_PREFIX:-/var/cache/gpgpu-sim}
if ! mkdir -p "$base" 2>/dev/null || [ ! -w "$base" ]; then base=${HOME:-/tmp}/.cache/gpgpu-sim; mkdir -p "$base"; fi
hash=$(cat "$src/gpgpu-sim.patch" "$here"/*.patch | sha256sum | cut -c1-12)
prefix=$base/samgo-$hash
if [ "${1:-}" = "--prefix" ]; then echo "$prefix"; exit 0; fi
if [ -f "$prefix/env.sh" ]; then echo "gpusim: using $prefix"; exit 0; fi
# One build at a time (make test-sim from two shells, CI and a developer).
exec 9>"$base/.samgo-build.lock"
flock 9
if [ -f "$prefix/env.sh" ]; then echo "gpusim: using $prefix (built meanwhile)"; exit 0; fi

# Debian packages of ../shared/gpusim/README.md.
need=()
command -v bison >/dev/null || need+=(bison)
command -v flex >/dev/null || need+=(flex)
command -v makedepend >/dev/null || need+=(xutils-dev)
command -v g++ >/dev/null || need+=(build-essential)
[ -f /usr/include/zlib.h ] || need+=(zlib1g-dev)
[ -e /usr/lib/x86_64-linux-gnu/libGL.so ] || [ -e /usr/lib/libGL.so ] || need+=(libgl-dev)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
  echo "gpusim: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# ../shared/gpusim/build.sh applies the gpgpu-sim.patch beside it: run a
# copy of it beside the shared fixes followed by ours.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$src/build.sh" "$tmp/build.sh"
cat "$src/gpgpu-sim.patch" "$here"/*.patch > "$tmp/gpgpu-sim.patch"
tarball=$(ls "$src"/gpgpu-sim-*.tar.gz | head -1)
start=$(date +%s)
GPGPUSIM_TARBALL=$tarball bash "$tmp/build.sh" "$prefix"
echo "gpusim: built $prefix in $(( $(date +%s) - start )) s"
