#!/usr/bin/python3
"""Reference fixtures for MobileSAM's TinyViT encoder (issue 11).

Writes, with the official MobileSAM code (../shared/reference/MobileSAM-34bbbfd.tar.gz;
its prompt encoder, mask decoder, predictor and automatic mask generator are
SAM's, and this script checks that they are byte-identical to
segment-anything-dca509fe.tar.gz):

  tests/testdata/tinyvit/   a reduced TinyViT SAM (img 128, embed_dims [8,32,40,48]),
                            every fixture file of the shared format
  tests/testdata/vit_t/     the full vit_t (MobileSAM) shape with counter-based
                            PRNG weights rounded to bfloat16 (the Go test
                            regenerates them, see weights_vitt_test.go), and a
                            reduced reference output

Run from the repository root (see README.md beside this file):

  /usr/bin/python3 tests/testdata/gen/gen_tinyvit.py            # both sets
  /usr/bin/python3 tests/testdata/gen/gen_tinyvit.py tinyvit    # one

Deterministic: the same torch (1.13.1, CPU, 2 threads) writes the same bytes.
"""
import argparse
import copy
import hashlib
import json
import math
import os
import struct
import sys
import tarfile
import tempfile
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
TESTDATA = os.path.join(REPO, "tests", "testdata")
REFERENCE = os.path.abspath(os.path.join(REPO, "..", "shared", "reference"))
MOBILESAM_TGZ = "MobileSAM-34bbbfd.tar.gz"
SAM_TGZ = "segment-anything-dca509fe.tar.gz"


def unpack_reference(tmp):
    for name in (MOBILESAM_TGZ, SAM_TGZ):
        with tarfile.open(os.path.join(REFERENCE, name)) as tf:
            tf.extractall(tmp)
    ms = os.path.join(tmp, "MobileSAM", "mobile_sam")
    sa = os.path.join(tmp, "segment-anything", "segment_anything")
    # Everything but the encoder is SAM's own code.
    for rel in ["modeling/prompt_encoder.py", "modeling/mask_decoder.py", "modeling/transformer.py",
                "modeling/common.py", "modeling/image_encoder.py", "utils/amg.py", "utils/transforms.py"]:
        a, b = open(os.path.join(ms, rel), "rb").read(), open(os.path.join(sa, rel), "rb").read()
        assert a == b, f"{rel} differs between MobileSAM and segment-anything"
    sys.path.insert(0, os.path.join(HERE, "timm_stub"))
    sys.path.insert(0, os.path.join(tmp, "MobileSAM"))


# ---------------------------------------------------------------- file formats

def write_safetensors(path, tensors):
    """tensors: list of (name, numpy array); dtypes F32, U8, BOOL, BF16 (given as
    ('BF16', uint16 array))."""
    import numpy as np
    header, blobs, off = {}, [], 0
    for name, arr in tensors:
        if isinstance(arr, tuple):
            dt, a = arr
            assert dt == "BF16" and a.dtype == np.uint16
        else:
            a = arr
            dt = {np.dtype("float32"): "F32", np.dtype("uint8"): "U8", np.dtype("bool"): "BOOL"}[a.dtype]
        b = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def f32_to_bf16_bits(x):
    """float32 array -> uint16 bfloat16 bits, round to nearest even."""
    import numpy as np
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_bits_to_f32(h):
    import numpy as np
    return (h.astype(np.uint32) << 16).view(np.float32)


# ---------------------------------------------------------------- images

