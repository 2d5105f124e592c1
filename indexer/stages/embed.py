"""Embedding: batches of decoded files in, one L2-normalised vector per file out.

:class:`Embedder` is a callable stage built once per process (or actor) that
holds the model, and called with batches. On a GPU (``--decode device``) the
JPEGs arrive undecoded: :meth:`Embedder.prepare` decodes them on the device
(nvJPEG) with the model's own resize, crop and normalisation
(``search.encoding.device_images``), gives the JPEGs the device rejects to
Pillow, and reports those no decoder can read. An executor can run
``prepare`` a batch ahead of ``embed`` (:func:`one_ahead`), so the device
decodes the next batch while the model embeds this one.
"""

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from search.errors import InvalidArgumentError

from .batch import Skipped


@dataclass
class Inputs:
    """A batch ready for the model."""

    items: list  # Decoded, one per row
    rows: object  # [N, 3, S, S]: an array, or a tensor on the encoder's device; None without items
    skipped: list = field(default_factory=list)  # Skipped: JPEGs no decoder could decode
    decoded_on_device: int = 0


@dataclass
class Embedded:
    sha256: list  # one per row of vectors
    vectors: np.ndarray  # [N, dim] float32, L2-normalised
    skipped: list = field(default_factory=list)  # Skipped, with their sha256
    decoded_on_device: int = 0  # JPEGs of the batch the device decoded


def device_preprocess(encoder, decode):
    """A DevicePreprocess when ``decode`` (``--decode``) leaves JPEGs to ``encoder``'s device, else None."""
    if decode == "workers" or (decode == "auto" and encoder.device != "cuda"):
        return None
    from search.encoding.device_images import DevicePreprocess  # torch: only when there is work

    try:
        return DevicePreprocess.from_transform(encoder.preprocess, encoder.device)
    except InvalidArgumentError:
        if decode == "device":
            raise
        return None  # auto: a model whose preprocessing only Pillow can run


class Embedder:
    """``encoder`` over batches of :class:`indexer.stages.decode.Decoded`.

    ``device``: a DevicePreprocess that decodes the batch's undecoded JPEGs;
    ``fallback``: the Decoder (with ``leave_jpegs`` off) for the JPEGs it rejects.
    """

    def __init__(self, encoder, device=None, fallback=None):
        if device is not None and fallback is None:
            raise ValueError("an Embedder that decodes on the device needs a fallback Decoder")
        self.encoder = encoder
        self.device = device
        self.fallback = fallback

    def __call__(self, batch):
        return self.embed(self.prepare(batch))

    def prepare(self, batch):
        """Inputs for a list of Decoded: their pixels stacked, JPEGs decoded on the device first."""
        if self.device is None:
            return Inputs(batch, np.stack([d.pixels for d in batch]) if batch else None)
        return self._decode_on_device(batch)

    def embed(self, inputs):
        if inputs.items:
            vectors = self.encoder.encode_images(inputs.rows)
        else:
            vectors = np.zeros((0, self.encoder.dim), np.float32)
        return Embedded([d.sha256 for d in inputs.items], vectors, inputs.skipped, inputs.decoded_on_device)

    def _decode_on_device(self, batch):
        import torch

        rows = [None] * len(batch)
        jpegs = [i for i, d in enumerate(batch) if d.pixels is None]
        tensors = self.device.inputs([batch[i].jpeg for i in jpegs], [batch[i].orientation for i in jpegs],
                                     [batch[i].info.width * batch[i].info.height for i in jpegs])
        for i, tensor in zip(jpegs, tensors):
            rows[i] = tensor
        kept, kept_rows, skipped = [], [], []
        for item, row in zip(batch, rows):
            if row is None and item.pixels is None:  # a JPEG the device rejected: Pillow's turn
                item = self.fallback.decode(item.photo, item.sha256, item.jpeg)
                if isinstance(item, Skipped):
                    skipped.append(item)
                    continue
            kept.append(item)
            kept_rows.append(row)
        host = [j for j, row in enumerate(kept_rows) if row is None]
        if host:  # decoded by Pillow: to the device in one copy
            moved = torch.from_numpy(np.stack([kept[j].pixels for j in host])).to(self.device.device)
            for j, row in zip(host, moved):
                kept_rows[j] = row
        decoded = sum(t is not None for t in tensors)
        return Inputs(kept, torch.stack(kept_rows) if kept else None, skipped, decoded)


def one_ahead(fn, items):
    """Futures of ``fn(item)`` for ``items``, in order, each computed in a thread while the
    consumer works on the one before (``fn`` of the next batch runs while the model embeds this one)."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="device-decode")
    pending = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > 1:
                yield pending.popleft()
        while pending:
            yield pending.popleft()
    finally:
        pool.shutdown(cancel_futures=True)
