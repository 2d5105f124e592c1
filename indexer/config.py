"""Build settings: one table (``search.settings``) drives the CLI, validation and the README's option table.

The indexer takes flags only; the service also reads ``PHOTOSEARCH_*`` variables.
"""

import os

from search.errors import InvalidArgumentError
from search.index.choice import INDEX_TYPES, ONDISK, parse_size
from search.settings import DEVICE, FOLLOW_LINKS, MAX_PIXELS, MODEL, PRECISION, PRETRAINED, Setting, SettingsTable
from search.store.locate import BUNDLE_DIR

from .stages.read import DEFAULT_MAX_FILE_BYTES

DEFAULT_INDEX_DIR = BUNDLE_DIR  # inside the photo folder unless --index says otherwise
DECODERS = ("auto", "workers", "device")
CPU_BATCH, GPU_BATCH = 64, 256


def default_workers():
    # Leave one core to the encoder's own threads.
    return max(1, min(8, (os.cpu_count() or 2) - 1))


SETTINGS = SettingsTable(
    Setting("photos", None, "folder of photos to index (searched recursively)", required=True, positional=True,
            metavar="PHOTOS", path=True),
    Setting("index", None, "bundle folder to create or update", metavar="DIR", path=True,
            shown_default=f"`PHOTOS/{DEFAULT_INDEX_DIR}`"),
    MODEL,
    PRETRAINED,
    Setting("model_config", None, "JSON architecture to register with open_clip (custom models)", metavar="FILE",
            path=True),
    DEVICE,
    PRECISION,
    Setting("gpus", None, "CUDA GPUs to embed on, one builder process each (at most one per 2,048 files to read, "
            "unless given); `CUDA_VISIBLE_DEVICES` picks which", kind=int, low=1, metavar="N",
            shown_default="every GPU torch sees"),
    Setting("decode", "auto", "where JPEGs are decoded: `workers` (Pillow in worker processes, at reduced scale), "
            "`device` (on the encoder's device: nvJPEG on CUDA), `auto` (`device` on CUDA, else `workers`)",
            choices=DECODERS),
    Setting("batch_size", None, "images per encoder batch", kind=int, low=1, metavar="N",
            shown_default=f"`{CPU_BATCH}`; `{GPU_BATCH}` on CUDA"),
    Setting("workers", default_workers(), "decode processes, at idle priority (the builder decodes too when they "
            "fall behind); with `--decode device`, threads that read and hash files; 0 does it in the main process",
            kind=int, low=0, metavar="N", shown_default="cores − 1 (max 8)"),
    MAX_PIXELS,
    Setting("max_file_bytes", DEFAULT_MAX_FILE_BYTES, "larger files are skipped unread, so a huge or sparse file "
            "cannot exhaust memory", kind=int, low=1, high=1 << 50, metavar="N",
            shown_default=f"`{DEFAULT_MAX_FILE_BYTES}` (512 MiB)"),
    Setting("max_index_memory", None, "FAISS index budget (`2G`, `512M`): exact search up to 100k vectors, beyond "
            "that IVF-PQ tuned to recall@10 ≥ 0.95", metavar="SIZE", check=parse_size,
            shown_default="128 bytes per vector"),
    Setting("index_type", "auto", "`auto`: exact search, or IVF-PQ in memory past 100k vectors (see "
            "`--max-index-memory`); `ondisk`: IVF-PQ whose inverted lists (memory-mapped) and float16 vectors "
            "(read as needed) stay on disk when served, built by Ray tasks (needs `--ray`; README: \"Beyond one "
            "machine\")",
            choices=INDEX_TYPES),
    Setting("include_hidden", False, "also index hidden files and folders", kind=bool),
    FOLLOW_LINKS,
    Setting("checkpoint_every", 512, "save embeddings for resuming after this many images", kind=int, low=1,
            metavar="N"),
    Setting("ray", None, "build on a Ray cluster: `auto` (the one the environment names), `HOST:PORT`, or the flag "
            "alone for a Ray of this machine started for the run", metavar="ADDRESS", const="local",
            shown_default="off"),
    Setting("shards", None, "where a `--ray` build writes its Parquet shards: a folder on storage every node sees, "
            "or a URL pyarrow reaches (`s3://...`); kept after the build", metavar="URL",
            shown_default="the bundle's checkpoint folder (removed after the build)"),
)


@SETTINGS.config_class
class BuildConfig:
    """The settings of one build; every field is a row of :data:`SETTINGS`."""

    def __post_init__(self):
        self.photos = os.path.abspath(self.photos)
        self.index = os.path.abspath(self.index or os.path.join(self.photos, DEFAULT_INDEX_DIR))
        if self.gpus is not None and self.device == "cpu":
            raise InvalidArgumentError("--gpus needs CUDA; leave it out with --device cpu")
        if self.ray is not None and self.gpus is not None:
            raise InvalidArgumentError("--gpus is for one machine; with --ray every GPU of the cluster embeds")
        if self.index_type == ONDISK and self.ray is None:
            raise InvalidArgumentError("--index-type ondisk is built by Ray tasks: add --ray (alone for a Ray of "
                                       "this machine), or leave it out for a bundle's own index")
        if self.shards is not None and self.ray is None:
            raise InvalidArgumentError("--shards is where a --ray build writes; add --ray or leave it out")


def add_arguments(parser, config_class=BuildConfig):
    """Add one argparse option per setting of ``config_class``."""
    config_class.settings.add_arguments(parser)


def config_from_args(args, config_class=BuildConfig):
    return config_class.settings.from_sources(config_class, args)
