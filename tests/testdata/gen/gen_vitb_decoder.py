#!/usr/bin/python3
"""The vitb_decoder reference (real-size SAM prompt encoder + mask decoder,
no image encoder) on counter-based PRNG weights and embedding.

Neither the weights nor the embedding are stored: the Go tests regenerate
them (tests/weights_vitt_test.go: vittTensor, vitbDecoderEmbedding) from the
PRNG of gen_tinyvit.py (splitmix_uniform, vitt_rule, vitt_tensor, reused
here) and check predict.json's sha256 before use. This script builds the
official segment-anything ViT-B prompt encoder and mask decoder
(../shared/reference/segment-anything-dca509fe.tar.gz, build_sam.py's
_build_sam shapes), fills every tensor from the PRNG, makes the embedding,
runs the cases of the existing vitb_decoder/predict.json (the same prompts,
original_size and input_size, read from it) with the official SamPredictor,
and rewrites predict.json and predict.safetensors (the same stored tensors).

Run from the repository root (see README.md beside this file):

  /usr/bin/python3 tests/testdata/gen/gen_vitb_decoder.py
  /usr/bin/python3 tests/testdata/gen/gen_vitb_decoder.py --out /tmp/x   # elsewhere

Deterministic: the same torch (1.13.1, CPU, 2 threads) writes the same bytes.
"""
import argparse
import hashlib
import json
import math
import os
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_tinyvit as g  # noqa: E402  (the PRNG, file writers, predict cases)

EMBED_SHAPE = (1, 256, 64, 64)
EMBED_NAME = "embedding"


def embedding_values():
    """(1,256,64,64) ≈ 0.5·N(0,1): Irwin–Hall of 4 PRNG uniforms. With
    U = splitmix_uniform("embedding", 4n), value i = (((U[4i] + U[4i+1]) +
    U[4i+2]) + U[4i+3]) · (sqrt(3)/4) in float64 (variance 4/3 · 3/16 = 1/4),
    then float32, then bfloat16 (nearest even). Mirrored by
    vitbDecoderEmbedding in tests/weights_vitt_test.go.
    -> (float32 values, uint16 bits)."""
    import numpy as np
    n = math.prod(EMBED_SHAPE)
    u = g.splitmix_uniform(EMBED_NAME, 4 * n).reshape(n, 4)
    s = ((u[:, 0] + u[:, 1]) + u[:, 2]) + u[:, 3]
    v = s * (math.sqrt(3.0) / 4.0)
    bits = g.f32_to_bf16_bits(v.astype(np.float32))
    return g.bf16_bits_to_f32(bits).reshape(EMBED_SHAPE), bits.reshape(EMBED_SHAPE)


