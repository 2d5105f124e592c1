"""The dual encoder: an open_clip model behind one narrow interface.

``encode_images`` and ``encode_texts`` return float32, L2-normalised numpy
arrays, so an inner product anywhere in the project is a cosine.
"""

import contextlib
import difflib
import json
import logging
import os
import socket
import tempfile
import urllib.parse

import numpy as np
import open_clip
import torch

from ..errors import ModelLoadError, WeightsUnavailableError
from .images import load_image
from .device import resolve_device
from .fingerprint import DEFAULT_MODEL, DEFAULT_PRETRAINED, ModelFingerprint, file_sha256
from .text_tower import TrimmedTextTower

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz", ".ckpt")


def register_model_config(name, config):
    """Make an architecture known to open_clip (custom configs recorded in a bundle)."""
    if name in open_clip.list_models() or name.startswith(("hf-hub:", "local-dir:")):
        return
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
        tokens = self.tokenizer(texts).to(self.device)
        encode = self._text_tower.encode if self._text_tower else self.model.encode_text
        return self._finish(encode(tokens))

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


def load_encoder(name=DEFAULT_MODEL, pretrained=DEFAULT_PRETRAINED, device="auto", config=None, cache_dir=None):
    """Create an :class:`Encoder`; ``pretrained`` is an open_clip tag or a checkpoint file.

    ``name`` may also be ``hf-hub:org/repo`` or ``local-dir:/path`` (then
    ``pretrained`` is ignored). ``config`` registers a custom architecture.
    Raises :class:`ModelLoadError` (or :class:`WeightsUnavailableError`).
    """
    device = resolve_device(device)
    if config is not None:
        register_model_config(name, config)
    is_schema = name.startswith(("hf-hub:", "local-dir:"))
    if is_schema:
        pretrained = None
    else:
        _check_name(name)
    checkpoint_sha = None
    if pretrained and not is_schema and not open_clip.get_pretrained_cfg(name, pretrained):
        if os.path.isfile(pretrained):
            pretrained = os.path.abspath(pretrained)
            checkpoint_sha = file_sha256(pretrained)
        elif os.sep in pretrained or pretrained.lower().endswith(_CHECKPOINT_SUFFIXES):
            raise ModelLoadError(f"checkpoint file not found: {pretrained}")
        else:
            tags = open_clip.list_pretrained_tags_by_model(name)
            raise ModelLoadError(
                f"unknown pretrained tag {pretrained!r} for model {name!r}; "
                f"available tags: {', '.join(tags) or 'none (pass a checkpoint file)'}"
            )
    if name.startswith("hf-hub:"):
        with _cache_only_when_offline(True):
            _fetch_hf_weights(name, cache_dir)
    precision = "fp16" if device == "cuda" else "fp32"
    downloads = name.startswith("hf-hub:") or (pretrained and not checkpoint_sha)
    try:
        with _cache_only_when_offline(downloads):
            model, _, preprocess = _quietly(
                open_clip.create_model_and_transforms,
                name, pretrained=pretrained, precision=precision, device=device, cache_dir=cache_dir,
            )
    except RuntimeError as e:
        if pretrained and "download" in str(e).lower():
            raise _weights_unavailable(name, pretrained, e) from e
        raise ModelLoadError(f"cannot load model {name!r} with weights {pretrained!r}: {e}") from e
    except (OSError, ValueError, KeyError, AssertionError) as e:  # open_clip asserts on shape mismatches
        raise ModelLoadError(f"cannot load model {name!r} with weights {pretrained!r}: {e}") from e
    tokenizer = open_clip.get_tokenizer(name)
    with torch.inference_mode():
        dim = int(model.encode_text(tokenizer(["a"]).to(device)).shape[-1])
    cfg = None if is_schema else open_clip.get_model_config(name)
    fingerprint = ModelFingerprint(name, pretrained, dim, checkpoint_sha, cfg)
    return Encoder(model, preprocess, tokenizer, fingerprint, device)


def _check_name(name):
    known = open_clip.list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ModelLoadError(f"unknown model {name!r}; {hint}run `python -m indexer models` for the available names")


def _fetch_hf_weights(name, cache_dir):
    # open_clip only logs a warning and falls back to random weights when the
    # hub download fails; fetch first so that failure is loud.
    from open_clip.pretrained import download_pretrained_from_hf

    try:
        _quietly(download_pretrained_from_hf, name[len("hf-hub:"):], cache_dir=cache_dir)
    except Exception as e:  # hub errors have no common base class
        raise _weights_unavailable(name, None, e) from e


@contextlib.contextmanager
def _cache_only_when_offline(downloads):
    """Use only the local cache when the hub cannot be reached.

    Without this, huggingface_hub retries an unreachable host for about a
    minute before open_clip reports the failure.
    """
    import huggingface_hub.constants as hub

    if not downloads or hub.HF_HUB_OFFLINE or _reachable(hub.ENDPOINT):
        yield
        return
    hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = False


def _reachable(url, timeout=3.0):
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _weights_unavailable(name, pretrained, cause):
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub")
    what = f"model {name!r}" + (f" with pretrained weights {pretrained!r}" if pretrained else "")
    fetch = f"open_clip.create_model_and_transforms({name!r}" + (f", pretrained={pretrained!r})" if pretrained else ")")
    return WeightsUnavailableError(
        f"the weights for {what} are not in the cache ({cache}) and could not be downloaded "
        f"({type(cause).__name__}). Pre-download them on a machine with internet: "
        f"python -c \"import open_clip; {fetch}\" and copy the cache folder here (or set HF_HOME), "
        f"or pass a local checkpoint file: --pretrained /path/to/open_clip_model.safetensors"
    )


def _quietly(fn, *args, **kwargs):
    """Call into open_clip without its log lines; its errors are re-raised as ours."""
    logging.disable(logging.CRITICAL)
    try:
        return fn(*args, **kwargs)
    finally:
        logging.disable(logging.NOTSET)
