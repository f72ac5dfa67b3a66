"""Shared helpers of the peers scripts: the official sources unpacked from
../shared/reference, seeded random weights, a safetensors writer."""
import json
import os
import struct
import sys
import tarfile
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def reference_dir():
    for d in (os.environ.get("SAMGO_REFERENCE"), os.path.join(REPO, "..", "shared", "reference"), "/work/shared/reference"):
        if d and os.path.isdir(d):
            return d
    sys.exit("peers: ../shared/reference not found (set SAMGO_REFERENCE)")


def import_official(name):
    """Unpacks segment-anything-*.tar.gz or MobileSAM-*.tar.gz once into a
    temporary folder and puts it on sys.path."""
    ref = reference_dir()
    tgz = [f for f in sorted(os.listdir(ref)) if f.startswith(name) and f.endswith(".tar.gz")]
    if not tgz:
        sys.exit(f"peers: no {name}*.tar.gz in {ref}")
    dst = os.path.join(tempfile.gettempdir(), "samgo-peers-" + tgz[0][: -len(".tar.gz")])
    if not os.path.isdir(dst):
        with tarfile.open(os.path.join(ref, tgz[0])) as t:
            t.extractall(dst + ".part")
        os.rename(dst + ".part", dst)
    top = [os.path.join(dst, d) for d in os.listdir(dst)][0]
    sys.path.insert(0, top)
    stub = os.path.join(REPO, "tests", "testdata", "gen", "timm_stub")
    if os.path.isdir(stub):  # MobileSAM imports three helpers from timm
        sys.path.insert(0, stub)
    return top


def randomize(model, seed):
    """Deterministic non-trivial weights: N(0, 1/fan_in) matrices, norms
    1 + N(0, 0.1), biases and embeddings N(0, 0.02); BatchNorm statistics
    positive. The values do not matter for speed, only that every engine
    gets the same ones."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        # The state dict's tensors only: pixel_mean/pixel_std are
        # non-persistent buffers (the official constants on every side).
        for name, p in model.state_dict(keep_vars=True).items():
            if not p.dtype.is_floating_point:
                continue
            if name.endswith("running_var"):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif p.dim() >= 2:
                fan_in = int(np.prod(p.shape[1:]))
                p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(fan_in))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))


def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for k, v in tensors.items():
        a = np.ascontiguousarray(v.detach().cpu().numpy().astype(np.float32))
        b = a.tobytes()
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".part", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".part", path)


def blas_in_use():
    """What BLAS this process really calls: the libraries mapped into it."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()[-1]
            base = os.path.basename(p)
            if any(s in base for s in ("blas", "lapack", "mkl", "dnnl", "gomp", "omp")):
                libs.add(os.path.realpath(p))
    return sorted(libs)
