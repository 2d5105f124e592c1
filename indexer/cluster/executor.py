"""The distributed executor: the driver's side of a build on a Ray cluster.

The files to read are cut into groups (``shards.group_files``), each named by
its content; Ray Data maps the groups over an actor pool (``actors``), one
actor per GPU when the cluster has GPUs, else CPU actors with fractional CPUs
so the pool leaves room for Ray Data's own tasks. One progress bar counts
files as groups finish. Then the driver reads every group's shard back into
the :class:`Embedding` that the bundle's writer takes, as from a local build;
for an on-disk index (``--index-type ondisk``) without the vectors, which go
from the shards to the index's tasks (``sharded``).
A lost actor or node is Ray's to retry; a group whose shard exists is not
embedded again, so a re-run after a killed driver resumes.
"""

import json
import math
import os
import sys
import time
from dataclasses import asdict

import numpy as np
from tqdm import tqdm

from search.encoding.images import ImageInfo
from search.index.choice import ONDISK

from ..checkpoint import FOLDER
from ..errors import BuildError
from ..executors.local import Embedding
from ..stages.batch import Skipped
from . import session
from .actors import TIMELINE, EmbedGroups, pool_stages
from .listing import list_photos
from .shards import COLUMNS, HAS_VECTOR, ShardStore, group_files, group_key

SHARDS_FOLDER = "shards"  # under the bundle's checkpoint folder, unless --shards says otherwise
ACTOR_CPUS = 0.5  # per CPU actor, which runs one torch thread per whole CPU it is given
CPUS_PER_ACTOR = 1  # CPUs of the cluster per CPU actor
GROUP = 64  # files per group on GPU actors, about; --batch-size when given
CPU_GROUP = 16  # on CPU actors, where a group takes seconds: small groups keep every actor busy to the end


def list_on_ray(config, times):
    """The photos of ``config`` (a BuildConfig), listed by tasks on the cluster of ``config.ray``."""
    ray = times.call("ray_connect", session.connect, config.ray)
    return list_photos(ray, config.photos, exclude=[config.index], include_hidden=config.include_hidden,
                       follow_links=config.follow_links)


def shards_url(config):
    return config.shards or os.path.join(config.index, FOLDER, SHARDS_FOLDER)


def embed_on_ray(job, files, times):
    """The Embedding of ``files`` (PhotoFile) by ``job`` (an EmbedJob) on the cluster of ``job.config.ray``,
    through the shards at ``--shards``."""
    ray = times.call("ray_connect", session.connect, job.config.ray)
    shards = shards_url(job.config)
    store = ShardStore(shards)
    gpus = _gpus(ray, job)
    groups = group_files(files, job.config.batch_size or (GROUP if gpus else CPU_GROUP))
    keys = [group_key(job.model, g) for g in groups]
    # the largest groups first: the job ends on small ones, so no actor is left working alone on a large one
    # (Ray Data queues a second group on each busy actor, which then is a small one)
    rows = [{"key": keys[i], "files": json.dumps([asdict(p) for p in groups[i]])}
            for i in sorted(range(len(groups)), key=lambda i: -len(groups[i]))]
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the build's one bar below counts the files
    context.print_on_execution_start = False
    compute, resources = _pool(ray, gpus, len(groups))
    results = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        EmbedGroups, fn_constructor_args=(job, shards), batch_size=1, compute=compute, **resources)
    out, timeline, start = Embedding(None), [], time.time()
    with times.timed("ray_embed"), tqdm(total=len(files), unit="img", disable=not job.progress, file=sys.stderr,
                                        smoothing=0.1) as bar:
        for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
            for name in ("embedded", "reused", "decoded_on_device"):
                setattr(out, name, getattr(out, name) + int(batch[name].sum()))
            times.add("decode", float(batch["decode_seconds"].sum()))
            times.add("embed", float(batch["embed_seconds"].sum()))
            bar.update(int(batch["files"].sum()))
            timeline.append({name: batch[name] for name in TIMELINE})
    times.merge(pool_stages(timeline, start))
    with times.timed("read_shards"):
        _collect(store, keys, groups, out, vectors=job.config.index_type != ONDISK)
    return out


def _gpus(ray, job):
    """The cluster's GPUs to embed on: none when the build asks for the CPU."""
    return 0 if job.model.device == "cpu" else int(ray.cluster_resources().get("GPU", 0))


def _pool(ray, gpus, groups):
    """``(ActorPoolStrategy, map_batches resources)``: an actor per GPU, else per CPU of the cluster,
    but no more than ``groups``."""
    if gpus:
        return ray.data.ActorPoolStrategy(size=min(gpus, groups)), {"num_gpus": 1, "num_cpus": 1}
    actors = max(1, min(groups, math.floor(ray.cluster_resources().get("CPU", 1) / CPUS_PER_ACTOR)))
    return ray.data.ActorPoolStrategy(size=actors), {"num_cpus": ACTOR_CPUS}


def _collect(store, keys, groups, out, vectors=True):
    """Read each group's shard into ``out``: the files read (with their metadata), vectors, skipped.

    ``vectors`` False (an on-disk index, built from the shards themselves):
    ``out.vectors`` holds where each vector is, ``(shard URI, row)``, not the vector.
    """
    columns = None if vectors else [c for c in COLUMNS if c != "vector"] + [HAS_VECTOR]
    for key, group in zip(keys, groups):
        table = store.read(key, rows=len(group), columns=columns)
        if table is None:
            raise BuildError(f"the shard {store.path(key)} is missing or damaged after the job; "
                             "run the same command again to make it anew")
        fingerprint = store.fingerprint(table)
        if out.fingerprint is None:
            out.fingerprint = fingerprint
        else:
            out.fingerprint.check_same_space(fingerprint, where=f"the shards at {store.url}")
        by_path = {p.rel: p for p in group}
        rows = table.to_pydict()
        uri = store.uri(key)
        for i, rel in enumerate(rows["path"]):
            sha, reason = rows["sha256"][i], rows["reason"][i]
            if reason is not None:
                out.skipped.append(Skipped(rel, reason, sha))
                continue
            info = ImageInfo(rows["width"][i], rows["height"][i], rows["taken_at"][i], rows["camera"][i])
            out.read.append((by_path[rel], sha, info))
            if rows[HAS_VECTOR][i]:
                out.vectors[sha] = np.asarray(rows["vector"][i], np.float32) if vectors else (uri, i)
