"""The dual encoder: an open_clip model behind one narrow interface, and loading it.

``encode_images`` and ``encode_texts`` return float32, L2-normalised numpy
arrays, so an inner product anywhere in the project is a cosine. Where the
weights come from (tag, file, hub, cache) is ``search.encoding.weights``.
"""

import copy
import dataclasses
import json
import os
import tempfile

import numpy as np
import open_clip
import torch

from ..errors import ModelLoadError
from . import weights
from .device import resolve_device
from .fingerprint import DEFAULT_MODEL, DEFAULT_PRETRAINED, ModelFingerprint
from .images import load_image
from .precision import reduce, resolve_precision
from .text_tower import TrimmedTextTower
from .tokenizer_cache import bound_cache


def register_model_config(name, config):
    """Make an architecture known to open_clip (custom configs recorded in a bundle).

    The name comes from a bundle's manifest or the command line and becomes a
    file name: it is checked before anything is written.
    """
    if name in open_clip.list_models() or name.startswith((weights.HUB, weights.LOCAL_DIR)):
        return
    weights.check_config_name(name)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{name}.json")
        with open(path, "w") as f:
            json.dump(config, f)
        open_clip.add_model_config(path)


class Encoder:
    """An open_clip model on one device with its image preprocessing and tokenizer."""

    def __init__(self, model, preprocess, tokenizer, fingerprint, device):
        self.model = model.eval()
        # Stops text encoding at the end-of-text token where that gives the same vectors.
        self._text_tower = TrimmedTextTower.for_model(self.model, tokenizer, device)
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.fingerprint = fingerprint
        self.device = device
        self.dtype = _input_dtype(model.visual)
        size = getattr(model.visual, "image_size", 224)
        self.image_size = max(size) if isinstance(size, (tuple, list)) else int(size)

    @property
    def dim(self):
        return self.fingerprint.dim

    def with_model(self, model, precision, note=None):
        """This encoder over ``model`` (the same network in ``precision``): the trimmed text tower, if this
        encoder's passed its check, runs over ``model`` too (its fidelity is then the precision guard's)."""
        other = copy.copy(self)
        other.model = model.eval()
        other._text_tower = TrimmedTextTower(model) if self._text_tower else None
        other.fingerprint = dataclasses.replace(self.fingerprint, precision=precision, precision_note=note)
        other.dtype = _input_dtype(model.visual)
        return other

    @torch.inference_mode()
    def encode_images(self, batch):
        """Embed a preprocessed ``[N, 3, H, W]`` tensor or a list of PIL images."""
        if isinstance(batch, (list, tuple)):
            if not batch:
                return np.zeros((0, self.dim), np.float32)
            batch = torch.stack([self.preprocess(img) for img in batch])
        batch = torch.as_tensor(batch).to(self.device, dtype=self.dtype, non_blocking=True)
        return self._finish(self.model.encode_image(batch))

    @torch.inference_mode()
    def encode_texts(self, texts):
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return self.encode_tokens(self.tokenizer(texts))

    @torch.inference_mode()
    def encode_tokens(self, tokens):
        """Embed tokenizer output ``[N, context]``: the text path of :meth:`encode_texts`."""
        encode = self._text_tower.encode if self._text_tower else self.model.encode_text
        return self._finish(encode(tokens.to(self.device)))

    def embed_image(self, source, max_pixels=None):
        """Decode one image (path, bytes or PIL image) and embed it: shape ``[dim]``."""
        kwargs = {} if max_pixels is None else {"max_pixels": max_pixels}
        image, _ = load_image(source, min_size=self.image_size, **kwargs)
        return self.encode_images([image])[0]

    @staticmethod
    def _finish(features):
        features = features.float()
        features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return features.cpu().numpy().astype(np.float32, copy=False)


def _input_dtype(visual):
    """The dtype images enter the tower in: its first convolution's. (open_clip's fp16 keeps
    some parameters, such as ViT's class embedding, in float32, so the first parameter may not tell.)"""
    for module in visual.modules():
        if isinstance(module, torch.nn.Conv2d):
            return module.weight.dtype
    return next(visual.parameters()).dtype


def load_encoder(name=DEFAULT_MODEL, pretrained=DEFAULT_PRETRAINED, device="auto", config=None, cache_dir=None,
                 precision="auto"):
    """Create an :class:`Encoder`; ``pretrained`` is an open_clip tag or a checkpoint file.

    ``name`` may also be ``hf-hub:org/repo`` or ``local-dir:/path`` (then
    ``pretrained`` is ignored). ``config`` registers a custom architecture.
    ``precision``: one of ``search.encoding.precision.PRECISIONS``; a reduced
    CPU precision is guarded against float32 at load, and the fingerprint
    records the precision that runs.
    Raises :class:`ModelLoadError` (or :class:`WeightsUnavailableError`).
    Nothing process-wide changes: open_clip's log lines go wherever the
    program's logging sends them.
    """
    device = resolve_device(device)
    requested, precision = precision, resolve_precision(precision, device)
    if config is not None:
        register_model_config(name, config)
    source = weights.resolve(name, pretrained, cache_dir)
    cuda = device.startswith("cuda")  # a reduced CPU precision starts from float32, its reference
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            source.model, pretrained=source.pretrained, precision=precision if cuda else "fp32", device=device,
            cache_dir=cache_dir,
            **(source.preprocess or {}),
        )
    except RuntimeError as e:
        if source.downloads and "download" in str(e).lower():
            raise weights.weights_unavailable(name, source.recorded, cache_dir, type(e).__name__) from e
        raise ModelLoadError(f"cannot load model {name!r} with weights {pretrained!r}: {e}") from e
    except (OSError, ValueError, KeyError, AssertionError) as e:  # open_clip asserts on shape mismatches
        raise ModelLoadError(f"cannot load model {name!r} with weights {pretrained!r}: {e}") from e
    tokenizer = bound_cache(open_clip.get_tokenizer(source.model))
    with torch.inference_mode():
        dim = int(model.encode_text(tokenizer(["a"]).to(device)).shape[-1])
    cfg = None if name.startswith((weights.HUB, weights.LOCAL_DIR)) else open_clip.get_model_config(name)
    fingerprint = ModelFingerprint(name, source.recorded, dim, source.checkpoint_sha256, cfg, source.image_tower,
                                   precision if cuda else "fp32")
    encoder = Encoder(model, preprocess, tokenizer, fingerprint, device)
    return encoder if cuda else reduce(encoder, precision, auto=requested == "auto")
