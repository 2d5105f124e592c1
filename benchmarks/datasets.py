"""Seeded synthetic data shared by the benchmarks and the tests.

Vectors imitate image embeddings well enough to stress an ANN index: points
gather around cluster centres, variance falls off across directions (so the
effective dimension is well below 512, as for CLIP), and a random rotation
spreads that variance over all coordinates (so no quantiser gets it for free).
Everything is L2-normalised, so inner product is cosine, as in a bundle.

Photos imitate camera JPEGs where it matters for decoding: smooth regions,
detail at every scale and sensor grain, so file sizes and decode work are
those of real photos (a flat gradient would compress to almost nothing).
"""

import multiprocessing
import os

import numpy as np
from PIL import Image

CHUNK = 65_536  # rows generated at a time: bounded temporary memory at 1M+ rows


class ClusteredVectors:
    """A seeded distribution; ``sample(n, stream)`` draws rows from it.

    Different ``stream`` numbers give independent rows from the same clusters,
    e.g. stream 0 for the collection and stream 1 for held-out queries.
    """

    def __init__(self, dim=512, clusters=1000, seed=0, spread=0.8, decay=0.7):
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.seed = seed
        self.spread = spread  # within-cluster noise relative to the centres' scale
        # std of direction j falls as (j + 1) ** -decay: a few strong directions, a long tail
        self.scales = ((np.arange(dim) + 1.0) ** -decay).astype(np.float32)
        self.rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        self.rotation = self.rotation.astype(np.float32)
        self.centres = (rng.standard_normal((clusters, dim)).astype(np.float32) * self.scales) @ self.rotation
        self.weights = rng.dirichlet(np.full(clusters, 2.0))  # uneven cluster sizes, as in real albums

    def sample(self, n, stream=0):
        out = np.empty((n, self.dim), np.float32)
        for start in range(0, n, CHUNK):
            rng = np.random.default_rng((self.seed, stream, start))
            rows = min(CHUNK, n - start)
            which = rng.choice(len(self.centres), size=rows, p=self.weights)
            noise = rng.standard_normal((rows, self.dim), dtype=np.float32) * (self.scales * self.spread)
            block = self.centres[which] + noise @ self.rotation
            out[start:start + rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
        return out


def clustered(n, dim=512, seed=0, stream=0, clusters=None):
    """``n`` seeded clustered unit vectors (about one cluster per 1,000 rows by default)."""
    clusters = clusters or max(10, min(5000, n // 1000))
    return ClusteredVectors(dim=dim, clusters=clusters, seed=seed).sample(n, stream)


def collection_and_queries(n, nq, dim=512, seed=0, clusters=None):
    """A collection of ``n`` rows and ``nq`` held-out queries from the same clusters."""
    clusters = clusters or max(10, min(5000, n // 1000))
    source = ClusteredVectors(dim=dim, clusters=clusters, seed=seed)
    return source.sample(n, stream=0), source.sample(nq, stream=1)


def exact_top_k(vectors, queries, k, chunk=131_072):
    """Exact ``(scores, rows)`` of the ``k`` best rows per query, best first (the reference)."""
    nq = len(queries)
    best_s = np.full((nq, 0), -np.inf, np.float32)
    best_i = np.zeros((nq, 0), np.int64)
    for start in range(0, len(vectors), chunk):
        scores = queries @ vectors[start:start + chunk].T
        kk = min(k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        best_s = np.hstack([best_s, np.take_along_axis(scores, part, 1)])
        best_i = np.hstack([best_i, part + start])
        keep = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    return best_s, best_i


def natural_photo(seed, size=(1600, 1200), scenes=4):
    """A seeded RGB image with the statistics of a photo.

    One of ``scenes`` smooth scenes per size (made once, then cached), shifted,
    recoloured and given fresh grain, so every seed gives different bytes
    while a folder of thousands is quick to generate.
    """
    rng = np.random.default_rng(seed)
    base = _scene(seed % scenes, size)
    dy, dx = rng.integers(0, base.shape[0]), rng.integers(0, base.shape[1])
    out = np.roll(base, (dy, dx), axis=(0, 1)) + rng.uniform(-40, 40, 3).astype(np.float32)
    out += 3 * rng.standard_normal(base.shape[:2] + (1,), dtype=np.float32)  # sensor grain
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")


_scenes = {}


def _scene(number, size):
    """Luminance detail at every scale (1/f-like), weaker colour, a few hard edges."""
    key = (number, size)
    if key not in _scenes:
        rng = np.random.default_rng((number, *size))
        w, h = size
        luma = np.zeros((h, w), np.float32)
        for cells, amplitude in ((3, 60), (12, 35), (48, 18), (192, 9)):
            luma += amplitude * _smooth(rng, cells, size)
        for _ in range(6):  # objects: flat patches with sharp borders
            x0, y0 = rng.integers(0, w), rng.integers(0, h)
            luma[y0:y0 + h // 5, x0:x0 + w // 6] += rng.uniform(-50, 50)
        chroma = np.stack([_smooth(rng, 4, size) for _ in range(2)], axis=-1) * 25
        colour = rng.uniform(90, 160, 3).astype(np.float32)
        if any(k[1] != size for k in _scenes):
            _scenes.clear()  # scenes of one size at a time: a 12 MP scene is 144 MB
        _scenes[key] = np.stack([luma + chroma[..., 0], luma - chroma[..., 0] - chroma[..., 1],
                                 luma + chroma[..., 1]], axis=-1) + colour
    return _scenes[key]


def _smooth(rng, cells, size):
    w, h = size
    grid = rng.standard_normal((max(2, cells * h // w), cells)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, "F").resize((w, h), Image.BICUBIC))


def write_photo_folder(root, count, size=(1600, 1200), seed=0, quality=90, processes=1):
    """``count`` distinct seeded JPEGs of ``size`` under ``root`` (kept if already there); their paths."""
    os.makedirs(root, exist_ok=True)
    paths = [os.path.join(root, f"photo{i:05d}.jpg") for i in range(count)]
    todo = [(path, seed * 1_000_003 + i, size, quality) for i, path in enumerate(paths) if not os.path.exists(path)]
    if processes > 1 and len(todo) > 1:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            pool.starmap(_write_photo, todo)
    else:
        for task in todo:
            _write_photo(*task)
    return paths


def _write_photo(path, seed, size, quality):
    natural_photo(seed, size).save(path + ".tmp", "JPEG", quality=quality)
    os.replace(path + ".tmp", path)


def write_photo_copies(root, sources, count):
    """``count`` JPEGs under ``root`` that decode to ``sources`` in turn but differ in their bytes.

    Each copy carries its number in a JPEG comment segment, so its content
    hash is new and a build decodes and embeds every one: a folder of
    thousands of full-size photos without generating each.
    """
    os.makedirs(root, exist_ok=True)
    paths = []
    for i in range(count):
        path = os.path.join(root, f"copy{i:06d}.jpg")
        if not os.path.exists(path):
            with open(sources[i % len(sources)], "rb") as f:
                data = f.read()
            text = f"copy {i}".encode()
            comment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text  # COM marker, after SOI
            with open(path + ".tmp", "wb") as f:
                f.write(data[:2] + comment + data[2:])
            os.replace(path + ".tmp", path)
        paths.append(path)
    return paths
