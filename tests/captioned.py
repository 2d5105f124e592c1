"""A seeded synthetic captioned photo set: coloured shapes on backgrounds, captioned from what was drawn.

Shared by the tests and ``benchmarks/bench_finetune.py``. Each photo shows one
shape of one colour on one background (4 x 3 x 2 = 24 kinds), placed and
sized at random, with noise; its two captions say what was drawn. A photo's
kind is in its file name, so a retrieved photo counts as right when its kind
is the caption's (:func:`kind_of`).
"""

import json

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {"red": (215, 40, 40), "green": (40, 165, 60), "blue": (45, 75, 215), "yellow": (230, 205, 45)}
SHAPES = ("circle", "square", "triangle")
BACKGROUNDS = {"white": (235, 235, 235), "black": (25, 25, 25)}
KINDS = [(c, s, b) for c in COLOURS for s in SHAPES for b in BACKGROUNDS]
PHRASES = ("a {colour} {shape} on a {background} background", "a {background} picture with a {colour} {shape}")


def draw_shape(kind, rng, size=64):
    colour, shape, background = kind
    noise = rng.normal(0, 12, (size, size, 3))
    img = Image.fromarray(np.clip(noise + BACKGROUNDS[background], 0, 255).astype(np.uint8), "RGB")
    r = rng.uniform(0.22, 0.36) * size
    x, y = rng.uniform(r, size - r, 2)
    fill = tuple(int(v) for v in np.clip(np.array(COLOURS[colour]) + rng.normal(0, 15, 3), 0, 255))
    draw = ImageDraw.Draw(img)
    if shape == "circle":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    elif shape == "square":
        draw.rectangle((x - r, y - r, x + r, y + r), fill=fill)
    else:
        draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=fill)
    return img


def captions_of(kind):
    colour, shape, background = kind
    return [p.format(colour=colour, shape=shape, background=background) for p in PHRASES]


def kind_of(path):
    """The kind index a generated photo's path names (``kind07_003.png`` -> 7)."""
    return int(path.rpartition("/")[2][4:6])


def make_captioned_set(root, per_kind=8, seed=0, size=64):
    """Write ``per_kind`` photos of each of the 24 kinds under ``root/photos`` and their captions to
    ``root/captions.jsonl``; returns ``(photos folder, captions file)``."""
    rng = np.random.default_rng(seed)
    photos = root / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    lines = []
    for k, kind in enumerate(KINDS):
        for i in range(per_kind):
            rel = f"kind{k:02d}_{i:03d}.png"
            draw_shape(kind, rng, size).save(photos / rel)
            lines.extend(json.dumps({"path": rel, "caption": text}) for text in captions_of(kind))
    captions = root / "captions.jsonl"
    captions.write_text("\n".join(lines) + "\n")
    return photos, captions
