"""The build: walk -> decode and preprocess (worker processes) -> embed -> write.

Decoding runs in a pool of worker processes, a bounded number of chunks ahead
of the encoder, so memory stays flat. The workers run at idle priority, on
the cycles the encoder leaves, and the builder decodes a chunk itself rather
than wait for one, so the model neither slows down nor waits. On a GPU
(``--decode device``), threads only read files; JPEGs are decoded on the
device a batch at a time, by a thread that works a batch ahead of the model
(``search.encoding.device_images``). On several GPUs, one builder process per GPU does
all of that for its share of the files (``indexer.gpus``). Embeddings are
checkpointed as they are made, so a killed build resumes where it stopped.
"""

import json
import multiprocessing
import os
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import islice

import numpy as np
from tqdm import tqdm

from search.store.bundle import Bundle
from search.store.writer import bundle_lock, commit
from search.errors import InvalidArgumentError, ModelMismatchError
from search.store.manifest import MANIFEST, Manifest
from search.encoding.fingerprint import DEFAULT_MODEL, DEFAULT_PRETRAINED

from . import gpus
from .checkpoint import Checkpoint
from .config import CPU_BATCH, GPU_BATCH
from .decode import Decoded, claim, decode_chunk, decode_data, decode_many, init_worker
from .errors import BuildError
from .plan import assemble, plan_changes
from .walk import walk_photos

CHUNK = 8  # files per worker task: fewer round trips, still fine-grained


@dataclass
class _Chunk:
    number: int
    files: list
    pending: object = None  # the worker's AsyncResult
    results: list | None = None  # decoded here, or the worker's once fetched


@dataclass
class BuildSummary:
    indexed: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    renamed: int = 0
    unchanged: int = 0
    embedded: int = 0  # images run through the model in this build
    reused: int = 0  # new or changed files whose embedding was found by content hash
    decoded_on_device: int = 0  # JPEGs the encoder's device decoded (--decode device)
    devices: list = field(default_factory=list)  # the GPUs that embedded, when there were several (--gpus)
    skipped: list = field(default_factory=list)  # {"path", "reason"}
    seconds: float = 0.0
    images_per_second: float = 0.0
    index: str = ""
    model: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)  # seconds spent in each stage

    def to_dict(self):
        return asdict(self)


class _Stages:
    def __init__(self):
        self.seconds = {}

    def timed(self, name, start):
        self.add(name, time.perf_counter() - start)

    def add(self, name, seconds):
        self.seconds[name] = round(self.seconds.get(name, 0.0) + seconds, 3)


def build(config, progress=None):
    """Build or update the bundle ``config.index`` from ``config.photos``."""
    start = time.perf_counter()
    if not os.path.isdir(config.photos):
        raise BuildError(f"photo folder not found: {config.photos}")
    try:
        with bundle_lock(config.index):
            summary = _Build(config, progress).run()
    except OSError as e:  # disk full, read-only or vanished bundle folder, file too large...
        where = f" ({e.filename})" if e.filename else ""
        raise BuildError(
            f"cannot write the index: {e.strerror or e}{where}; the previous index at {config.index} is unchanged"
        ) from e
    summary.seconds = round(time.perf_counter() - start, 3)
    summary.images_per_second = round(summary.embedded / summary.seconds, 2) if summary.seconds else 0.0
    return summary


