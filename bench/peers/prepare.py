"""Builds the official models with seeded random weights and writes what the
engines need into OUT (default /tmp/samgo-peers):

  vit_b.safetensors     the whole SAM ViT-B state dict (what `sam bench/embed -checkpoint` load)
  vit_b_encoder.onnx    its image encoder, torch.onnx.export, opset 17, input (1,3,1024,1024)
  vit_t.safetensors     MobileSAM (TinyViT-5M) state dict, likewise
  image.png             one 1024×1024 RGB image (seeded noise over gradients)
  input.f32             the official predictor's encoder input for image.png, raw float32 (1,3,1024,1024)
  vit_b_embedding.npy   the official embedding of image.png (predictor.features), for the agreement check
  vit_t_embedding.npy   the same from MobileSAM

Usage: /usr/bin/python3 bench/peers/prepare.py [OUT]
"""
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

from common import import_official, randomize, save_safetensors

OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/samgo-peers"
os.makedirs(OUT, exist_ok=True)
torch.set_num_threads(2)


def image():
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:1024, 0:1024]
    img = np.stack([x / 4, y / 4, (x + y) / 8], -1) + rng.normal(0, 12, (1024, 1024, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    Image.fromarray(img).save(os.path.join(OUT, "image.png"))
    return img


def official(pkg, build, seed, img):
    """Builds pkg's model, randomises it, saves it and its embedding of img."""
    mod = __import__(pkg)
    sam = getattr(mod, "sam_model_registry")[build](checkpoint=None)
    randomize(sam, seed)
    sam.eval()  # after the weights change: TinyViT caches its gathered attention biases here
    save_safetensors(os.path.join(OUT, f"{build}.safetensors"), sam.state_dict())
    pred = getattr(mod, "SamPredictor")(sam)
    with torch.no_grad():
        pred.set_image(img)
    np.save(os.path.join(OUT, f"{build}_embedding.npy"), pred.features.numpy())
    return sam, pred


t0 = time.time()
img = image()
import_official("segment-anything")
sam, pred = official("segment_anything", "vit_b", 1, img)
x = sam.preprocess(pred.transform.apply_image_torch(torch.as_tensor(img).permute(2, 0, 1)[None].float()))
x.numpy().astype(np.float32).tofile(os.path.join(OUT, "input.f32"))
onnx = os.path.join(OUT, "vit_b_encoder.onnx")
with torch.no_grad():  # always: the weights above are what it must hold
    torch.onnx.export(sam.image_encoder, x, onnx + ".part", opset_version=17,
                      input_names=["input"], output_names=["embedding"])
os.replace(onnx + ".part", onnx)
del sys.modules["segment_anything"]
for k in [k for k in sys.modules if k.startswith("segment_anything.")]:
    del sys.modules[k]
import_official("MobileSAM")
official("mobile_sam", "vit_t", 2, img)
print(f"prepare: wrote {OUT} in {time.time() - t0:.0f} s", file=sys.stderr)
