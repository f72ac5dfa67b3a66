#!/usr/bin/python3
"""Regenerates the Pillow reference outputs in this folder.

Run with Pillow 9.4.0 (the version behind tests/testdata; Debian 12's
python3-pil), cjpeg from libjpeg-turbo-progs and nothing else:

    cd sam/imgproc/testdata/pillow && /usr/bin/python3 gen.py

For every input file X it writes X.expected.png =
Image.open(X).convert("RGB") saved as an RGB PNG, and manifest.json lists
them. Inputs are small synthetic images, some written byte by byte to reach
the cases Pillow's own writers don't produce.
"""
import io, json, os, struct, subprocess, zlib

import numpy as np
from PIL import Image, features

assert Image.__version__ == "9.4.0", Image.__version__
rng = np.random.default_rng(1234)


def pattern(w, h):
    """Smooth colour gradients, hard edges and noise: exercises chroma
    upsampling and clipping."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 128 + 127 * np.sin(x / 3.0 + y / 5.0)
    img = np.stack([r, g, b], -1)
    img[h // 3 : 2 * h // 3, w // 4 : w // 2] = [250, 20, 30]
    img[(x - w * 0.7) ** 2 + (y - h * 0.5) ** 2 < (h / 4) ** 2] = [10, 200, 240]
    img += rng.normal(0, 6, img.shape)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


files = {}


def put(name, data):
    with open(name, "wb") as f:
        f.write(data)
    files[name] = {}


def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def png(w, h, depth, ctype, rows, extra=b""):
    raw = b"".join(b"\x00" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
            + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def pack_bits(vals, depth):
    out, acc, n = bytearray(), 0, 0
    for v in vals:
        acc = (acc << depth) | int(v)
        n += depth
        if n == 8:
            out.append(acc)
            acc, n = 0, 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


W, H = 13, 7
# --- PNG -----------------------------------------------------------------
for depth in (1, 2, 4, 8):
    v = rng.integers(0, 1 << depth, (H, W))
    put(f"png_gray{depth}.png", png(W, H, depth, 0, [pack_bits(r, depth) for r in v]))
g16 = rng.integers(0, 600, (H, W)).astype(">u2")  # around the 255 clip point
g16[0, :4] = [0, 255, 256, 65535]
put("png_gray16.png", png(W, H, 16, 0, [r.tobytes() for r in g16]))
put("png_gray16_trns.png", png(W, H, 16, 0, [r.tobytes() for r in g16], chunk(b"tRNS", struct.pack(">H", int(g16[1, 1])))))
g8 = rng.integers(0, 256, (H, W)).astype(np.uint8)
put("png_gray8_trns.png", png(W, H, 8, 0, [r.tobytes() for r in g8], chunk(b"tRNS", struct.pack(">H", int(g8[0, 0])))))
ga8 = rng.integers(0, 256, (H, W, 2)).astype(np.uint8)
put("png_ga8.png", png(W, H, 8, 4, [r.tobytes() for r in ga8]))
ga16 = rng.integers(0, 65536, (H, W, 2)).astype(">u2")
put("png_ga16.png", png(W, H, 16, 4, [r.tobytes() for r in ga16]))
rgb8 = pattern(W, H)
put("png_rgb8.png", png(W, H, 8, 2, [r.tobytes() for r in rgb8]))
put("png_rgb8_trns.png", png(W, H, 8, 2, [r.tobytes() for r in rgb8], chunk(b"tRNS", struct.pack(">HHH", *map(int, rgb8[0, 0])))))
rgb16 = rng.integers(0, 65536, (H, W, 3)).astype(">u2")
put("png_rgb16.png", png(W, H, 16, 2, [r.tobytes() for r in rgb16]))
put("png_rgb16_trns.png", png(W, H, 16, 2, [r.tobytes() for r in rgb16], chunk(b"tRNS", struct.pack(">HHH", *map(int, rgb16[0, 0])))))
rgba8 = rng.integers(0, 256, (H, W, 4)).astype(np.uint8)
rgba8[0, :3, 3] = 0  # fully transparent pixels keep their colour
put("png_rgba8.png", png(W, H, 8, 6, [r.tobytes() for r in rgba8]))
rgba16 = rng.integers(0, 65536, (H, W, 4)).astype(">u2")
put("png_rgba16.png", png(W, H, 16, 6, [r.tobytes() for r in rgba16]))
pal = rng.integers(0, 256, (6, 3)).astype(np.uint8)
idx = rng.integers(0, 6, (H, W)).astype(np.uint8)
idx[0, :4] = [6, 7, 100, 255]  # beyond the 6 PLTE entries
put("png_pal8_trns_oor.png", png(W, H, 8, 3, [r.tobytes() for r in idx], chunk(b"PLTE", pal.tobytes()) + chunk(b"tRNS", bytes([0, 128]))))
idx2 = rng.integers(0, 4, (H, W))
put("png_pal2.png", png(W, H, 2, 3, [pack_bits(r, 2) for r in idx2], chunk(b"PLTE", pal[:4].tobytes())))

# --- JPEG ----------------------------------------------------------------
for (w, h) in ((37, 23), (36, 22), (1, 1), (2, 3)):
    base = pattern(w, h)
    im = Image.fromarray(base)
    for name, sub in (("444", 0), ("422", 1), ("420", 2)):
        b = io.BytesIO()
        im.save(b, "JPEG", quality=90, subsampling=sub)
        put(f"jpeg_{name}_{w}x{h}.jpg", b.getvalue())
    ppm = io.BytesIO()
    im.save(ppm, "PPM")
    for name, sample in (("440", "1x2"), ("411", "4x1")):
        out = subprocess.run(["cjpeg", "-quality", "90", "-sample", sample], input=ppm.getvalue(), capture_output=True, check=True).stdout
        put(f"jpeg_{name}_{w}x{h}.jpg", out)
im = Image.fromarray(pattern(37, 23))
b = io.BytesIO(); im.save(b, "JPEG", quality=90, progressive=True); put("jpeg_420_progressive.jpg", b.getvalue())
b = io.BytesIO(); im.convert("L").save(b, "JPEG", quality=90); put("jpeg_gray.jpg", b.getvalue())
b = io.BytesIO(); im.convert("CMYK").save(b, "JPEG", quality=90); put("jpeg_cmyk.jpg", b.getvalue())
cm = Image.fromarray(rng.integers(0, 256, (23, 37, 4)).astype(np.uint8), "CMYK")
b = io.BytesIO(); cm.save(b, "JPEG", quality=95); put("jpeg_cmyk_random.jpg", b.getvalue())

# --- GIF (written by hand: logical screen larger than the frame) ---------
def lzw_literal(indices, min_code=8):
    """LZW stream of literal codes only, with a clear code often enough
    that the code width stays min_code+1."""
    clear, eoi, width = 1 << min_code, (1 << min_code) + 1, min_code + 1
    codes = [clear]
    for i, v in enumerate(indices):
        if i and i % 200 == 0:
            codes.append(clear)
        codes.append(int(v))
    codes.append(eoi)
    out, acc, n = bytearray(), 0, 0
    for c in codes:
        acc |= c << n
        n += width
        while n >= 8:
            out.append(acc & 0xFF); acc >>= 8; n -= 8
    if n:
        out.append(acc)
    data = bytearray([min_code])
    for i in range(0, len(out), 255):
        blk = out[i : i + 255]
        data += bytes([len(blk)]) + blk
    return bytes(data + b"\x00")


def gif(sw, sh, palette, frame, x0, y0, transparent=None, local=None):
    fh, fw = frame.shape
    n = len(palette)
    size_bits = max(n - 1, 1).bit_length() - 1
    gct = bytes(np.array(palette, np.uint8).tobytes()) + b"\x00" * (3 * ((2 << size_bits) - n))
    out = b"GIF89a" + struct.pack("<HHBBB", sw, sh, 0x80 | size_bits, 0, 0) + gct
    if transparent is not None:
        out += b"\x21\xf9\x04" + bytes([1]) + b"\x00\x00" + bytes([transparent]) + b"\x00"
    flags = 0
    lct = b""
    if local is not None:
        lb = max(len(local) - 1, 1).bit_length() - 1
        flags = 0x80 | lb
        lct = np.array(local, np.uint8).tobytes() + b"\x00" * (3 * ((2 << lb) - len(local)))
    out += b"\x2c" + struct.pack("<HHHHB", x0, y0, fw, fh, flags) + lct
    out += lzw_literal(frame.reshape(-1)) + b"\x3b"
    return out


gpal = [(10, 20, 30), (200, 10, 10), (10, 200, 10), (90, 80, 70), (10, 10, 200), (255, 255, 0), (0, 255, 255), (250, 250, 250)]
fr = rng.integers(0, 8, (4, 5)).astype(np.uint8)
fr[0, 0] = 3
put("gif_frame_trns.gif", gif(9, 7, gpal, fr, 2, 1, transparent=3))
put("gif_frame_notrns.gif", gif(9, 7, gpal, fr, 2, 1))
put("gif_full_local.gif", gif(5, 4, gpal, fr, 0, 0, local=[(c[2], c[0], c[1]) for c in gpal]))
b = io.BytesIO(); Image.fromarray(pattern(W, H)).convert("P", palette=Image.ADAPTIVE, colors=16).save(b, "GIF"); put("gif_pillow.gif", b.getvalue())

# --- BMP -----------------------------------------------------------------
base = Image.fromarray(pattern(W, H))
for mode in ("RGB", "P", "L", "1"):
    im = base.convert(mode) if mode != "P" else base.convert("P", palette=Image.ADAPTIVE, colors=16)
    b = io.BytesIO(); im.save(b, "BMP"); put(f"bmp_{mode.lower()}.bmp", b.getvalue())
# 32 bpp BI_RGB with a BITMAPINFOHEADER; the 4th byte is not alpha.
px = rng.integers(0, 256, (H, W, 4)).astype(np.uint8)
body = b"".join(px[y].tobytes() for y in range(H - 1, -1, -1))
hdr = struct.pack("<IiiHHIIiiII", 40, W, H, 1, 32, 0, len(body), 2835, 2835, 0, 0)
put("bmp_32.bmp", b"BM" + struct.pack("<IHHI", 14 + 40 + len(body), 0, 0, 54) + hdr + body)

# --- TIFF ----------------------------------------------------------------
for mode in ("RGB", "RGBA", "L", "P", "I;16"):
    if mode == "RGBA":
        im = Image.fromarray(rgba8, "RGBA")
    elif mode == "I;16":
        im = Image.fromarray(g16.astype(np.uint16))
    elif mode == "P":
        im = base.convert("P", palette=Image.ADAPTIVE, colors=16)
    else:
        im = base.convert(mode)
    b = io.BytesIO(); im.save(b, "TIFF"); put(f"tiff_{mode.replace(';', '').lower()}.tif", b.getvalue())


def tiff_assoc(px):
    """Uncompressed little-endian RGBA TIFF with associated alpha
    (ExtraSamples = 1): Pillow unpacks it as "RGBa"."""
    h, w, _ = px.shape
    data = px.tobytes()
    entries = []
    nent = 11
    ifd_off = 8
    extra_off = ifd_off + 2 + 12 * nent + 4
    bps_off, data_off = extra_off, extra_off + 8
    def e(tag, typ, count, val):
        entries.append(struct.pack("<HHI", tag, typ, count) + (struct.pack("<HH", val, 0) if typ == 3 and count == 1 else struct.pack("<I", val)))
    e(256, 3, 1, w); e(257, 3, 1, h); e(258, 3, 4, bps_off); e(259, 3, 1, 1); e(262, 3, 1, 2)
    e(273, 4, 1, data_off); e(277, 3, 1, 4); e(278, 3, 1, h); e(279, 4, 1, len(data)); e(284, 3, 1, 1); e(338, 3, 1, 1)
    assert len(entries) == nent
    return b"II*\x00" + struct.pack("<I", ifd_off) + struct.pack("<H", nent) + b"".join(entries) + b"\x00\x00\x00\x00" + struct.pack("<HHHH", 8, 8, 8, 8) + data


pm = rng.integers(0, 256, (H, W, 4)).astype(np.uint8)
pm[..., :3] = (pm[..., :3].astype(np.uint16) * pm[..., 3:4] // 255).astype(np.uint8)  # valid premultiplied
pm[0, 0] = [0, 0, 0, 0]; pm[0, 1] = [253, 10, 0, 254]; pm[0, 2] = [1, 1, 0, 2]
put("tiff_assoc_alpha.tif", tiff_assoc(pm))

# --- WebP ----------------------------------------------------------------
if features.check("webp"):
    for (w, h) in ((37, 23), (36, 22), (1, 1), (2, 2)):
        im = Image.fromarray(pattern(w, h))
        b = io.BytesIO(); im.save(b, "WEBP", quality=80); put(f"webp_lossy_{w}x{h}.webp", b.getvalue())
    a = Image.fromarray(rgba8, "RGBA").resize((37, 23))
    b = io.BytesIO(); a.save(b, "WEBP", quality=80); put("webp_lossy_alpha.webp", b.getvalue())
    b = io.BytesIO(); a.save(b, "WEBP", lossless=True, exact=True); put("webp_lossless_alpha.webp", b.getvalue())
    b = io.BytesIO(); base.save(b, "WEBP", lossless=True); put("webp_lossless.webp", b.getvalue())

# --- resize (Image.resize(size, BILINEAR) of 8-bit RGB) ----------------------
resize_cases = {}
srcs = {"src_37x23.png": pattern(37, 23), "src_1x1.png": pattern(1, 1), "src_1x9.png": pattern(1, 9), "src_96x72.png": pattern(96, 72)}
for name, arr in srcs.items():
    Image.fromarray(arr).save(name)
sizes = {"src_37x23.png": [(17, 11), (80, 50), (37, 9), (5, 23), (1, 1), (1, 40), (300, 2), (36, 24), (38, 22), (12, 8)],
         "src_1x1.png": [(7, 5), (1, 3)], "src_1x9.png": [(3, 4), (1, 2), (5, 9)], "src_96x72.png": [(256, 192), (64, 48), (101, 77), (23, 17)]}
for name, outs in sizes.items():
    for (w, h) in outs:
        out = f"resize_{name[4:-4]}_to_{w}x{h}.png"
        Image.open(name).convert("RGB").resize((w, h), Image.BILINEAR).save(out)
        resize_cases[out] = {"src": name, "size": [w, h]}

# --- expected outputs --------------------------------------------------------
manifest = {}
for name in sorted(files):
    with Image.open(name) as im:
        mode = im.mode
        rgb = im.convert("RGB")
        rgb = Image.frombytes("RGB", rgb.size, rgb.tobytes())  # no info (transparency) carried over
    rgb.save(name + ".expected.png")
    manifest[name] = {"mode": mode, "size": list(rgb.size)}
with open("manifest.json", "w") as f:
    json.dump({"resize": resize_cases, "pillow": Image.__version__, "libjpeg": features.version("jpg"), "libwebp": features.version("webp"), "files": manifest}, f, indent=1, sort_keys=True)
print(len(manifest), "files")
