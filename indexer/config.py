"""Build settings, declared once: this table drives the CLI, validation and docs."""

import os
from dataclasses import dataclass, field, fields

from search.errors import InvalidArgumentError
from search.encoding.images import DEFAULT_MAX_PIXELS
from search.index.choice import parse_size
from search.encoding.device import DEVICES, check_device

DEFAULT_INDEX_DIR = ".photoindex"  # inside the photo folder unless --index says otherwise
DECODERS = ("auto", "workers", "device")
CPU_BATCH, GPU_BATCH = 64, 256


def default_workers():
    # Leave one core to the encoder's own threads.
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def _setting(default, help, flag=None, **argparse):
    return field(default=default, metadata={"help": help, "flag": flag, "argparse": argparse})


@dataclass
class BuildConfig:
    photos: str = _setting(None, "folder of photos to index (searched recursively)")
    index: str | None = _setting(None, f"bundle folder to write (default: PHOTOS/{DEFAULT_INDEX_DIR})", "--index")
    model: str | None = _setting(
        None, "open_clip model name, hf-hub:ORG/REPO or local-dir:PATH (default: the bundle's, else ViT-B-32)",
        "--model")
    pretrained: str | None = _setting(
        None, "pretrained tag or local checkpoint file (default: the bundle's, else laion2b_s34b_b79k)",
        "--pretrained")
    model_config: str | None = _setting(
        None, "JSON file of a custom open_clip architecture to register before loading", "--model-config")
    device: str = _setting("auto", "where the encoder runs", "--device", choices=DEVICES)
    gpus: int | None = _setting(
        None, "CUDA GPUs to embed on, one process each (default: every GPU torch sees; CUDA_VISIBLE_DEVICES "
        "chooses which)", "--gpus", type=int)
    batch_size: int | None = _setting(
        None, f"images per encoder batch (default: {GPU_BATCH} on CUDA, where larger batches keep the JPEG decoder "
        f"and the model busy, else {CPU_BATCH})", "--batch-size", type=int)
    workers: int = _setting(default_workers(), "decode worker processes (0: decode in the main process); "
                            "with --decode device, threads that read files", "--workers", type=int)
    decode: str = _setting(
        "auto", "where JPEGs are decoded: workers (Pillow, scaled down while decoding), device (the encoder's "
        "device: nvJPEG on CUDA), auto (device on CUDA, else workers)", "--decode", choices=DECODERS)
    max_pixels: int = _setting(DEFAULT_MAX_PIXELS, "skip images with more pixels than this (decompression bombs)",
                               "--max-pixels", type=int)
    include_hidden: bool = _setting(False, "also index hidden files and folders", "--include-hidden",
                                    action="store_true")
    max_index_memory: str | None = _setting(
        None, "memory budget of the FAISS index, e.g. 2G (default: 128 bytes per vector); "
        "beyond 100k vectors an approximate index is tuned to fit it", "--max-index-memory")
    checkpoint_every: int = _setting(512, "save embeddings for resuming after this many images",
                                     "--checkpoint-every", type=int)

    def __post_init__(self):
        if not self.photos:
            raise InvalidArgumentError("a photo folder is required")
        self.photos = os.path.abspath(self.photos)
        self.index = os.path.abspath(self.index or os.path.join(self.photos, DEFAULT_INDEX_DIR))
        check_device(self.device)
        if self.decode not in DECODERS:
            raise InvalidArgumentError(f"unknown decode {self.decode!r}; choose one of {', '.join(DECODERS)}")
        if self.max_index_memory is not None:
            parse_size(self.max_index_memory)  # fail before any work, with the accepted forms
        if self.gpus is not None and self.device == "cpu":
            raise InvalidArgumentError("--gpus needs CUDA; leave it out with --device cpu")
        for name, low in (("gpus", 1), ("batch_size", 1), ("workers", 0), ("max_pixels", 1), ("checkpoint_every", 1)):
            value = getattr(self, name)
            if value is None and name in ("gpus", "batch_size"):
                continue
            if not isinstance(value, int) or value < low:
                raise InvalidArgumentError(f"--{name.replace('_', '-')} must be an integer >= {low}, got {value!r}")


def add_arguments(parser, config_class=BuildConfig):
    """Add one argparse option per setting of ``config_class``."""
    for f in fields(config_class):
        meta = f.metadata
        if meta["flag"] is None:
            parser.add_argument(f.name, help=meta["help"])
        else:
            parser.add_argument(meta["flag"], dest=f.name, default=f.default, help=meta["help"], **meta["argparse"])


def config_from_args(args, config_class=BuildConfig):
    return config_class(**{f.name: getattr(args, f.name) for f in fields(config_class)})
