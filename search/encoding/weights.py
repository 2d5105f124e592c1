"""Where a model's weights come from: a pretrained tag, a checkpoint file, or a Hugging Face Hub repo.

When the hub cannot be reached, huggingface_hub retries it for about a
minute before open_clip reports the failure. So the hub is tried first
(a few seconds at most), and when it is down the weights are looked up in
the local cache with huggingface_hub's own cache lookup and loaded from
there as files: no process-wide offline switch.
"""

import difflib
import json
import os
import re
import socket
import urllib.parse
from dataclasses import dataclass

import huggingface_hub
import huggingface_hub.constants as hub
import open_clip
from open_clip.constants import HF_CONFIG_NAME, HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

from ..errors import ModelLoadError, WeightsUnavailableError
from .fingerprint import file_sha256

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz", ".ckpt")
# safetensors metadata of a text-tower fine-tune: the fingerprint's ``image_tower`` (search.quality.finetune)
IMAGE_TOWER_KEY = "photosearch.image_tower"
HUB = "hf-hub:"
LOCAL_DIR = "local-dir:"
# A custom architecture's name becomes a file name (open_clip registers configs by file): letters,
# digits and ``._+-`` only, so a name read from a bundle cannot point anywhere else.
CONFIG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
# What a tag's pretrained config says about preprocessing, as create_model_and_transforms takes it.
PREPROCESS_ARGS = {"mean": "image_mean", "std": "image_std", "interpolation": "image_interpolation",
                   "resize_mode": "image_resize_mode"}


@dataclass
class WeightsSource:
    """What to hand open_clip, and what the fingerprint records."""

    model: str  # open_clip's model_name: the name, or a local-dir: standing in for an hf-hub: repo
    pretrained: str | None  # a tag or a file, as open_clip's ``pretrained``
    recorded: str | None  # the fingerprint's ``pretrained``: the tag or file the user named
    checkpoint_sha256: str | None = None  # of a file the user named
    preprocess: dict | None = None  # the tag's preprocessing arguments, when a cached file stands in for the tag
    downloads: bool = False  # open_clip may go to the network for it
    image_tower: dict | None = None  # the base image weights a text-tower fine-tune records


def resolve(name, pretrained, cache_dir=None):
    """The :class:`WeightsSource` of model ``name`` with ``pretrained`` (a tag, a file, or None).

    Raises :class:`ModelLoadError` for an unknown name, tag or missing file,
    and :class:`WeightsUnavailableError` when the weights can be neither
    downloaded nor found in the cache.
    """
    if name.startswith(HUB):
        return _hub_repo(name, cache_dir)
    if name.startswith(LOCAL_DIR):
        return WeightsSource(name, None, None)
    check_name(name)
    if not pretrained:
        return WeightsSource(name, None, None)
    tag = open_clip.get_pretrained_cfg(name, pretrained)
    if tag:
        return _tagged(name, pretrained, tag, cache_dir)
    if os.path.isfile(pretrained):
        path = os.path.abspath(pretrained)
        return WeightsSource(name, path, path, checkpoint_sha256=file_sha256(path), image_tower=_image_tower(path))
    if os.sep in pretrained or pretrained.lower().endswith(CHECKPOINT_SUFFIXES):
        raise ModelLoadError(f"checkpoint file not found: {pretrained}")
    tags = open_clip.list_pretrained_tags_by_model(name)
    raise ModelLoadError(
        f"unknown pretrained tag {pretrained!r} for model {name!r}; "
        f"available tags: {', '.join(tags) or 'none (pass a checkpoint file)'}"
    )


def check_config_name(name):
    """Refuse a custom architecture's name that is not a plain file name (``../x``, ``a/b``, ``..``)."""
    if not isinstance(name, str) or not CONFIG_NAME.fullmatch(name) or ".." in name:
        raise ModelLoadError(
            f"invalid model name {name!r} for a custom architecture: use letters, digits and . _ + - only"
        )


def _image_tower(path):
    """What a checkpoint's safetensors metadata says its image tower is, if anything; a file
    safetensors cannot read is left for open_clip to report."""
    if not path.endswith(".safetensors"):
        return None
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, "np") as f:
            value = (f.metadata() or {}).get(IMAGE_TOWER_KEY)
    except (OSError, SafetensorError):
        return None
    return json.loads(value) if value else None


def check_name(name):
    known = open_clip.list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ModelLoadError(f"unknown model {name!r}; {hint}run `python -m indexer models` for the available names")


def _tagged(name, tag_name, tag, cache_dir):
    if not tag.get("hf_hub") or _hub_usable():
        return WeightsSource(name, tag_name, tag_name, downloads=True)
    model_id, filename = os.path.split(tag["hf_hub"])
    cached = _cached_file(model_id, _weight_names(filename or HF_WEIGHTS_NAME), cache_dir)
    if cached is None:
        raise weights_unavailable(name, tag_name, cache_dir, f"{hub.ENDPOINT} is unreachable")
    preprocess = {arg: tag[key] for key, arg in PREPROCESS_ARGS.items() if tag.get(key) is not None}
    return WeightsSource(name, cached, tag_name, preprocess=preprocess)


def _hub_repo(name, cache_dir):
    repo = name[len(HUB):]
    if _hub_usable():
        # open_clip only logs a warning and falls back to random weights when
        # the weights download fails; fetch first so that failure is loud.
        from open_clip.pretrained import download_pretrained_from_hf

        try:
            download_pretrained_from_hf(repo, cache_dir=cache_dir)
        except Exception as e:  # hub errors have no common base class
            raise weights_unavailable(name, None, cache_dir, type(e).__name__) from e
        return WeightsSource(name, None, None, downloads=True)
    config = _cached_file(repo, [HF_CONFIG_NAME], cache_dir)
    weights = _cached_file(repo, _weight_names(HF_WEIGHTS_NAME), cache_dir)
    if config is None or weights is None or os.path.dirname(config) != os.path.dirname(weights):
        raise weights_unavailable(name, None, cache_dir, f"{hub.ENDPOINT} is unreachable")
    return WeightsSource(LOCAL_DIR + os.path.dirname(config), None, None)  # the cached snapshot's folder


def _hub_usable():
    """Whether to let huggingface_hub decide: the user made it offline (it then reads its cache
    itself, at once), or the hub answers."""
    return hub.HF_HUB_OFFLINE or hub_reachable(hub.ENDPOINT)


def hub_reachable(url, timeout=3.0):
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _weight_names(filename):
    """``filename`` and the safetensors file open_clip prefers to it, safetensors first (as open_clip)."""
    if filename == HF_WEIGHTS_NAME:
        return [HF_SAFE_WEIGHTS_NAME, filename]
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors", filename]
    return [filename]


def _cached_file(repo, filenames, cache_dir):
    for filename in filenames:
        path = huggingface_hub.try_to_load_from_cache(repo, filename, cache_dir=cache_dir)
        if isinstance(path, str):
            return path
    return None


def weights_unavailable(name, pretrained, cache_dir, why):
    cache = cache_dir or os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub")
    what = f"model {name!r}" + (f" with pretrained weights {pretrained!r}" if pretrained else "")
    fetch = f"open_clip.create_model_and_transforms({name!r}" + (f", pretrained={pretrained!r})" if pretrained else ")")
    return WeightsUnavailableError(
        f"the weights for {what} are not in the cache ({cache}) and could not be downloaded "
        f"({why}). Pre-download them on a machine with internet: "
        f"python -c \"import open_clip; {fetch}\" and copy the cache folder here (or set HF_HOME), "
        f"or pass a local checkpoint file: --pretrained /path/to/open_clip_model.safetensors"
    )
