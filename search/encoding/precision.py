"""The precision the encoder computes in, and the fidelity guard that keeps a reduced one honest.

- ``fp32``: the reference.
- ``int8``: every projection of the image tower dynamically quantised, each activation row on its own
  scale (``search.encoding.int8``), so a vector does not depend on its batch; texts in fp32; CPUs only.
- ``bf16``: weights and activations in bfloat16; fast only where the CPU has bf16 instructions.
- ``fp16``: CUDA only, open_clip's own half precision (what CUDA always ran in before this setting).
- ``auto``: ``fp16`` on CUDA; ``int8`` on a CPU (or ``bf16`` where the CPU has bf16 instructions and
  encodes the probes faster), guarded.

A reduced CPU precision is checked at load against float32 on probe inputs
(seeded generated images and a few texts, through the encoder's own text
path): when the lowest cosine is under :data:`MIN_COSINE` the encoder falls
back to float32 and says so (one warning, and ``describe()`` of its
fingerprint). Random weights quantise well; trained weights can carry
activation outliers that int8 cannot hold, and the guard is what catches them.
"""

import copy
import logging
import time

import numpy as np

from ..errors import InvalidArgumentError

PRECISIONS = ("auto", "fp32", "int8", "bf16", "fp16")
MIN_COSINE = 0.995  # the guard's threshold: README, "Encoder precision"
PROBE_TEXTS = ("a", "a photo of a dog on the beach at sunset", "two people hiking in the snowy mountains",
               "a red car parked in front of a white house", "x " * 100)
PROBE_IMAGES = 4

log = logging.getLogger(__name__)


def check_precision(precision):
    """``precision`` if it is one of :data:`PRECISIONS`; else an error that lists them. Loads no torch."""
    if precision not in PRECISIONS:
        raise InvalidArgumentError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def resolve_precision(precision, device):
    """The precision to try on ``device`` (a resolved torch device): ``auto`` made concrete, others checked."""
    check_precision(precision)
    cuda = str(device).startswith("cuda")
    if precision == "auto":
        return "fp16" if cuda else "int8"
    if precision == "int8" and cuda:
        raise InvalidArgumentError("--precision int8 runs on CPUs only; on CUDA use fp16, bf16 or fp32")
    if precision == "fp16" and not cuda:
        raise InvalidArgumentError("--precision fp16 needs CUDA; on a CPU use int8, bf16 or fp32")
    return precision


def for_bundle(precision, bundle_precision, device):
    """``precision`` to query a bundle of ``bundle_precision`` vectors with: ``auto`` is the bundle's own where
    ``device`` (resolved) runs it, so queries are made as the vectors were; else the device's ``auto``."""
    if precision != "auto":
        return precision
    try:
        return resolve_precision(bundle_precision, device)
    except InvalidArgumentError:  # e.g. fp16 vectors from a GPU, queried on a CPU
        return "auto"


def native_bf16():
    """True when the CPU has bf16 instructions (AVX-512 BF16 or AMX); elsewhere torch emulates bf16, slowly."""
    import torch

    return any(getattr(torch.cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported",
                                                                          "_is_amx_tile_supported"))


def reduce(encoder, precision, auto=False):
    """``encoder`` (float32, on a CPU) in ``precision`` when the guard passes, else ``encoder`` itself with
    the fallback noted in its fingerprint. ``auto``: also try bf16 where the CPU has it natively, and keep
    whichever of int8 and bf16 encodes the probe images faster."""
    if precision == "fp32":
        return encoder
    images, tokens = probes(encoder)
    reference = _vectors(encoder, images, tokens)
    candidates = [precision] + (["bf16"] if auto and precision == "int8" and native_bf16() else [])
    kept, notes = [], []
    for name in candidates:
        reduced = encoder.with_model(_REDUCERS[name](copy.deepcopy(encoder.model)), name)
        cosine = float(np.min(np.sum(_vectors(reduced, images, tokens) * reference, axis=1)))
        if cosine >= MIN_COSINE:
            kept.append(reduced)
        else:
            notes.append(f"{name} gave cosine {cosine:.4f} < {MIN_COSINE} to fp32 on probe inputs")
    if not kept:
        note = "; ".join(notes) + ": fell back to fp32"
        log.warning("%s: %s", encoder.fingerprint.describe(), note)
        return encoder.with_model(encoder.model, "fp32", note=note)
    return min(kept, key=lambda reduced: _seconds(reduced, images)) if len(kept) > 1 else kept[0]


def probes(encoder, seed=0):
    """Seeded generated images (smooth colour fields with edges: photo-like statistics, not noise),
    preprocessed for ``encoder``, and the tokens of :data:`PROBE_TEXTS`."""
    import torch
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(PROBE_IMAGES):
        cells = rng.integers(0, 256, (rng.integers(3, 9), rng.integers(3, 9), 3), dtype=np.uint8)
        image = Image.fromarray(cells).resize((320, 240), Image.Resampling.BICUBIC)
        pixels = np.asarray(image, dtype=np.int16) + rng.normal(0, 12, (240, 320, 3)).astype(np.int16)
        pixels[rng.integers(0, 200):, rng.integers(0, 280):] //= 2  # a shadowed block: a hard edge
        images.append(encoder.preprocess(Image.fromarray(pixels.clip(0, 255).astype(np.uint8))))
    return torch.stack(images), encoder.tokenizer(list(PROBE_TEXTS))


def _vectors(encoder, images, tokens):
    """Unit vectors of the probe images then texts, through the encoder's own paths."""
    return np.concatenate([encoder.encode_images(images), encoder.encode_tokens(tokens)])


def _seconds(encoder, images, repeats=2):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        encoder.encode_images(images)
        best = min(best, time.perf_counter() - start)
    return best


def _int8(model):
    """The image tower in int8; the text tower stays fp32: a query is one short text, cheap either way, and in
    int8 its vector moved enough to reorder near-tied results (``benchmarks/RESULTS.md``, "CPU int8 per row")."""
    from .int8 import quantize

    quantize(model.visual)
    return model


def _bf16(model):
    import torch
    from open_clip.model import convert_weights_to_lp

    convert_weights_to_lp(model, dtype=torch.bfloat16)
    return model


_REDUCERS = {"int8": _int8, "bf16": _bf16}
