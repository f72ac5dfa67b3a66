"""Times the official image encoder (ViT-B or MobileSAM's TinyViT) on the
prepared input with 2 threads: median of ITERS after one warm-up. Prints
one JSON line: engine, model, samples, median, the BLAS libraries the
process really has mapped, peak RSS.

With STAGE=decoder it times instead what `sam bench -no-encoder -prompts
64` does: 64 one-point prompts, multimask, through SamPredictor.predict_torch
on a random (1, 256, 64, 64) embedding of a 1024×1024 image, masks at full
size.

Usage: [STAGE=decoder] /usr/bin/python3 bench/peers/torch_bench.py OUT vit_b|vit_t [ITERS]
"""
import json
import os
import resource
import sys
import time

import numpy as np
import torch

from common import blas_in_use, import_official

OUT, MODEL = sys.argv[1], sys.argv[2]
ITERS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
torch.set_num_threads(int(os.environ.get("THREADS", "2")))
t0 = time.time()
if MODEL == "vit_t":
    import_official("MobileSAM")
    from mobile_sam import sam_model_registry
else:
    import_official("segment-anything")
    from segment_anything import sam_model_registry
from safetensors_read import load

sam = sam_model_registry[MODEL](checkpoint=None)
sam.load_state_dict(load(os.path.join(OUT, f"{MODEL}.safetensors")))
sam.eval()
STAGE = os.environ.get("STAGE", "encoder")
samples = []
if STAGE == "decoder":
    if MODEL == "vit_t":
        from mobile_sam import SamPredictor
    else:
        from segment_anything import SamPredictor
    g = torch.Generator().manual_seed(7)
    pred = SamPredictor(sam)
    pred.features = 0.5 * torch.randn(1, 256, 64, 64, generator=g)
    pred.original_size = pred.input_size = (1024, 1024)
    pred.is_image_set = True
    pts = torch.rand(64, 1, 2, generator=g) * 1024
    labels = torch.ones(64, 1, dtype=torch.int)
    run = lambda: pred.predict_torch(pts, labels, multimask_output=True)
else:
    x = torch.from_numpy(np.fromfile(os.path.join(OUT, "input.f32"), dtype=np.float32).reshape(1, 3, 1024, 1024))
    run = lambda: sam.image_encoder(x)
with torch.no_grad():
    run()  # warm-up
    for _ in range(ITERS):
        t = time.perf_counter()
        run()
        samples.append((time.perf_counter() - t) * 1e3)
print(json.dumps({
    "engine": "torch", "version": torch.__version__, "model": MODEL, "stage": STAGE, "threads": torch.get_num_threads(),
    "samples_ms": samples, "median_ms": float(np.median(samples)), "process_s": time.time() - t0,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "blas": blas_in_use(), "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
}))
