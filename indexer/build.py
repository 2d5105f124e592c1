"""The build runner: plan what changed, embed what is new through an executor, write the bundle.

walk and plan -> (read and hash -> decode and preprocess -> embed, in this
process with helpers ahead of the model, or in one process per GPU) ->
write. The stages are in ``indexer.stages``, the executors in
``indexer.executors``; each stage's seconds are in the summary's ``stages``.
A no-op re-run stops after the plan and loads no model; files skipped before
and unchanged since count as no change (``search.store.skipped``).
"""

import os
import sys
import time
from dataclasses import asdict, dataclass, field

from search.encoding.images import IMAGE_EXTENSIONS, missing_decoder
from search.store.bundle import Bundle
from search.store.manifest import MANIFEST
from search.store.skipped import SkippedFile, read_skipped
from search.store.writer import bundle_lock

from .checkpoint import Checkpoint
from .errors import BuildError
from .executors import gpus
from .executors.local import Embedding, EmbedJob
from .stages import Stages
from .stages.model import check_requested_model, choose_model
from .stages.plan import assemble, plan_changes
from .stages.walk import walk_photos
from .timing import StageTimes


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
    skipped: list = field(default_factory=list)  # {"path", "reason"}, by path; also those skipped before, unchanged
    seconds: float = 0.0
    images_per_second: float = 0.0
    index: str = ""
    model: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)  # seconds spent in each stage

    def to_dict(self):
        return asdict(self)


def build(config, progress=None, stages=Stages()):
    """Build or update the bundle ``config.index`` from ``config.photos``; returns a BuildSummary.

    ``progress``: show a progress bar (default: when stderr is a terminal);
    ``stages``: the parts to build with (a test swaps one).
    """
    start = time.perf_counter()
    if not os.path.isdir(config.photos):
        raise BuildError(f"photo folder not found: {config.photos}")
    progress = sys.stderr.isatty() if progress is None else progress
    try:
        with bundle_lock(config.index):
            summary = _run(config, progress, stages)
    except OSError as e:  # disk full, read-only or vanished bundle folder, file too large...
        where = f" ({e.filename})" if e.filename else ""
        raise BuildError(
            f"cannot write the index: {e.strerror or e}{where}; the previous index at {config.index} is unchanged"
        ) from e
    finally:
        if config.ray is not None:
            from .cluster import session

            session.disconnect()
    summary.seconds = round(time.perf_counter() - start, 3)
    summary.images_per_second = round(summary.embedded / summary.seconds, 2) if summary.seconds else 0.0
    return summary


def _run(config, progress, stages):
    times = StageTimes()
    summary = BuildSummary(index=config.index)
    previous = None
    if os.path.exists(os.path.join(config.index, MANIFEST)):
        previous = Bundle.open(config.index, use_gpu=False)
    fingerprint = previous.fingerprint if previous else None
    conditions = _skip_conditions(config)
    with times.timed("walk"):
        if config.ray is not None:  # listed by tasks on the cluster
            from .cluster.executor import list_on_ray

            files = list_on_ray(config, times)
        else:
            files = list(walk_photos(config.photos, exclude=[config.index], include_hidden=config.include_hidden,
                                     follow_links=config.follow_links))
        old_records = previous.metadata.all() if previous else []
        remembered = read_skipped(os.path.join(previous.path, previous.manifest.generation_dir),
                                  conditions) if previous else {}
        plan = plan_changes(files, old_records, remembered, config.max_file_bytes)
    check_requested_model(config, fingerprint)
    skipped = list(plan.skipped)
    if previous and plan.changes_nothing:  # no model, no write
        summary.unchanged = summary.indexed = len(plan.unchanged)
    else:
        checkpoint, embedding = None, Embedding(fingerprint)
        if plan.to_read:
            job = EmbedJob(config, stages, choose_model(config, fingerprint), fingerprint,
                           frozenset(r.sha256 for r in old_records), progress)
            checkpoint, embedding, summary.devices = _embed(job, plan.to_read, times)
        elif fingerprint is None:  # an empty folder starts a bundle, which names its model
            encoder = times.call("load_model", stages.load_encoder, choose_model(config, None))
            embedding.fingerprint = encoder.fingerprint
        fingerprint = embedding.fingerprint
        outcome = assemble(plan, embedding.read, old_records, previous.manifest.next_id if previous else 0)
        skipped += _stat_skipped(embedding.skipped, plan.to_read)
        with times.timed("write"):
            stages.write(config.index, config.photos, outcome.records, embedding.vectors, fingerprint,
                         previous=previous, previous_records=old_records,
                         max_index_memory=config.max_index_memory, index_type=config.index_type,
                         checkpoint=checkpoint,
                         skipped=([f for f in skipped if not f.reason.startswith("vanished")], conditions))
        for name, value in outcome.counts.items():
            setattr(summary, name, value)
        summary.indexed = len(outcome.records)
        for name in ("embedded", "reused", "decoded_on_device"):
            setattr(summary, name, getattr(embedding, name))
    summary.skipped = [{"path": f.path, "reason": f.reason} for f in sorted(skipped, key=lambda f: f.path)]
    summary.model = {"name": fingerprint.name, "pretrained": fingerprint.pretrained, "precision": fingerprint.precision}
    summary.stages = times.as_dict()
    return summary


def _skip_conditions(config):
    """What a file's failure to decode depends on besides the file: when it changes, skipped files are retried."""
    return {"decoders": sorted(ext for ext in IMAGE_EXTENSIONS if not missing_decoder("x" + ext)),
            "max_pixels": config.max_pixels, "max_file_bytes": config.max_file_bytes}


def _stat_skipped(skipped, read):
    """SkippedFile for each Skipped of the files ``read`` (PhotoFile), with the size and times found by the walk."""
    found = {p.rel: p for p in read}
    return [SkippedFile(s.rel, found[s.rel].size, found[s.rel].mtime_ns, found[s.rel].ctime_ns, s.reason)
            for s in skipped]


def _embed(job, files, times):
    """``(checkpoint, Embedding, devices)`` of ``files``: in this process, or in one per GPU (then listed)."""
    checkpoint = Checkpoint(job.config.index)
    if job.config.ray is not None:  # on a Ray cluster (indexer.cluster); shards under the checkpoint go with it
        from .cluster.executor import embed_on_ray

        return checkpoint, embed_on_ray(job, files, times), []
    devices = gpus.builder_devices(job.config, len(files))
    if len(devices) == 1:
        return checkpoint, job.run(files, times), []
    embedding = gpus.embed_on_devices(job, devices, files, times)
    embedding.vectors = checkpoint.load(embedding.fingerprint)
    return checkpoint, embedding, devices