def synthetic_image(W, H, seed):
    """Colour gradient, 5 filled shapes, Gaussian noise (sigma 3), RGB uint8."""
    import numpy as np
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    c0, c1 = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    t = (x / max(W - 1, 1) + y / max(H - 1, 1)) / 2
    img = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    for k in range(5):
        col = rng.uniform(0, 255, 3)
        cx, cy = rng.uniform(0.15, 0.85) * W, rng.uniform(0.15, 0.85) * H
        rx, ry = rng.uniform(0.08, 0.22) * W, rng.uniform(0.08, 0.22) * H
        kind = k % 3
        if kind == 0:
            m = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1
        elif kind == 1:
            m = (abs(x - cx) <= rx) & (abs(y - cy) <= ry)
        else:  # triangle
            m = (y >= cy - ry) & (y <= cy + ry) & (abs(x - cx) <= rx * (y - (cy - ry)) / (2 * ry))
        img[m] = col
    img += rng.normal(0, 3, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def save_png(path, arr):
    from PIL import Image
    Image.fromarray(arr, "RGB").save(path, optimize=True)


def load_png(path):
    import numpy as np
    from PIL import Image
    return np.array(Image.open(path).convert("RGB"))


# ---------------------------------------------------------------- models

def reduced_tinyvit_sam(cfg):
    """A TinyViT SAM from the official classes, with the three things the
    official code hard-codes overridden for a reduced model:
      1. PatchMerging's stride rule (1 only for out_dim 320/448/576): the
         depthwise conv2 of each merge gets cfg's patch_merging_strides;
      2. forward_features' x.view(B, 64, 64, C): the grid g = img/16;
      3. the neck's 256 channels: prompt_embed_dim.
    """
    import torch
    from mobile_sam.modeling import MaskDecoder, PromptEncoder, Sam, TinyViT, TwoWayTransformer
    from mobile_sam.modeling.tiny_vit_sam import LayerNorm2d
    t = cfg["tiny_vit"]
    S, C, g = cfg["img_size"], cfg["prompt_embed_dim"], cfg["image_embedding_size"][0]
    enc = TinyViT(img_size=S, in_chans=3, num_classes=t["num_classes"], embed_dims=t["embed_dims"],
                  depths=t["depths"], num_heads=t["num_heads"], window_sizes=t["window_sizes"],
                  mlp_ratio=t["mlp_ratio"], drop_rate=0.0, drop_path_rate=0.0, use_checkpoint=False,
                  mbconv_expand_ratio=t["mbconv_expand_ratio"], local_conv_size=t["local_conv_size"],
                  layer_lr_decay=0.8)
    for i, s in enumerate(t["patch_merging_strides"]):
        enc.layers[i].downsample.conv2.c.stride = (s, s)
    Dl = t["embed_dims"][-1]
    enc.neck = torch.nn.Sequential(
        torch.nn.Conv2d(Dl, C, kernel_size=1, bias=False), LayerNorm2d(C),
        torch.nn.Conv2d(C, C, kernel_size=3, padding=1, bias=False), LayerNorm2d(C))

    def forward_features(self, x):  # TinyViT.forward_features with g for 64
        x = self.patch_embed(x)
        x = self.layers[0](x)
        for i in range(1, len(self.layers)):
            x = self.layers[i](x)
        B, _, Cl = x.size()
        x = x.view(B, g, g, Cl)
        x = x.permute(0, 3, 1, 2)
        return self.neck(x)
    enc.forward_features = types.MethodType(forward_features, enc)
    sam = Sam(
        image_encoder=enc,
        prompt_encoder=PromptEncoder(embed_dim=C, image_embedding_size=(g, g), input_image_size=(S, S),
                                     mask_in_chans=cfg["mask_in_chans"]),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=C, mlp_dim=cfg["decoder_mlp_dim"],
                                          num_heads=cfg["decoder_num_heads"]),
            transformer_dim=C, iou_head_depth=3, iou_head_hidden_dim=cfg["iou_head_hidden_dim"]),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375])
    sam.eval()
    return sam


