"""Prints the peers table (markdown) from run.sh's results in OUT: per engine
and model the median encoder time over rounds, the whole process (load
included) and its peak RSS; the ratios of paired rounds (samgo / peer, one
per round, then their median); the agreement of each embedding with the
official one (max|Δ| / std); the machine.

Usage: /usr/bin/python3 bench/peers/report.py OUT ROUNDS
"""
import datetime
import json
import os
import platform
import statistics
import sys

import numpy as np

OUT, ROUNDS = sys.argv[1], int(sys.argv[2])


def load(name):
    p = os.path.join(OUT, name + ".json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        txt = f.read().strip()
    if not txt:
        return None
    try:
        j = json.loads(txt)  # sam bench: one indented document
    except json.JSONDecodeError:
        j = json.loads(txt.splitlines()[-1])  # the scripts: one line, after any warnings
    if "results" in j:  # sam bench's report
        enc = j["results"][0]  # the one stage asked for
        j = {"engine": "samgo", "median_ms": enc["median_ms"], "samples_ms": enc["samples_ms"],
             "threads": j["threads"], "peak_backend_mib": enc.get("peak_memory_bytes", 0) / 2**20}
    with open(os.path.join(OUT, name + ".time")) as f:
        j.update(json.loads(f.read().strip().splitlines()[-1]))
    return j


def cpu():
    model, flags = platform.processor(), []
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                flags = [x for x in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16") if x in have]
                break
    return model, flags, os.cpu_count()


def agreement(ref, other):
    if not (os.path.exists(ref) and os.path.exists(other)):
        return None
    a = np.load(ref).reshape(-1).astype(np.float64)
    b = np.load(other) if other.endswith(".npy") else np.fromfile(other, dtype=np.float32)
    b = b.reshape(-1).astype(np.float64)
    return float(np.abs(a - b).max() / a.std()) if a.shape == b.shape else None


model, flags, n = cpu()
print(f"Measured {datetime.date.today()} on {model} ({n} CPUs visible; {', '.join(flags)}), "
      f"{os.environ.get('THREADS', '2')} threads each, one 1024×1024 image, encoder after one warm-up, "
      f"{ROUNDS} interleaved rounds (`bash bench/peers/run.sh`).\n")
print("| model | engine | encoder median | process wall (load, warm-up, ITERS runs) | peak RSS | samgo ÷ engine (paired rounds) | max abs diff / std vs official |")
print("|---|---|---|---|---|---|---|")
blas = None
for m in ("vit_b", "vit_t", "decoder"):
    rows = {}
    for eng in ("torch", "ort", "samgo", "samgo_bf16"):
        rs = [load(f"{eng}_{m}_{r}") for r in range(1, ROUNDS + 1)]
        rs = [r for r in rs if r]
        if rs:
            rows[eng] = rs
    for eng, rs in rows.items():
        med = statistics.median(r["median_ms"] for r in rs) / 1e3
        wall = statistics.median(r["wall_s"] for r in rs)
        rss = max(r["max_rss_kib"] for r in rs) / 2**20
        ratio = ""
        if not eng.startswith("samgo"):
            # samgo fp32 (and bf16) ÷ this engine, paired by round.
            parts = []
            for ours in ("samgo", "samgo_bf16"):
                if ours in rows:
                    pairs = [s["median_ms"] / p["median_ms"] for s, p in zip(rows[ours], rs)]
                    label = "fp32" if ours == "samgo" else "bf16"
                    parts.append(f"{label} {statistics.median(pairs):.2f}× (" + ", ".join(f"{x:.2f}" for x in pairs) + ")")
            ratio = "; ".join(parts)
        elif eng == "samgo_bf16" and "samgo" in rows:
            pairs = [s["median_ms"] / p["median_ms"] for s, p in zip(rs, rows["samgo"])]
            ratio = f"bf16 ÷ fp32 {statistics.median(pairs):.2f}×"
        label = {"samgo": "samgo CPU fp32", "samgo_bf16": "samgo CPU bf16"}.get(eng)
        if m == "decoder":
            print(f"| ViT-B decoder, 64 prompts | {'official PyTorch' if eng == 'torch' else label} | {med:.2f} s | {wall:.1f} s | {rss:.2f} GiB | {ratio} | – |")
            continue
        ref = os.path.join(OUT, f"{m}_embedding.npy")
        other = {"torch": None, "ort": os.path.join(OUT, "ort_embedding.f32"), "samgo": os.path.join(OUT, f"samgo_{m}.npy"),
                 "samgo_bf16": os.path.join(OUT, f"samgo_bf16_{m}.npy")}[eng]
        agr = "reference" if eng == "torch" else (f"{agreement(ref, other):.1e}" if other and agreement(ref, other) is not None else "–")
        name = {"torch": f"official PyTorch {rs[0].get('version', '')}", "ort": f"ONNX Runtime {rs[0].get('version', '')} (onnxruntime-node, CPU EP, all optimisations)", "samgo": label, "samgo_bf16": label}[eng]
        print(f"| {m} | {name} | {med:.2f} s | {wall:.1f} s | {rss:.2f} GiB | {ratio} | {agr} |")
        if eng == "torch":
            blas = (rs[0].get("blas"), rs[0].get("openblas_coretype"))
if blas:
    print(f"\ntorch's BLAS (libraries mapped into the process): {', '.join(blas[0]) or 'none found'}; OPENBLAS_CORETYPE={blas[1] or 'unset'}")