class _Build:
    def __init__(self, config, progress, bar_options=None):
        self.config = config
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.bar_options = bar_options or {}  # a GPU's builder process: its own line, labelled
        self.stages = _Stages()
        self.summary = BuildSummary(index=config.index)
        self.previous = None
        self.checkpoint = None
        if os.path.exists(os.path.join(config.index, MANIFEST)):
            self.previous = Bundle.open(config.index, use_gpu=False)

    def run(self):
        t = time.perf_counter()
        files = list(walk_photos(self.config.photos, exclude=[self.config.index],
                                 include_hidden=self.config.include_hidden))
        old_records = self.previous.metadata.all() if self.previous else []
        plan = plan_changes(files, old_records)
        self.stages.timed("walk", t)
        if self.previous:
            self._check_requested_model(self.previous.fingerprint)
        if self.previous and not plan.to_read and not plan.gone:  # nothing changed: no model, no write
            self.summary.unchanged = self.summary.indexed = len(plan.unchanged)
            self._describe_model(self.previous.fingerprint)
            return self._finish()
        if plan.to_read:
            read, vectors, fingerprint = self._embed_everywhere(plan.to_read, old_records)
        else:  # files were only removed, or an empty folder starts a bundle (which names its model)
            read, vectors = [], {}
            fingerprint = self.previous.fingerprint if self.previous else self._load_encoder().fingerprint
        self._describe_model(fingerprint)
        next_id = self.previous.manifest.next_id if self.previous else 0
        outcome = assemble(plan, read, old_records, next_id)
        for name, value in outcome.counts.items():
            setattr(self.summary, name, value)
        self._write(outcome.records, vectors, old_records, fingerprint)
        self.summary.indexed = len(outcome.records)
        return self._finish()

    def _describe_model(self, fingerprint):
        self.summary.model = {"name": fingerprint.name, "pretrained": fingerprint.pretrained}

    def _finish(self):
        self.summary.stages = self.stages.seconds
        return self.summary

    def _check_requested_model(self, fingerprint):
        wanted = self.config.model
        if fingerprint is not None and wanted and wanted != fingerprint.name:
            raise ModelMismatchError(
                f"the index at {self.config.index} was built with {fingerprint.describe()}, not {wanted}; "
                "to change models, build into a new folder with --index"
            )

    def _load_encoder(self):
        from search.encoding.encoder import load_encoder  # torch and open_clip: only when there is work

        t = time.perf_counter()
        fp = self.previous.fingerprint if self.previous else None
        name = self.config.model or (fp.name if fp else DEFAULT_MODEL)
        pretrained = self.config.pretrained or (fp.pretrained if fp else DEFAULT_PRETRAINED)
        config = _read_json(self.config.model_config) if self.config.model_config else (fp.config if fp else None)
        encoder = load_encoder(name, pretrained, device=self.config.device, config=config)
        if fp is not None:
            fp.check_same_space(encoder.fingerprint, where=f"the index at {self.config.index}")
        self.stages.timed("load_model", t)
        return encoder

    def _embed_everywhere(self, files, old_records):
        """``(read, vectors by hash, fingerprint)`` for ``files``: in this process, or in one per GPU."""
        devices = gpus.builder_devices(self.config, len(files))
        if len(devices) > 1:
            return self._embed_on_gpus(devices, files)
        encoder = self._load_encoder()
        self.checkpoint = Checkpoint(self.config.index)
        vectors = self.checkpoint.load(encoder.fingerprint)
        known = {r.sha256 for r in old_records} | set(vectors)
        read, new = self._embed(encoder, files, known, self.checkpoint)
        vectors.update(new)
        return read, vectors, encoder.fingerprint

    def _embed_on_gpus(self, devices, files):
        """Each GPU's builder process embeds a share of ``files`` into the checkpoint; this one reads it back."""
        read, fingerprint = [], None
        for shard_read, summary, fingerprint in gpus.run_shards(_embed_shard, self.config, devices, files,
                                                                self.progress):
            read += shard_read
            for name in ("embedded", "reused", "decoded_on_device"):
                setattr(self.summary, name, getattr(self.summary, name) + getattr(summary, name))
            self.summary.skipped += summary.skipped
            for name, seconds in summary.stages.items():  # summed over the processes
                self.stages.add(name, seconds)
        self.summary.skipped.sort(key=lambda s: s["path"])
        self.summary.devices = list(devices)
        self.checkpoint = Checkpoint(self.config.index)
        return read, self.checkpoint.load(fingerprint), fingerprint

    def _embed(self, encoder, files, known, checkpoint):
        """Read every file; embed those whose hash is not ``known``. Returns (read, new vectors by hash)."""
        new = {}
        read, batch = [], []
        since_checkpoint = 0
        bar = tqdm(total=len(files), unit="img", disable=not self.progress, file=sys.stderr, smoothing=0.1,
                   **self.bar_options)

        failed = {}  # reasons by hash: JPEGs left to the device that no decoder could decode
        device = self._device_preprocess(encoder)
        batch_size = self.config.batch_size or (GPU_BATCH if encoder.device == "cuda" else CPU_BATCH)
        # On the device, a thread decodes the next batch while the model embeds this one.
        decoder = ThreadPoolExecutor(1, thread_name_prefix="device-decode") if device else None
        prepared = deque()

        def embed(kept, inputs):
            nonlocal since_checkpoint
            t = time.perf_counter()
            embedded = encoder.encode_images(inputs) if kept else []
            for d, vector in zip(kept, embedded):
                new[d.sha256] = vector
                checkpoint.add(d.sha256, vector)
            self.summary.embedded += len(kept)
            since_checkpoint += len(kept)
            self.stages.timed("embed", t)
            if since_checkpoint >= self.config.checkpoint_every:
                t = time.perf_counter()
                checkpoint.flush(encoder.fingerprint)
                since_checkpoint = 0
                self.stages.timed("checkpoint", t)

        def embed_prepared():
            t = time.perf_counter()
            ready = prepared.popleft().result()
            self.stages.timed("wait_for_device_decode", t)
            embed(*ready)

        def flush():
            items = list(batch)
            batch.clear()
            if device is None:
                embed(items, np.stack([d.pixels for d in items]))
                return
            prepared.append(decoder.submit(self._device_inputs, items, device, failed))
            if len(prepared) > 1:
                embed_prepared()

        pending = set()
        try:
            for result in self._decoded(encoder, files, device is not None):
                bar.update(1)
                if not isinstance(result, Decoded):
                    self.summary.skipped.append({"path": result.rel, "reason": result.reason})
                    continue
                read.append((result.photo, result.sha256, result.info))
                if result.sha256 in known or result.sha256 in pending:
                    self.summary.reused += 1
                    continue
                pending.add(result.sha256)
                batch.append(result)
                if len(batch) >= batch_size:
                    flush()
            if batch:
                flush()
            while prepared:
                embed_prepared()
        finally:
            if decoder is not None:
                decoder.shutdown(cancel_futures=True)
        checkpoint.flush(encoder.fingerprint)
        bar.close()
        if failed:  # read, but no decoder could decode them (copies of such a file were counted as reused)
            self.summary.reused -= sum(sha in failed for _, sha, _ in read) - len(failed)
            self.summary.skipped += [{"path": p.rel, "reason": failed[sha]} for p, sha, _ in read if sha in failed]
            read = [r for r in read if r[1] not in failed]
        return read, new

    def _device_preprocess(self, encoder):
        """A DevicePreprocess when JPEGs are to be decoded on the encoder's device, else None."""
        if self.config.decode == "workers" or (self.config.decode == "auto" and encoder.device != "cuda"):
            return None
        from search.encoding.device_images import DevicePreprocess

        try:
            return DevicePreprocess.from_transform(encoder.preprocess, encoder.device)
        except InvalidArgumentError:
            if self.config.decode == "device":
                raise
            return None  # auto: a model whose preprocessing only Pillow can run

    def _device_inputs(self, batch, device, failed):
        """``(items, model inputs)`` of a batch whose JPEGs are decoded on the device.

        A JPEG the device decoder rejects is decoded by Pillow; one that fails
        there too is left out, with its reason in ``failed`` by hash.
        """
        import torch

        t = time.perf_counter()
        rows = [None] * len(batch)
        jpegs = [i for i, d in enumerate(batch) if d.pixels is None]
        tensors = device.inputs([batch[i].jpeg for i in jpegs], [batch[i].orientation for i in jpegs],
                                [batch[i].info.width * batch[i].info.height for i in jpegs])
        for i, tensor in zip(jpegs, tensors):
            rows[i] = tensor
        self.summary.decoded_on_device += sum(t is not None for t in tensors)
        kept, kept_rows = [], []
        for item, row in zip(batch, rows):
            d = item
            if row is None and d.pixels is None:
                d = decode_data(item.photo, item.sha256, item.jpeg)
                if not isinstance(d, Decoded):
                    failed[item.sha256] = d.reason
                    continue
            kept.append(d)
            kept_rows.append(row)
        host = [j for j, row in enumerate(kept_rows) if row is None]
        if host:  # decoded by Pillow: to the device in one copy
            moved = torch.from_numpy(np.stack([kept[j].pixels for j in host])).to(device.device)
            for j, row in zip(host, moved):
                kept_rows[j] = row
        self.stages.timed("decode_on_device", t)
        return kept, (torch.stack(kept_rows) if kept else None)

    def _decoded(self, encoder, files, on_device):
        """Decode results in file order, produced by workers ahead of the consumer.

        Workers run at idle priority (``decode._lowest_priority``). When the
        next chunk is not ready, this process decodes the earliest chunk no
        worker has taken yet rather than wait with cores idle.
        ``on_device``: JPEGs are only read (by threads), and decoded in ``flush``.
        """
        chunks = (_Chunk(n, files[i:i + CHUNK]) for n, i in enumerate(range(0, len(files), CHUNK)))
        if self.config.workers == 0 or on_device:
            init_worker(encoder.preprocess, self.config.max_pixels, encoder.image_size, in_pool=False,
                        threads=None if on_device else os.cpu_count() or 1, device_jpeg=on_device)
        if self.config.workers == 0:
            for chunk in chunks:
                yield from self._decode_here(chunk.files)
            return
        if on_device:
            yield from self._read_in_threads(chunks)
            return
        # fork starts workers at once (as torch's DataLoader does); spawn would
        # re-import torch and open_clip in each, several seconds.
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        claims = context.Array("b", -(-len(files) // CHUNK))  # 1: a worker or this process has taken the chunk
        initargs = (encoder.preprocess, self.config.max_pixels, encoder.image_size, claims)
        init_worker(*initargs, threads=None, in_pool=False)  # to decode here too
        with context.Pool(self.config.workers, initializer=init_worker, initargs=initargs) as pool:
            def submit(chunk):
                chunk.pending = pool.apply_async(decode_chunk, (chunk.number, chunk.files))
                return chunk

            window = deque(submit(c) for c in islice(chunks, 4 * self.config.workers))
            while window:
                head = window[0]
                while head.results is None and not head.pending.ready():
                    free = next((c for c in window if c.results is None and claim(claims, c.number)), None)
                    if free is None:  # every chunk in the window is taken: wait for the head
                        break
                    free.results = self._decode_here(free.files)
                window.popleft()
                nxt = next(chunks, None)
                if nxt is not None:
                    window.append(submit(nxt))
                if head.results is None:
                    t = time.perf_counter()
                    head.results = head.pending.get()
                    self.stages.timed("wait_for_decode", t)
                yield from head.results

    def _read_in_threads(self, chunks):
        """Results in file order from a pool of threads: reading and hashing release the GIL,
        and JPEGs, the bulk of the work, are not decoded here. Passing their bytes to this
        process from worker processes would cost more than reading them."""
        with ThreadPoolExecutor(self.config.workers, thread_name_prefix="read") as pool:
            window = deque(pool.submit(decode_many, c.files) for c in islice(chunks, 4 * self.config.workers))
            while window:
                head = window.popleft()
                nxt = next(chunks, None)
                if nxt is not None:
                    window.append(pool.submit(decode_many, nxt.files))
                t = time.perf_counter()
                results = head.result()
                self.stages.timed("wait_for_decode", t)
                yield from results

    def _decode_here(self, files):
        t = time.perf_counter()
        results = decode_many(files)
        self.stages.timed("decode", t)
        return results

    def _write(self, records, new_vectors, old_records, fingerprint):
        t = time.perf_counter()
        old_rows = {}
        if self.previous is not None:
            for row, r in enumerate(old_records):
                old_rows.setdefault(r.sha256, row)
        dim = fingerprint.dim
        out = np.empty((len(records), dim), np.float32)
        for i, r in enumerate(records):
            vector = new_vectors.get(r.sha256)
            out[i] = vector if vector is not None else self.previous.vectors[old_rows[r.sha256]]
        manifest = self.previous.manifest if self.previous else Manifest(
            model=fingerprint.to_dict(), dim=dim, root=self.config.photos)
        manifest.root = self.config.photos
        commit(self.config.index, manifest, records, out, max_index_memory=self.config.max_index_memory)
        if self.checkpoint is not None:
            self.checkpoint.clear()
        self.stages.timed("write", t)


def _embed_shard(config, device, number, files, progress):
    """A GPU's builder process (``gpus.run_shards``): embed ``files`` into the checkpoint folder.

    Returns what the parent needs besides the vectors: the files read, and the
    summary's counts, skipped files and stage times.
    """
    part = _Build(config, progress, bar_options=dict(desc=device, position=number))
    encoder = part._load_encoder()
    checkpoint = Checkpoint(config.index)
    known = part.previous.metadata.hashes() if part.previous else set()
    read, _ = part._embed(encoder, files, known | checkpoint.hashes(encoder.fingerprint), checkpoint)
    return read, part._finish(), encoder.fingerprint


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise BuildError(f"cannot read model config {path}: {e}") from e
