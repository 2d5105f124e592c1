"""The local executor: the stages over a list of files in this process, with helpers ahead of the model.

Files are read and decoded ahead (``decoding``), files whose content is
known already are only recorded, the rest are embedded in batches, and the
vectors are checkpointed as they come, so a killed build resumes where it
stopped. The build's own process runs this, and so does each GPU's builder
process (``gpus``).
"""

import sys
from contextlib import ExitStack, closing
from dataclasses import dataclass, field

from tqdm import tqdm

from ..checkpoint import Checkpoint
from ..config import CPU_BATCH, GPU_BATCH
from ..stages.batch import Skipped
from ..stages.embed import device_preprocess, one_ahead
from .decoding import decode_in_order


@dataclass
class Embedding:
    """What embedding a list of files made."""

    fingerprint: object  # the ModelFingerprint of the model that embedded
    read: list = field(default_factory=list)  # (PhotoFile, sha256, ImageInfo) of each file read and decoded
    vectors: dict = field(default_factory=dict)  # sha256: vector
    embedded: int = 0  # files run through the model
    reused: int = 0  # files whose content was known already (the bundle's, saved, or an earlier file's)
    decoded_on_device: int = 0
    skipped: list = field(default_factory=list)  # Skipped


@dataclass
class EmbedJob:
    """What a process needs to embed files for a build: picklable, for a builder process per GPU."""

    config: object  # BuildConfig
    stages: object  # indexer.stages.Stages
    model: object  # indexer.stages.model.ModelChoice
    expected: object  # the bundle's ModelFingerprint, which the model must match; None for a new bundle
    known: frozenset  # content hashes of the bundle
    progress: bool

    def run(self, files, times, keep_vectors=True, **bar_options):
        """Embed ``files``; ``keep_vectors``: return the vectors (those saved before included) rather than
        leaving them in the checkpoint folder alone. ``bar_options`` go to the progress bar."""
        encoder = times.call("load_model", self.stages.load_encoder, self.model)
        if self.expected is not None:
            self.expected.check_same_vectors(encoder.fingerprint, where=f"the index at {self.config.index}")
        checkpoint = Checkpoint(self.config.index)
        saved = checkpoint.load(encoder.fingerprint) if keep_vectors else {}
        known = self.known | (set(saved) if keep_vectors else checkpoint.hashes(encoder.fingerprint))
        with tqdm(total=len(files), unit="img", disable=not self.progress, file=sys.stderr, smoothing=0.1,
                  **bar_options) as bar:
            out = embed_files(files, encoder, self.stages, self.config, known, checkpoint, times, bar)
        out.vectors = {**saved, **out.vectors} if keep_vectors else {}
        return out


def embed_files(files, encoder, stages, config, known, checkpoint, times, bar):
    """The Embedding of ``files`` by ``encoder``; content in ``known`` is not embedded again.

    ``stages``: the decoder and embedder to use; ``config``: a BuildConfig
    (decode, workers, batch size, pixel limit, checkpoint cadence); ``bar``
    counts the files as they are read.
    """
    device = device_preprocess(encoder, config.decode)
    decoder = stages.decoder(encoder.preprocess, config.max_pixels, encoder.image_size, leave_jpegs=device is not None)
    fallback = stages.decoder(encoder.preprocess, config.max_pixels, encoder.image_size) if device else None
    embedder = stages.embedder(encoder, device, fallback)
    batch_size = config.batch_size or (GPU_BATCH if encoder.device == "cuda" else CPU_BATCH)
    out = Embedding(encoder.fingerprint)
    failed = {}  # sha256: reason, for JPEGs left to the device that no decoder could decode
    since_checkpoint = 0
    with ExitStack() as running:
        decoded = running.enter_context(closing(
            decode_in_order(files, decoder, config.workers, device is not None, times,
                            config.max_file_bytes)))
        batches = _new_batches(decoded, known, batch_size, out, bar)
        if device is None:
            inputs = map(embedder.prepare, batches)
        else:  # the next batch is decoded on the device while the model embeds this one
            ahead = running.enter_context(closing(one_ahead(times.wrap("decode_on_device", embedder.prepare),
                                                            batches)))
            inputs = (times.call("wait_for_device_decode", future.result) for future in ahead)
        for batch in inputs:
            embedded = times.call("embed", embedder.embed, batch)
            for sha, vector in zip(embedded.sha256, embedded.vectors):
                out.vectors[sha] = vector
                checkpoint.add(sha, vector)
            out.embedded += len(embedded.sha256)
            out.decoded_on_device += embedded.decoded_on_device
            failed.update((s.sha256, s.reason) for s in embedded.skipped)
            since_checkpoint += len(embedded.sha256)
            if since_checkpoint >= config.checkpoint_every:
                times.call("checkpoint", checkpoint.flush, encoder.fingerprint)
                since_checkpoint = 0
    times.call("checkpoint", checkpoint.flush, encoder.fingerprint)
    if failed:  # read, but no decoder could decode them; their copies were counted as reused
        out.reused -= sum(sha in failed for _, sha, _ in out.read) - len(failed)
        out.skipped += [Skipped(p.rel, failed[sha], sha) for p, sha, _ in out.read if sha in failed]
        out.read = [r for r in out.read if r[1] not in failed]
    return out


def _new_batches(decoded, known, batch_size, out, bar):
    """Lists of up to ``batch_size`` Decoded whose content is neither ``known`` nor in an earlier
    list, from the Batches ``decoded``; every file read or skipped is recorded in ``out``."""
    pending, batch = set(), []
    for chunk in decoded:
        bar.update(len(chunk.items) + len(chunk.skipped))
        out.skipped += chunk.skipped
        for d in chunk.items:
            out.read.append((d.photo, d.sha256, d.info))
            if d.sha256 in known or d.sha256 in pending:
                out.reused += 1
                continue
            pending.add(d.sha256)
            batch.append(d)
            if len(batch) >= batch_size:
                yield batch
                batch = []
    if batch:
        yield batch
