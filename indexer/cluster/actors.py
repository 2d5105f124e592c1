"""The actors of a distributed build: groups of files in, one shard per group out.

:class:`EmbedGroups` is the callable class that Ray Data's ``map_batches``
runs on an actor pool: it loads the model once, then for each group reads and
hashes the files, decodes them and embeds the new content with the build's
own stages (``indexer.stages``: the same decoder and embedder as a local
build, on the device the actor was given), and writes the group's shard.
A group whose shard is already there and whole is not embedded again.
Each group's row also carries when its actor started and was ready and when
the group started and finished (the node's wall clock), from which
:func:`pool_stages` tells Ray's start-up from the embedding itself.
"""

import json
import secrets
import time

import numpy as np

from search.runtime import configure_process

from ..executors.decoding import read_and_decode
from ..stages.embed import device_preprocess
from ..stages.walk import PhotoFile
from .shards import ShardStore

COUNTS = ("files", "embedded", "reused", "decoded_on_device")
TIMELINE = ("actor", "created", "ready", "started", "finished")  # per group: its actor, and wall-clock times


class EmbedGroups:
    """One actor: ``job`` (an EmbedJob) embedding into the shards at ``shards`` (a URL)."""

    def __init__(self, job, shards):
        self.times = {"actor": secrets.token_hex(4), "created": time.time()}
        configure_process(job.config.max_pixels)  # an actor's process is an entry point of its own
        self.job = job
        stages, config = job.stages, job.config
        self.encoder = stages.load_encoder(job.model)
        if job.expected is not None:
            job.expected.check_same_space(self.encoder.fingerprint, where=f"the index at {config.index}")
        device = device_preprocess(self.encoder, config.decode)
        preprocess, size = self.encoder.preprocess, self.encoder.image_size
        self.decoder = stages.decoder(preprocess, config.max_pixels, size, leave_jpegs=device is not None)
        fallback = stages.decoder(preprocess, config.max_pixels, size) if device else None
        self.embedder = stages.embedder(self.encoder, device, fallback)
        self.store = ShardStore(shards)
        self.times["ready"] = time.time()

    def __call__(self, batch):
        """``batch``: columns ``key`` and ``files`` (a JSON list of PhotoFile fields), a group per row;
        returns the groups' keys, :data:`COUNTS`, stage seconds and :data:`TIMELINE`."""
        out = {name: [] for name in ("key", *COUNTS, "decode_seconds", "embed_seconds", *TIMELINE)}
        for key, files in zip(batch["key"], batch["files"]):
            started = time.time()
            photos = [PhotoFile(**fields) for fields in json.loads(files)]
            counts = dict.fromkeys(COUNTS, 0)
            counts["files"] = len(photos)
            seconds = [0.0, 0.0]
            if self.store.read(key, rows=len(photos)) is None:  # else made by an earlier run or attempt
                rows = self._embed(photos, counts, seconds)
                self.store.write(key, rows, self.encoder.fingerprint)
            out["key"].append(key)
            for name in COUNTS:
                out[name].append(counts[name])
            out["decode_seconds"].append(seconds[0])
            out["embed_seconds"].append(seconds[1])
            for name, value in {**self.times, "started": started, "finished": time.time()}.items():
                out[name].append(value)
        return {name: np.asarray(values) for name, values in out.items()}

    def _embed(self, photos, counts, seconds):
        """The shard rows of ``photos``: each file's metadata and vector, or why it was skipped."""
        start = time.perf_counter()
        decoded = read_and_decode(self.decoder, photos, self.job.config.max_file_bytes)
        seconds[0] = time.perf_counter() - start
        fresh, pending = [], set()
        for d in decoded.items:  # known content takes the bundle's vector at commit
            if d.sha256 not in self.job.known and d.sha256 not in pending:
                pending.add(d.sha256)
                fresh.append(d)
        start = time.perf_counter()
        embedded = self.embedder.embed(self.embedder.prepare(fresh))
        seconds[1] = time.perf_counter() - start
        counts["embedded"] = len(embedded.sha256)
        counts["reused"] = len(decoded.items) - len(fresh)
        counts["decoded_on_device"] = embedded.decoded_on_device
        vectors = dict(zip(embedded.sha256, embedded.vectors))
        failed = {s.sha256: s.reason for s in embedded.skipped}  # JPEGs that no decoder could decode
        rows = [_row(s.rel, None, None, s.reason) for s in decoded.skipped]
        for d in decoded.items:
            reason = failed.get(d.sha256)
            rows.append(_row(d.photo.rel, d, None if reason else d.info, reason, vectors.get(d.sha256)))
        by_path = {p.rel: p for p in photos}
        for row in rows:
            row["size"], row["mtime_ns"] = by_path[row["path"]].size, by_path[row["path"]].mtime_ns
        return rows


def pool_stages(groups, start):
    """Stage seconds of the actor pool from the :data:`TIMELINE` columns of ``groups`` (dicts of arrays, one
    per batch of results) and the job's ``start`` (``time.time()`` on the driver):

    - ``ray_start``: Ray Data's planning and the first actor's process, until its constructor ran;
    - ``load_model``: the actors' constructors (imports, the model), summed over actors as decode and embed are;
    - ``ray_pool_ready``: from the start until every actor was ready;
    - ``ray_idle``: actors ready but waiting for a group, before the last group each ran, summed over actors;
    - ``ray_tail``: from the first actor running out of groups to the last group's end.
    """
    if not groups:
        return {}
    column = {name: np.concatenate([g[name] for g in groups]) for name in TIMELINE}
    created, ready, last, idle = [], [], [], 0.0
    for actor in np.unique(column["actor"]):
        mine = np.flatnonzero(column["actor"] == actor)
        mine = mine[np.argsort(column["started"][mine])]
        started, finished = column["started"][mine], column["finished"][mine]
        created.append(column["created"][mine[0]])
        ready.append(column["ready"][mine[0]])
        last.append(finished[-1])
        idle += started[0] - ready[-1] + np.sum(started[1:] - finished[:-1])
    created, ready, last = np.array(created), np.array(ready), np.array(last)
    return {"ray_start": max(0.0, float(created.min() - start)), "load_model": float(np.sum(ready - created)),
            "ray_pool_ready": max(0.0, float(ready.max() - start)), "ray_idle": float(idle),
            "ray_tail": float(last.max() - last.min())}


def _row(rel, decoded, info, reason, vector=None):
    return {"path": rel, "sha256": decoded.sha256 if decoded else None,
            "width": info.width if info else None, "height": info.height if info else None,
            "taken_at": info.taken_at if info else None, "camera": info.camera if info else None,
            "reason": reason, "vector": vector}
