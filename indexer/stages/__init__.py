"""The stages of a build, each a plain function or a small callable class over batches.

walk (``walk``) and plan (``plan``) find what changed; then, per file,
read and hash (``read``) -> decode and preprocess (``decode``) -> embed
(``embed``); then the bundle is written (``write``). The model comes from
``model``. Between the stages flow batches (``batch``), never shared state,
so an executor (``indexer.executors``: this process and its helpers, one
process per GPU, or a distributed engine) runs them as it likes, and times
them (``indexer.timing``).

:class:`Stages` names the parts an executor constructs; a test replaces one
(a failing embedder, a write that finds the disk full) with the same shape.
"""

from dataclasses import dataclass
from typing import Callable

from .decode import Decoder
from .embed import Embedder
from .model import load_model
from .write import write_bundle


@dataclass(frozen=True)
class Stages:
    load_encoder: Callable = load_model  # (ModelChoice) -> Encoder
    decoder: Callable = Decoder  # (preprocess, max_pixels, min_size, leave_jpegs=False) -> (files) -> Batch
    embedder: Callable = Embedder  # (encoder, device, fallback) -> an object with prepare, embed
    write: Callable = write_bundle  # (index, root, records, vectors, fingerprint, ...) -> None
