#!/usr/bin/env bash
# make profile: Nsight Systems and Nsight Compute over `sam bench` (bin/sam,
# CUDA build), where they are installed; results under build/profile/.
#
#   PROFILE_MODEL      vit_b (default), vit_l, vit_h
#   PROFILE_PRECISION  bf16 (default) or fp32
#   PROFILE_KERNELS    the kernels Nsight Compute reports on (a regex;
#                      default the attention, layernorm and GEMM kernels)
#
# Nsight Systems shows the NVTX ranges the model opens (image encoder,
# encoder block N, encoder neck, prompt encoder, mask decoder, mask
# postprocessing) above the kernels and cuBLASLt calls they contain; the
# summary lists the time per range and per kernel.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=build/profile
mkdir -p "$out"
model=${PROFILE_MODEL:-vit_b}
prec=${PROFILE_PRECISION:-bf16}
kernels=${PROFILE_KERNELS:-regex:attention_kernel|layernorm_kernel|gemm}
bench=(bin/sam bench -device cuda:0 -model "$model" -precision "$prec" -batch 1 -prompts 1,64 -iters 2)
ran=0
if command -v nsys >/dev/null; then
  nsys profile --trace=cuda,nvtx,cublas --force-overwrite true -o "$out/bench" "${bench[@]}" &&
    nsys stats --force-export=true --report nvtx_sum,cuda_gpu_kern_sum "$out/bench.nsys-rep" >"$out/nsys-summary.txt" &&
    echo "profile: Nsight Systems timeline $out/bench.nsys-rep, summary $out/nsys-summary.txt"
  ran=1
else
  echo "profile: nsys (Nsight Systems) not installed: no timeline" >&2
fi
if command -v ncu >/dev/null; then
  ncu --set full -k "$kernels" --launch-skip 20 --launch-count 6 --force-overwrite -o "$out/kernels" \
    bin/sam bench -device cuda:0 -model "$model" -precision "$prec" -batch 1 -prompts 1 -iters 1 &&
    ncu --import "$out/kernels.ncu-rep" --page details --csv >"$out/ncu-details.csv" &&
    echo "profile: Nsight Compute report $out/kernels.ncu-rep, details $out/ncu-details.csv"
  ran=1
else
  echo "profile: ncu (Nsight Compute) not installed: no kernel report" >&2
fi
[ $ran = 1 ] || { echo "profile: neither Nsight Systems nor Nsight Compute is installed" >&2; exit 1; }