def randomize_reduced(sam, seed, gains):
    """Every tensor of the state dict random and non-trivial (torch generator
    seeded): conv/linear weights U(±sqrt(3/fan_in)) (variance 1/fan_in),
    BatchNorm weight 1+0.25·U(±1), bias 0.2·U(±1), running_mean 0.3·U(±1),
    running_var 0.4+1.2·U(0,1), LayerNorm weight 1+0.1·N, bias 0.1·N,
    attention_biases N(0,1), Linear biases 0.05·N, then a few gains on the
    decoder's last layers so that logits have both signs."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    sd = sam.state_dict()
    out = {}
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(1000 + len(out) % 7, dtype=torch.long)  # a counter; ignored
            continue
        shape = v.shape
        u = lambda: torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1
        n = lambda: torch.randn(shape, generator=gen, dtype=torch.float64)
        if k.endswith("running_var"):
            x = 0.4 + 1.2 * torch.rand(shape, generator=gen, dtype=torch.float64)
        elif k.endswith("running_mean"):
            x = 0.3 * u()
        elif ".bn." in k and k.endswith("weight"):
            x = 1 + 0.25 * u()
        elif ".bn." in k and k.endswith("bias"):
            x = 0.2 * u()
        elif k.endswith("attention_biases"):
            x = n()
        elif k.endswith("positional_encoding_gaussian_matrix"):
            x = n()
        elif any(s in k for s in ("point_embeddings", "not_a_point_embed", "no_mask_embed", "iou_token", "mask_tokens")):
            x = n()
        elif v.ndim == 1 and k.endswith("weight"):  # LayerNorm / LayerNorm2d
            x = 1 + 0.1 * n()
        elif v.ndim == 1:  # biases
            x = 0.05 * n()
        else:
            fan_in = math.prod(shape[1:])
            if "output_upscaling" in k and v.ndim == 4:  # ConvTranspose2d (in, out, 2, 2)
                fan_in = shape[0]
            x = u() * math.sqrt(3.0 / fan_in)
        for pat, gain in gains.items():
            if pat in k:
                x = x * gain
        if k == "mask_decoder.iou_prediction_head.layers.2.bias":
            x = x + 0.7  # predicted IoUs around 0.7 rather than 0, so that pred_iou_thresh filters
        out[k] = x.to(v.dtype)
    return out


# ---------------------------------------------------------------- vit_t PRNG weights

GAMMA = 0x9E3779B97F4A7C15
M64 = (1 << 64) - 1


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h ^= b
        h = (h * 0x100000001B3) & M64
    return h


def splitmix_uniform(name, n):
    """n values U[-1, 1) from SplitMix64 seeded with fnv1a64(name): value i is
    mix(seed + (i+1)·γ) >> 11, times 2^-53, times 2, minus 1 (all exact in float64)."""
    import numpy as np
    seed = np.uint64(fnv1a64(name))
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = seed + i * np.uint64(GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)
    return u * 2.0 - 1.0


def vitt_rule(name, shape):
    """(scale, offset) of a vit_t tensor: value = offset + scale·U[-1, 1) (float64,
    scale·U rounded before the add), then float32, then bfloat16 (nearest even).
    Mirrored exactly by vittRule in tests/weights_vitt_test.go."""
    nd = len(shape)
    if name.endswith("running_var"):
        return 0.5, 1.0                        # [0.5, 1.5)
    if name.endswith("running_mean"):
        return 0.2, 0.0
    if name.endswith("attention_biases"):
        return 1.0, 0.0
    if name.endswith("positional_encoding_gaussian_matrix"):
        return 1.7, 0.0
    for s in ("point_embeddings", "not_a_point_embed", "no_mask_embed", "iou_token", "mask_tokens"):
        if s in name:
            return 1.7, 0.0
    if nd == 1 and name.endswith("weight"):   # BatchNorm, LayerNorm(2d) weights
        return 0.2, 1.0
    if nd == 1:                                # every bias
        return 0.1, 0.0
    fan_in = 1
    for d in shape[1:]:
        fan_in *= d
    if "output_upscaling" in name and nd == 4:  # ConvTranspose2d (in, out, 2, 2)
        fan_in = shape[0]
    return math.sqrt(3.0 / fan_in), 0.0


def vitt_tensor(name, shape):
    """-> (float32 values exactly representable in bf16, uint16 bf16 bits)."""
    import numpy as np
    n = math.prod(shape)
    scale, offset = vitt_rule(name, shape)
    v = splitmix_uniform(name, n) * scale
    v = v + offset
    bits = f32_to_bf16_bits(v.astype(np.float32))
    return bf16_bits_to_f32(bits).reshape(shape), bits.reshape(shape)


# ---------------------------------------------------------------- tracing

def nchw_to_nhwc(x):
    return x.permute(0, 2, 3, 1).contiguous()


def encoder_traces(enc, x, S):
    """Run the TinyViT encoder on x (1,3,S,S) and return its trace tensors under
    the Go encoder's trace names, channels-last (B,H,W,C): patch_embed,
    layers.i.blocks.j, layers.i (after the stage's PatchMerging); and
    neck_0..2 in (B,C,g,g) as the shared fixtures store them."""
    import torch
    tr, hooks = {}, []
    res = [S // 4]

    def seq_to_map(y, r):  # (B, L, C) -> (B, r, r, C)
        return y.reshape(y.shape[0], r, r, y.shape[2])

    hooks.append(enc.patch_embed.register_forward_hook(lambda m, i, o: tr.__setitem__("patch_embed", nchw_to_nhwc(o))))
    r = S // 4
    for li, layer in enumerate(enc.layers):
        rin = r
        for bj, blk in enumerate(layer.blocks):
            name = f"layers.{li}.blocks.{bj}"
            if li == 0:
                hooks.append(blk.register_forward_hook(lambda m, i, o, name=name: tr.__setitem__(name, nchw_to_nhwc(o.clone()))))
            else:
                hooks.append(blk.register_forward_hook(lambda m, i, o, name=name, rr=rin: tr.__setitem__(name, seq_to_map(o, rr).clone())))
        if layer.downsample is not None:
            r = r // layer.downsample.conv2.c.stride[0]

        def stage_hook(m, i, o, name=f"layers.{li}", rr=r):
            if o.ndim == 4:
                tr[name] = nchw_to_nhwc(o)
            else:
                tr[name] = seq_to_map(o, rr).clone()
        hooks.append(layer.register_forward_hook(stage_hook))
    for k in range(3):
        hooks.append(enc.neck[k].register_forward_hook(lambda m, i, o, k=k: tr.__setitem__(f"neck_{k}", o.clone())))
    with torch.no_grad():
        emb = enc(x)
    for h in hooks:
        h.remove()
    return emb, tr


def trace_order(enc):
    names = ["patch_embed"]
    for li, layer in enumerate(enc.layers):
        names += [f"layers.{li}.blocks.{bj}" for bj in range(len(layer.blocks))]
        names.append(f"layers.{li}")
    return names + ["neck_0", "neck_1", "neck_2"]


def rel_err(a, b):
    import torch
    d = (a.double() - b.double()).abs().max().item()
    return d, d / b.double().abs().max().item(), d / b.double().std(unbiased=False).item()


# ---------------------------------------------------------------- predict cases

def predict_cases(predictor, image, spec, full_res):
    """The shared fixtures' cases a–e and batch. spec: prompts in original
    pixels. full_res: the cases whose full-resolution logits/masks are stored."""
    import numpy as np
    import torch
    H, W = image.shape[:2]
    tensors, cases = [], {}
    pe = predictor.model.prompt_encoder
    captured = {}
    h1 = pe.register_forward_hook(lambda m, i, o: captured.update(sparse=o[0].clone(), dense=o[1].clone()))

    # The prompts as they reach the prompt encoder: wrap its forward args.
    orig_forward = pe.forward

    def pe_forward(points, boxes, masks):
        captured["points"] = None if points is None else points[0].clone()
        captured["boxes"] = None if boxes is None else boxes.clone()
        captured["masks"] = None if masks is None else masks.clone()
        return orig_forward(points, boxes, masks)
    pe.forward = pe_forward

    def run(name, call, **kw):
        c = {"call": call}
        st = {}
        if call == "SamPredictor.predict":
            pc, pl, box = kw.get("point_coords"), kw.get("point_labels"), kw.get("box")
            c["point_coords"] = None if pc is None else pc.tolist()
            c["point_labels"] = None if pl is None else pl.tolist()
            c["box"] = None if box is None else box.tolist()
            c["mask_input"] = kw.pop("mask_desc", None)
            c["multimask_output"] = kw["multimask_output"]
            outs = {}
            for rl in (True, False):
                m, iou, low = predictor.predict(return_logits=rl, **kw)
                outs[rl] = (m, iou, low)
            logits, iou, low = outs[True]
            masks = outs[False][0]
            logits, masks, iou, low = logits[None], masks[None], iou[None], low[None]
            if pc is not None:
                st["coords_in"] = captured["points"].numpy().astype(np.float32)
                c["point_coords_in"] = st["coords_in"][0].tolist()
            if box is not None:
                st["box_in"] = captured["boxes"].reshape(1, 4).numpy().astype(np.float32)
                c["box_in"] = st["box_in"][0].tolist()
        else:  # batch
            boxes = kw["boxes"]
            c["boxes"] = boxes.tolist()
            bt = predictor.transform.apply_boxes_torch(torch.as_tensor(boxes, dtype=torch.float), image.shape[:2])
            outs = {}
            for rl in (True, False):
                m, iou, low = predictor.predict_torch(None, None, boxes=bt, multimask_output=False, return_logits=rl)
                outs[rl] = (m, iou, low)
            logits, iou, low = [x.numpy() for x in outs[True]]
            masks = outs[False][0].numpy()
            st["boxes_in"] = bt.numpy().astype(np.float32)
            c["boxes_in"] = st["boxes_in"].tolist()
            c["multimask_output"] = False
        st["sparse"] = captured["sparse"].numpy()
        if name in ("a", "e"):
            st["dense"] = captured["dense"].numpy()
        if name == "e":
            st["mask_input"] = captured["masks"].numpy()
        st["low_res_logits"] = np.asarray(low, dtype=np.float32)
        st["iou"] = np.asarray(iou, dtype=np.float32)
        if name in full_res:
            st["logits"] = np.asarray(logits, dtype=np.float32)
            st["masks"] = np.asarray(masks, dtype=bool)
        c["num_masks"] = int(st["iou"].shape[1])
        if name == "a":
            c["best_mask"] = int(np.argmax(st["iou"][0]))
        c["stored"] = sorted(st)
        order = ["coords_in", "box_in", "boxes_in", "mask_input", "sparse", "dense", "low_res_logits", "iou", "logits", "masks"]
        for k in order:
            if k in st:
                tensors.append((f"{name}.{k}", np.ascontiguousarray(st[k])))
        cases[name] = c
        return st

    P = lambda l: np.array(l, dtype=np.float64)
    a = run("a", "SamPredictor.predict", point_coords=P(spec["a"]), point_labels=np.array([1]), multimask_output=True)
    run("b", "SamPredictor.predict", point_coords=P(spec["b"]), point_labels=np.array([1, 0]), multimask_output=False)
    run("c", "SamPredictor.predict", box=P(spec["c"]), multimask_output=False)
    run("d", "SamPredictor.predict", point_coords=P(spec["d_point"]), point_labels=np.array([1]), box=P(spec["d_box"]), multimask_output=True)
    best = cases["a"]["best_mask"]
    run("e", "SamPredictor.predict", point_coords=P(spec["a"]), point_labels=np.array([1]),
        mask_input=a["low_res_logits"][0, best][None], multimask_output=False,
        mask_desc="a.low_res_logits[0, a.best_mask] (stored as e.mask_input)")
    run("batch", "SamPredictor.predict_torch", boxes=P(spec["batch"]))
    pe.forward = orig_forward
    h1.remove()
    return cases, tensors


# ---------------------------------------------------------------- AMG

class AMGProbe:
    """Records the candidate scores of SamAutomaticMaskGenerator and checks
    every NMS call: how close any box pair's IoU comes to its threshold, and
    whether torchvision's order equals a stable-sort greedy NMS's."""

    def __init__(self, amg_mod):
        import torch
        self.mod = amg_mod
        self.ious, self.stabs, self.nms_margin, self.nms_unstable = [], [], 1.0, 0
        self.orig_nms, self.orig_stab = amg_mod.batched_nms, amg_mod.calculate_stability_score
        from torchvision.ops import box_iou

        def nms(boxes, scores, idxs, iou_threshold):
            keep = self.orig_nms(boxes, scores, idxs, iou_threshold)
            b = boxes.double()
            iou = box_iou(b, b)
            same = idxs[:, None] == idxs[None, :]
            off = ~torch.eye(len(b), dtype=torch.bool)
            sel = iou[same & off]
            if len(sel):
                self.nms_margin = min(self.nms_margin, (sel - iou_threshold).abs().min().item())
            # stable greedy NMS
            order = sorted(range(len(scores)), key=lambda i: -scores[i].item())
            kept = []
            for i in order:
                if all(not (idxs[i] == idxs[j] and iou[i, j] > iou_threshold) for j in kept):
                    kept.append(i)
            if kept != keep.tolist():
                self.nms_unstable += 1
            return keep

        def stab(masks, mask_threshold, threshold_offset):
            s = self.orig_stab(masks, mask_threshold, threshold_offset)
            self.stabs += s.tolist()
            return s
        amg_mod.batched_nms = nms
        amg_mod.calculate_stability_score = stab

    def close(self):
        self.mod.batched_nms = self.orig_nms
        self.mod.calculate_stability_score = self.orig_stab


def gap_threshold(values, qlo, qhi):
    """The midpoint of the widest gap of the sorted values between their
    quantiles qlo and qhi."""
    v = sorted(x for x in values if x == x)
    v = v[int(qlo * (len(v) - 1)):int(qhi * (len(v) - 1)) + 1]
    best = (0, None)
    for a, b in zip(v, v[1:]):
        if b - a > best[0]:
            best = (b - a, (a + b) / 2)
    return best[1], best[0]


def amg_fixture(sam, image, image_name, iou_range, stab_range, min_areas):
    import numpy as np
    import torch
    import mobile_sam.automatic_mask_generator as amg_mod
    from mobile_sam import SamAutomaticMaskGenerator
    from mobile_sam.utils.amg import generate_crop_boxes
    H, W = image.shape[:2]
    base = dict(points_per_side=8, points_per_batch=16, stability_score_offset=1.0, box_nms_thresh=0.7,
                crop_n_layers=1, crop_nms_thresh=0.7, crop_overlap_ratio=512 / 1500,
                crop_n_points_downscale_factor=2, output_mode="uncompressed_rle")

    # Pass 1: every candidate's predicted_iou (wrap predict_torch).
    gen = SamAutomaticMaskGenerator(sam, pred_iou_thresh=0.0, stability_score_thresh=0.0, min_mask_region_area=0, **base)
    ious = []
    pt = gen.predictor.predict_torch

    def rec(*a, **k):
        out = pt(*a, **k)
        ious.extend(out[1].flatten().tolist())
        return out
    gen.predictor.predict_torch = rec
    gen.generate(image)
    iou_t, iou_gap = gap_threshold(ious, *iou_range)
    # Pass 2: the stability scores of the masks that pass it.
    probe = AMGProbe(amg_mod)
    gen = SamAutomaticMaskGenerator(sam, pred_iou_thresh=iou_t, stability_score_thresh=0.0, min_mask_region_area=0, **base)
    gen.generate(image)
    stab_t, stab_gap = gap_threshold(probe.stabs, *stab_range)
    probe.close()
    iou_t, stab_t = round(iou_t, 4), round(stab_t, 4)

    runs = []
    probe = AMGProbe(amg_mod)
    for ma in min_areas:
        params = dict(base, pred_iou_thresh=iou_t, stability_score_thresh=stab_t, min_mask_region_area=ma)
        gen = SamAutomaticMaskGenerator(sam, **params)
        recs = gen.generate(image)
        out = []
        for r in recs:
            seg = r["segmentation"]
            out.append({"segmentation": {"size": [int(s) for s in seg["size"]], "counts": [int(c) for c in seg["counts"]]},
                        "area": int(r["area"]), "bbox": [float(v) if isinstance(v, float) else int(v) for v in r["bbox"]],
                        "predicted_iou": float(r["predicted_iou"]),
                        "point_coords": [[float(v) for v in p] for p in r["point_coords"]],
                        "stability_score": float(r["stability_score"]),
                        "crop_box": [float(v) if isinstance(v, float) else int(v) for v in r["crop_box"]]})
        params["point_grids"] = None
        runs.append({"params": params, "num_records": len(out), "records": out})
    probe.close()
    boxes, layers = generate_crop_boxes((H, W), 1, 512 / 1500)
    info = {"pred_iou_thresh": iou_t, "iou_gap": iou_gap, "stability_score_thresh": stab_t, "stability_gap": stab_gap,
            "nms_margin": probe.nms_margin, "nms_unstable_calls": probe.nms_unstable,
            "num_records": [r["num_records"] for r in runs], "candidates": len(ious)}
    return {"image": image_name, "image_size": [H, W], "crop_boxes_xyxy": [list(map(int, b)) for b in boxes],
            "crop_layer_idxs": list(map(int, layers)), "runs": runs}, info


# ---------------------------------------------------------------- the reduced set

TINYVIT_CFG = {
    "name": "tinyvit",
    "has_image_encoder": True,
    "encoder_type": "tiny_vit",
    "img_size": 128,
    "patch_size": 16,
    "in_chans": 3,
    "tiny_vit": {
        "img_size": 128,
        "in_chans": 3,
        "embed_dims": [8, 32, 40, 48],
        "depths": [1, 1, 2, 1],
        "num_heads": [1, 2, 2, 3],
        "window_sizes": [7, 5, 8, 3],
        "mlp_ratio": 3.0,
        "mbconv_expand_ratio": 3.0,
        "local_conv_size": 5,
        "patch_merging_strides": [2, 2, 1],
        "num_classes": 10,
        "drop_rate": 0.0,
        "drop_path_rate": 0.0,
        "use_checkpoint": False,
        "layer_lr_decay": 0.8,
    },
    "encoder_layer_norm_eps": 1e-05,
    "encoder_act": "gelu_erf",
    "out_chans": 32,
    "neck_layer_norm2d_eps": 1e-06,
    "prompt_embed_dim": 32,
    "image_embedding_size": [8, 8],
    "input_image_size": [128, 128],
    "mask_input_size": [32, 32],
    "mask_in_chans": 16,
    "prompt_layer_norm2d_eps": 1e-06,
    "prompt_mask_act": "gelu_erf",
    "pe_num_pos_feats": 16,
    "decoder_depth": 2,
    "decoder_num_heads": 4,
    "decoder_mlp_dim": 64,
    "decoder_mlp_act": "relu",
    "decoder_attention_downsample_rate": 2,
    "decoder_self_attn_head_dim": 8,
    "decoder_cross_attn_head_dim": 4,
    "decoder_layer_norm_eps": 1e-05,
    "num_multimask_outputs": 3,
    "num_mask_tokens": 4,
    "iou_head_depth": 3,
    "iou_head_hidden_dim": 32,
    "hypernetwork_mlp_depth": 3,
    "upscaling_layer_norm2d_eps": 1e-06,
    "upscaling_act": "gelu_erf",
    "pixel_mean": [123.675, 116.28, 103.53],
    "pixel_std": [58.395, 57.12, 57.375],
    "mask_threshold": 0.0,
    "image_format": "RGB",
}

SEED = 1101


def gen_tinyvit(out):
    import numpy as np
    import torch
    from mobile_sam import SamPredictor
    os.makedirs(out, exist_ok=True)
    cfg = copy.deepcopy(TINYVIT_CFG)
    gains = {".layers.2.weight": 6.0, "output_upscaling.3": 3.0}  # hypernetwork/iou-head last layers, upscaling
    cfg["init"] = {
        "seed": SEED,
        "generator": "tests/testdata/gen/gen_tinyvit.py (torch.Generator().manual_seed(seed), in state_dict order)",
        "conv_linear_weight": "U(-1,1)*sqrt(3/fan_in) (ConvTranspose2d: fan_in = in channels)",
        "batch_norm": "weight 1+0.25*U(-1,1), bias 0.2*U(-1,1), running_mean 0.3*U(-1,1), running_var 0.4+1.2*U(0,1), num_batches_tracked 1000+",
        "layer_norm": "weight 1+0.1*N(0,1), bias 0.1*N(0,1)",
        "linear_bias": "0.05*N(0,1)",
        "attention_biases": "N(0,1)",
        "embeddings_and_pe_gaussian": "N(0,1)",
        "gains": gains,
        "iou_head_last_bias_offset": 0.7,
        "decoder": "random, not fitted (the masks are large blobs, both signs)",
        "overrides": ["PatchMerging conv2 stride from tiny_vit.patch_merging_strides (official rule: 1 only for out_dim 320/448/576)",
                      "forward_features view(B, g, g, C) with g = 8 (official: 64)",
                      "neck channels prompt_embed_dim = 32 (official: 256)"],
    }
    torch.manual_seed(SEED)
    sam = reduced_tinyvit_sam(cfg)
    sam.load_state_dict(randomize_reduced(sam, SEED, gains))
    sam.eval()
    S = cfg["img_size"]
    images = {0: (150, 113, 7), 1: (60, 76, 8)}  # W, H, seed: image_0 down-scaled, image_1 up-scaled (portrait)
    sd = {k: v.detach().clone() for k, v in sam.state_dict().items()}
    pth = os.path.join(out, "model.pth")
    torch.save(sd, pth)
    # Load it back as the official builder does, then .eval() AFTER loading
    # (TinyViT's Attention caches its gathered biases `ab` in eval()).
    sam = reduced_tinyvit_sam(cfg)
    sam.load_state_dict(torch.load(pth))
    sam.eval()
    write_safetensors(os.path.join(out, "model.safetensors"), [(k, v.numpy()) for k, v in sd.items() if v.dtype != torch.long])
    # num_batches_tracked (int64) is in model.pth as in the official state dict;
    # safetensors here has F32/U8/BOOL only, so it stays out (the loader ignores it).
    write_json(os.path.join(out, "config.json"), cfg)

    stats = {}
    predictor = SamPredictor(sam)
    for k, (W, H, s) in images.items():
        img = synthetic_image(W, H, SEED * 10 + s)
        save_png(os.path.join(out, f"image_{k}.png"), img)
        img = load_png(os.path.join(out, f"image_{k}.png"))
        predictor.set_image(img)
        resized = predictor.transform.apply_image(img)
        x = torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None, :, :, :]
        x = sam.preprocess(x.float())
        emb, tr = encoder_traces(sam.image_encoder, x, S)
        assert torch.equal(emb, predictor.features), "traced encoder differs from set_image's"
        dense_pe = sam.prompt_encoder.get_dense_pe()
        ts = [("resized_uint8", np.ascontiguousarray(resized)), ("input", x.numpy())]
        for n in trace_order(sam.image_encoder):
            ts.append((n, tr[n].numpy()))
        ts += [("embedding", emb.numpy()), ("dense_pe", dense_pe.detach().numpy())]
        write_safetensors(os.path.join(out, f"image_{k}.encoder.safetensors"), ts)
        # The reference's own fp32 error: the same encoder in float64.
        enc64 = copy.deepcopy(sam.image_encoder).double()
        enc64.eval()
        with torch.no_grad():
            e64 = enc64(x.double())
        stats[f"image_{k}"] = {"embedding_fp32_vs_fp64": rel_err(emb, e64),
                               "trace_std": {n: tr[n].double().std().item() for n in trace_order(sam.image_encoder)},
                               "embedding_std": emb.double().std().item()}
        # Prompts (original pixels), relative to the image.
        fx = lambda x, y: [round(x * W * 4) / 4, round(y * H * 4) / 4]
        spec = {"a": [fx(0.32, 0.62)], "b": [fx(0.32, 0.62), fx(0.7, 0.3)],
                "c": fx(0.55, 0.45) + fx(0.85, 0.7), "d_point": [fx(0.5, 0.6)], "d_box": fx(0.35, 0.4) + fx(0.7, 0.85),
                "batch": [fx(0.2, 0.5) + fx(0.45, 0.9), fx(0.15, 0.15) + fx(0.35, 0.6), fx(0.15, 0.1) + fx(0.5, 0.55)]}
        full = ("a", "e") if k == 0 else ("a", "b", "c", "d", "e", "batch")
        cases, pts = predict_cases(predictor, img, spec, full)
        write_json(os.path.join(out, f"image_{k}.predict.json"),
                   {"image": f"image_{k}.png", "original_size": [H, W], "input_size": list(resized.shape[:2]), "cases": cases})
        write_safetensors(os.path.join(out, f"image_{k}.predict.safetensors"), pts)
        d = dict(pts)
        stats[f"image_{k}"]["positive_share"] = {n: float((d[n + ".low_res_logits"] > 0).mean()) for n in cases}
        stats[f"image_{k}"]["iou"] = {n: d[n + ".iou"].tolist() for n in cases}
    img0 = load_png(os.path.join(out, "image_0.png"))
    fxt, info = amg_fixture(sam, img0, "image_0.png", (0.5, 0.85), (0.3, 0.8), (0, 10))
    write_json(os.path.join(out, "image_0.amg.json"), fxt)
    stats["amg"] = info
    return stats


# ---------------------------------------------------------------- vit_t

def gen_vitt(out):
    import numpy as np
    import torch
    from mobile_sam import SamPredictor
    from mobile_sam.build_sam import build_sam_vit_t
    os.makedirs(out, exist_ok=True)
    sam = build_sam_vit_t()
    sd = sam.state_dict()
    keys, new, allbits = [], {}, {}
    h = hashlib.sha256()
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            new[k] = v
            continue
        vals, bits = vitt_tensor(k, list(v.shape))
        new[k] = torch.from_numpy(vals.copy())
        if k.startswith("image_encoder.head.") or k.startswith("image_encoder.norm_head."):
            continue  # the classifier: in the state dict, ignored by the loader, not regenerated in Go
        keys.append({"name": k, "shape": list(v.shape)})
        allbits[k] = bits
    for e in sorted(keys, key=lambda e: e["name"]):
        h.update(e["name"].encode())
        h.update(allbits[e["name"]].astype("<u2").tobytes())
    with tempfile.TemporaryDirectory() as td:
        ck = os.path.join(td, "mobile_sam.pt")
        torch.save(new, ck)
        sam = build_sam_vit_t(checkpoint=ck)  # the official builder: eval(), then load_state_dict
    sam.eval()  # again, after loading (the MobileSAM README does): recomputes the cached biases

    # One image: 256x192 synthetic (no noise, so the PNG stays small), up-scaled by
    # the predictor to 1024x768.
    W, H = 256, 192
    save_png(os.path.join(out, "image.png"), synthetic_smooth(W, H))
    img = load_png(os.path.join(out, "image.png"))
    predictor = SamPredictor(sam)
    t0 = time.time()
    predictor.set_image(img)
    t_enc = time.time() - t0
    resized = predictor.transform.apply_image(img)
    x = torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None]
    x = sam.preprocess(x.float())
    emb, tr = encoder_traces(sam.image_encoder, x, 1024)
    assert torch.equal(emb, predictor.features)
    enc64 = copy.deepcopy(sam.image_encoder).double()
    enc64.eval()
    with torch.no_grad():
        e64 = enc64(x.double())
    ts = []
    # Each trace subsampled to at most 2048 values: stride over H, W and C.
    sub = {}
    for n in trace_order(sam.image_encoder):
        t = tr[n]
        if n.startswith("neck_"):
            t = nchw_to_nhwc(t)
        Bq, Hq, Wq, Cq = t.shape
        sh = max(1, Hq // 8)
        sc = max(1, Cq // 32)
        s = t[:, ::sh, ::sh, ::sc].contiguous()
        sub[n] = {"stride_hw": sh, "stride_c": sc, "shape": list(t.shape),
                  "std": t.double().std(unbiased=False).item(), "max_abs": t.double().abs().max().item()}
        ts.append(("trace." + n, s.numpy()))
    es = emb[:, ::4, ::4, ::4].contiguous()  # (1, 64, 16, 16)
    ts.append(("embedding_sub", es.numpy()))
    ts.append(("embedding_channel_mean", emb.double().mean(dim=(0, 2, 3)).float().numpy()))
    ts.append(("embedding_channel_std", emb.double().std(dim=(0, 2, 3), unbiased=False).float().numpy()))
    # One predict case: a single positive point, multimask.
    pt = np.array([[0.4 * W, 0.55 * H]])
    masks, iou, low = predictor.predict(point_coords=pt, point_labels=np.array([1]), multimask_output=True, return_logits=True)
    ts.append(("a.iou", iou[None].astype(np.float32)))
    ts.append(("a.low_res_logits_sub", np.ascontiguousarray(low[None, :, ::4, ::4]).astype(np.float32)))
    write_safetensors(os.path.join(out, "reference.safetensors"), ts)
    ref = {
        "what": "full vit_t (MobileSAM) shape, PRNG weights rounded to bfloat16; see README.md",
        "weights": {
            "prng": "SplitMix64 per tensor, seed fnv1a64(name), value i = mix(seed + (i+1)*0x9E3779B97F4A7C15) >> 11 times 2^-53 -> u in [0,1), U = 2u-1",
            "value": "offset + scale*U in float64 (scale*U rounded first), then float32, then bfloat16 round-to-nearest-even",
            "rules": "vitt_rule in gen_tinyvit.py / vittRule in tests/weights_vitt_test.go",
            "sha256": h.hexdigest(),
            "sha256_of": "for each tensor in name order: name bytes, then its bfloat16 bits little-endian",
            "num_tensors": len(keys),
            "num_params": int(sum(math.prod(e["shape"]) for e in keys)),
        },
        "tensors": keys,
        "image": "image.png",
        "original_size": [H, W],
        "input_size": list(resized.shape[:2]),
        "predict_a": {"point_coords": pt.tolist(), "point_labels": [1], "multimask_output": True,
                      "low_res_stride": 4},
        "embedding": {"sub": "embedding[:, ::4, ::4, ::4] (1, 64, 16, 16)",
                      "std": emb.double().std(unbiased=False).item(), "max_abs": emb.double().abs().max().item(),
                      "mean": emb.double().mean().item()},
        "traces": sub,
        "reference_fp32_vs_fp64": {"embedding_max_abs_rel_maxstd": rel_err(emb, e64)},
    }
    write_json(os.path.join(out, "reference.json"), ref)
    return {"fp32_vs_fp64": rel_err(emb, e64), "encoder_s": t_enc, "sha256": h.hexdigest(),
            "positive_share": float((low > 0).mean()), "iou": iou.tolist(),
            "trace_std": {n: v["std"] for n, v in sub.items()}}


def synthetic_smooth(W, H):
    """Colour gradient and 6 filled shapes with soft edges, no noise (compresses well)."""
    import numpy as np
    rng = np.random.RandomState(4242)
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    img = np.stack([60 + 120 * x / W, 80 + 100 * y / H, 160 - 80 * (x + y) / (W + H)], -1)
    for k in range(6):
        col = rng.uniform(0, 255, 3)
        cx, cy = rng.uniform(0.15, 0.85) * W, rng.uniform(0.15, 0.85) * H
        rx, ry = rng.uniform(0.06, 0.2) * W, rng.uniform(0.06, 0.2) * H
        if k % 2 == 0:
            d = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
        else:
            d = np.maximum(abs(x - cx) / rx, abs(y - cy) / ry)
        a = np.clip((1.05 - d) * 10, 0, 1)[..., None]
        img = img * (1 - a) + col * a
    img += 12 * np.sin(x / 3.0)[..., None] * np.cos(y / 5.0)[..., None]  # some texture
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sets", nargs="*", default=["tinyvit", "vit_t"])
    ap.add_argument("--out", default=TESTDATA)
    a = ap.parse_args()
    import numpy as np
    import torch
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    with tempfile.TemporaryDirectory() as tmp:
        unpack_reference(tmp)
        for s in a.sets:
            t0 = time.time()
            st = {"tinyvit": gen_tinyvit, "vit_t": gen_vitt}[s](os.path.join(a.out, s))
            print(f"== {s}: {time.time() - t0:.1f} s")
            print(json.dumps(st, indent=1))


if __name__ == "__main__":
    main()
