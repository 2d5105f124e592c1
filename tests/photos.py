"""Seeded, generated test photos: small, distinct and fast to make."""

import io

import numpy as np
from PIL import Image

FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".gif": "GIF", ".bmp": "BMP",
           ".tif": "TIFF", ".tiff": "TIFF"}


def make_image(seed, size=(96, 72)):
    """A distinct RGB image: a seeded colour gradient with a few blocks."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(0, 255, 3)
    slope = rng.uniform(-2, 2, (2, 3))
    arr = base + xx[..., None] * slope[0] * 96 / w + yy[..., None] * slope[1] * 72 / h
    for _ in range(4):
        x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
        arr[y0:y0 + h // 3, x0:x0 + w // 3] = rng.uniform(0, 255, 3)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def save_image(path, seed, size=(96, 72), **kwargs):
    """Write a generated image to ``path`` in the format its extension names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = FORMATS[path.suffix.lower()]
    make_image(seed, size).save(path, fmt, **kwargs)
    return path


def make_photo_tree(root, count, seed=0, exts=(".jpg", ".png", ".webp")):
    """``count`` distinct images spread over a few sub-folders; returns their paths."""
    paths = []
    for i in range(count):
        ext = exts[i % len(exts)]
        paths.append(save_image(root / f"album{i % 3}" / f"img{i:04d}{ext}", seed * 100_000 + i))
    return paths


def add_broken_files(root):
    """One of each kind of bad file; returns {relative path: reason prefix}."""
    (root / "broken").mkdir(parents=True, exist_ok=True)
    (root / "broken" / "empty.jpg").write_bytes(b"")
    (root / "broken" / "text.png").write_text("not an image")
    good = save_image(root / "broken" / "whole.jpg", 77, (200, 150)).read_bytes()
    (root / "broken" / "whole.jpg").unlink()
    (root / "broken" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    buf = io.BytesIO()
    Image.new("L", (12000, 12000)).save(buf, "PNG")
    (root / "broken" / "bomb.png").write_bytes(buf.getvalue())
    return {"broken/empty.jpg": "empty", "broken/text.png": "not_an_image",
            "broken/truncated.jpg": "corrupt", "broken/bomb.png": "too_many_pixels"}


def make_scene(seed, size=(320, 240)):
    """A distinct generated photo: a textured background with a few coloured discs and boxes."""
    from PIL import ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    w, h = size
    noise = rng.normal(0, 25, (h, w, 3)) + rng.uniform(0, 255, 3)
    img = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8), "RGB").filter(ImageFilter.GaussianBlur(2))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(4, 9))):
        x, y, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(w // 30, w // 3))
        shape = draw.ellipse if rng.integers(2) else draw.rectangle
        shape((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return img
