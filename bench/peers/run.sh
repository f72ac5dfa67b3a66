#!/usr/bin/env bash
# Side by side on one machine, same weights, same input, same threads: the
# official PyTorch code, ONNX Runtime on the official ViT-B encoder exported to
# ONNX, and samgo's CPU backend. Rounds are interleaved (torch, ORT, samgo,
# torch, ...) so that a change in machine load hits all engines alike; the
# report prints medians and the ratios of paired rounds.
#
#   bash bench/peers/run.sh                 # ViT-B and MobileSAM, 3 rounds, samgo in fp32 and bf16
#   ROUNDS=5 ITERS=3 THREADS=2 OUT=/tmp/p bash bench/peers/run.sh
#
# Needs Debian's python3-torch (+ python3-pil, python3-numpy), node + npm
# (onnxruntime-node from npm, pinned below) and Go. torch's BLAS: Debian's
# torch calls the reference BLAS unless OpenBLAS is installed
# (libopenblas0-openmp); OpenBLAS 0.3.21 does not know recent CPUs and falls
# back to SSE3 kernels unless OPENBLAS_CORETYPE names one (SkylakeX for
# AVX-512 cores). BLAS=openblas (default) installs it when missing (apt) and
# sets OPENBLAS_CORETYPE=SkylakeX where the CPU has avx512f; BLAS=as-is
# leaves the system alone. The report lists the libraries torch had mapped.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/samgo-peers}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-3}
export THREADS=${THREADS:-2}
PY=${PY:-/usr/bin/python3}
ORT_VERSION=${ORT_VERSION:-1.30.0}
BLAS=${BLAS:-openblas}
mkdir -p "$OUT"

if [ "$BLAS" = openblas ]; then
  if ! ldconfig -p | grep libopenblas >/dev/null; then
    sudo=""; [ "$(id -u)" != 0 ] && sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libopenblas0-openmp >/dev/null
  fi
  grep -q avx512f /proc/cpuinfo && export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
fi
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS

[ -f "$OUT/vit_t_embedding.npy" ] && [ -f "$OUT/vit_b_encoder.onnx" ] || (cd bench/peers && "$PY" prepare.py "$OUT")
[ -d "$OUT/node/node_modules/onnxruntime-node" ] || # --ignore-scripts: the install script only fetches the optional CUDA provider (from nuget.org);
  # the CPU library ships in the package.
  npm install --silent --ignore-scripts --prefix "$OUT/node" "onnxruntime-node@$ORT_VERSION" >/dev/null
go build -o "$OUT/sam" ./cmd/sam
export NODE_PATH="$OUT/node/node_modules"

# Each measurement is one process, timed whole (load included) by GNU time.
measure() { # name, command...
  local name=$1; shift
  /usr/bin/time -f '{"wall_s": %e, "max_rss_kib": %M}' -o "$OUT/$name.time" "$@" > "$OUT/$name.json"
}
"$OUT/sam" embed -checkpoint "$OUT/vit_b.safetensors" -image "$OUT/image.png" -out "$OUT/samgo_vit_b.npy" -overwrite >/dev/null 2>&1 || \
  "$OUT/sam" embed -checkpoint "$OUT/vit_b.safetensors" -image "$OUT/image.png" -out "$OUT/samgo_vit_b.npy" >/dev/null
"$OUT/sam" embed -checkpoint "$OUT/vit_t.safetensors" -image "$OUT/image.png" -out "$OUT/samgo_vit_t.npy" -overwrite >/dev/null 2>&1 || \
  "$OUT/sam" embed -checkpoint "$OUT/vit_t.safetensors" -image "$OUT/image.png" -out "$OUT/samgo_vit_t.npy" >/dev/null
# samgo's bf16 CPU path (AVX512_BF16; where the CPU lacks it, sam says it runs fp32).
for m in vit_b vit_t; do
  "$OUT/sam" embed -precision bf16 -checkpoint "$OUT/$m.safetensors" -image "$OUT/image.png" -out "$OUT/samgo_bf16_$m.npy" -overwrite >/dev/null
done
for r in $(seq "$ROUNDS"); do
  for m in vit_b vit_t; do
    (cd bench/peers && measure "torch_${m}_$r" "$PY" torch_bench.py "$OUT" "$m" "$ITERS")
    [ $m = vit_b ] && measure "ort_${m}_$r" node bench/peers/ort_bench.js "$OUT" "$ITERS"
    measure "samgo_${m}_$r" "$OUT/sam" bench -checkpoint "$OUT/$m.safetensors" -prompts 0 -iters "$ITERS" -threads "$THREADS"
    measure "samgo_bf16_${m}_$r" "$OUT/sam" bench -precision bf16 -checkpoint "$OUT/$m.safetensors" -prompts 0 -iters "$ITERS" -threads "$THREADS"
    echo "peers: round $r $m done" >&2
  done
  # The decoder: 64 one-point prompts, multimask, masks at 1024×1024, from an embedding.
  (cd bench/peers && STAGE=decoder measure "torch_decoder_$r" "$PY" torch_bench.py "$OUT" vit_b "$ITERS")
  measure "samgo_decoder_$r" "$OUT/sam" bench -checkpoint "$OUT/vit_b.safetensors" -no-encoder -prompts 64 -iters "$ITERS" -threads "$THREADS"
  measure "samgo_bf16_decoder_$r" "$OUT/sam" bench -precision bf16 -checkpoint "$OUT/vit_b.safetensors" -no-encoder -prompts 64 -iters "$ITERS" -threads "$THREADS"
done
"$PY" bench/peers/report.py "$OUT" "$ROUNDS"