def build_decoder_sam(sa):
    """The official Sam with build_sam's prompt encoder and mask decoder and a
    stand-in image encoder (only img_size is read: by SamPredictor)."""
    import torch
    from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    class NoEncoder(torch.nn.Module):
        img_size = 1024

    sam = Sam(
        image_encoder=NoEncoder(),
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(64, 64),
                                     input_image_size=(1024, 1024), mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3,
                                 transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
                                 transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    sam.eval()
    return sam


def gen_vitb_decoder(out, src):
    import numpy as np
    import torch
    from segment_anything import SamPredictor
    old = json.load(open(os.path.join(src, "predict.json")))
    sam = build_decoder_sam(None)
    sd = sam.state_dict()
    assert all(k.startswith(("prompt_encoder.", "mask_decoder.")) for k in sd), "decoder-only state dict"
    new, bits = {}, {}
    for k, v in sd.items():
        vals, b = g.vitt_tensor(k, list(v.shape))
        new[k] = torch.from_numpy(vals.copy())
        bits[k] = b
    sam.load_state_dict(new)
    sam.eval()
    hw = hashlib.sha256()
    for k in sorted(bits):
        hw.update(k.encode())
        hw.update(bits[k].astype("<u2").tobytes())
    emb, ebits = embedding_values()
    he = hashlib.sha256(ebits.astype("<u2").tobytes())

    H, W = old["original_size"]
    predictor = SamPredictor(sam)
    predictor.reset_image()
    predictor.features = torch.from_numpy(emb.copy())
    predictor.original_size = (H, W)
    predictor.input_size = tuple(old["input_size"])
    predictor.is_image_set = True
    assert predictor.transform.get_preprocess_shape(H, W, 1024) == predictor.input_size

    c = old["cases"]
    spec = {"a": c["a"]["point_coords"], "b": c["b"]["point_coords"], "c": c["c"]["box"],
            "d_point": c["d"]["point_coords"], "d_box": c["d"]["box"], "batch": c["batch"]["boxes"]}
    assert c["b"]["point_labels"] == [1, 0] and c["d"]["point_labels"] == [1] and c["e"]["point_coords"] == c["a"]["point_coords"]

    class Shape:  # predict_cases reads only image.shape[:2]
        shape = (H, W, 3)
    cases, tensors = g.predict_cases(predictor, Shape(), spec, full_res=())
    # Keep exactly what the existing fixture stores.
    keep = {f"{n}.{s}" for n, cc in c.items() for s in cc["stored"]}
    tensors = [(n, a) for n, a in tensors if n in keep]
    assert {n for n, _ in tensors} == keep, sorted(keep - {n for n, _ in tensors})
    for n, cc in cases.items():
        cc["stored"] = list(c[n]["stored"])
        for k in ("point_coords", "point_labels", "box", "boxes", "mask_input", "multimask_output", "num_masks"):
            if k in c[n]:
                assert cc.get(k) == c[n][k], (n, k, cc.get(k), c[n][k])
    g.write_safetensors(os.path.join(out, "predict.safetensors"), tensors)
    n_params = int(sum(math.prod(v.shape) for v in sd.values()))
    ref = {
        "image": None,
        "embedding": None,
        "prng": {
            "what": "weights and embedding are not stored: regenerated (tests/weights_vitt_test.go) from the PRNG of gen_tinyvit.py; see gen_vitb_decoder.py",
            "prng": "SplitMix64 per tensor, seed fnv1a64(name), value i = mix(seed + (i+1)*0x9E3779B97F4A7C15) >> 11 times 2^-53 -> u in [0,1), U = 2u-1",
            "weights": "vitt_rule: offset + scale*U in float64 (scale*U rounded first), then float32, then bfloat16 round-to-nearest-even",
            "weights_sha256": hw.hexdigest(),
            "weights_sha256_of": "for each tensor in name order: name bytes, then its bfloat16 bits little-endian",
            "num_tensors": len(sd),
            "num_params": n_params,
            "embedding": "name 'embedding', shape (1,256,64,64); U = PRNG('embedding', 4n), value i = (((U[4i]+U[4i+1])+U[4i+2])+U[4i+3]) * (sqrt(3)/4) in float64, then float32, then bfloat16",
            "embedding_sha256": he.hexdigest(),
            "embedding_sha256_of": "its bfloat16 bits little-endian",
        },
        "original_size": [H, W],
        "input_size": list(predictor.input_size),
        "cases": cases,
    }
    g.write_json(os.path.join(out, "predict.json"), ref)
    low = np.concatenate([a.ravel() for n, a in tensors if n.endswith("low_res_logits")])
    return {"weights_sha256": hw.hexdigest(), "embedding_sha256": he.hexdigest(), "num_params": n_params,
            "embedding_std": float(emb.std()),
            "positive_share": {n: float((a > 0).mean()) for n, a in tensors if n.endswith("low_res_logits")},
            "low_res_range": [float(low.min()), float(low.max())],
            "iou": {n: a.ravel().tolist() for n, a in tensors if n.endswith(".iou")},
            "best_mask": cases["a"]["best_mask"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(g.TESTDATA, "vitb_decoder"))
    a = ap.parse_args()
    import torch
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(os.path.join(g.REFERENCE, g.SAM_TGZ)) as tf:
            tf.extractall(tmp)
        sys.path.insert(0, os.path.join(tmp, "segment-anything"))
        t0 = time.time()
        st = gen_vitb_decoder(a.out, os.path.join(g.TESTDATA, "vitb_decoder"))
        print(f"== vitb_decoder: {time.time() - t0:.1f} s")
        print(json.dumps(st, indent=1))


if __name__ == "__main__":
    main()
