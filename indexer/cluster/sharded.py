"""A sharded on-disk index built on a Ray cluster from Parquet parts of ``id`` and ``vector`` rows.

The driver reads only the parts' footers (row counts, the dimension): one
task per part returns its rows in the training sample, the driver trains the
quantisers (``search.index.ondisk.train``), then one task per part adds its
rows to a copy of the trained index and writes its float16 rows into the
shared vectors file, and the driver merges the parts' lists into one file on
disk and tunes the search parameters against an exact scan. No process ever
holds the whole collection. Ids must be 0..n-1 (a row of the vectors file
is an id); the nodes must see ``folder`` at the same path.
"""

import os
import shutil
import time

import numpy as np
import pyarrow.parquet as pq

from search.index import ann, ondisk, tuning

from ..errors import BuildError

TASK_CPUS = 1


def read_part(path, columns=("id", "vector")):
    """``(ids, vectors)`` of the Parquet part at ``path``, vectors as float32 [n, dim]."""
    table = pq.read_table(path, columns=list(columns))
    vectors = table.column("vector").combine_chunks()
    dim = vectors.type.list_size
    flat = vectors.flatten().to_numpy(zero_copy_only=False)
    return table.column("id").to_numpy(), flat.reshape(-1, dim).astype(np.float32, copy=False)


def _sample(path, wanted):
    ids, vectors = read_part(path)
    keep = np.isin(ids, wanted)
    return vectors[keep]


def _add(path, trained, part_path, folder):
    ids, vectors = read_part(path)
    if ondisk.has_vectors(folder):
        stored = ondisk.open_vectors(folder, "r+")
        stored[ids] = vectors.astype(np.float16)
        stored.flush()
    return ondisk.add_part(trained, ids, vectors, part_path)


def build_sharded_index(ray, parts, folder, max_index_memory=None, store_vectors=True):
    """Build the on-disk index of the Parquet ``parts`` (paths) into ``folder``; returns its params dict."""
    start = time.perf_counter()
    footers = [pq.ParquetFile(p) for p in parts]
    n = sum(f.metadata.num_rows for f in footers)
    dim = footers[0].schema_arrow.field("vector").type.list_size
    if n < tuning.QUERIES * 10:
        raise BuildError(f"an on-disk index is for large collections; {n} vectors fit a bundle's own index")
    index_type = ondisk.choose(n, dim, max_index_memory)
    train_rows, query_rows = tuning.split_rows(n, ondisk.train_size(index_type))
    os.makedirs(os.path.join(folder, "parts"), exist_ok=True)
    remote = {name: ray.remote(num_cpus=TASK_CPUS)(fn) for name, fn in (("sample", _sample), ("add", _add))}
    wanted = ray.put(train_rows)
    sample = np.concatenate(ray.get([remote["sample"].remote(p, wanted) for p in parts]))
    seconds = {"sample": time.perf_counter() - start}
    trained = ondisk.train(sample, index_type)
    seconds["train"] = time.perf_counter() - start - sum(seconds.values())
    if store_vectors:
        ondisk.create_vectors(folder, n, dim)
    part_paths = [os.path.join(folder, "parts", f"part-{i:06d}.index") for i in range(len(parts))]
    trained_ref = ray.put(trained)
    added = ray.get([remote["add"].remote(p, trained_ref, out, folder) for p, out in zip(parts, part_paths)])
    if sum(added) != n:
        raise BuildError(f"the parts added {sum(added)} vectors, not {n}")
    seconds["add"] = time.perf_counter() - start - sum(seconds.values())
    ondisk.merge(trained, part_paths, folder)
    shutil.rmtree(os.path.join(folder, "parts"))
    seconds["merge"] = time.perf_counter() - start - sum(seconds.values())
    params = {"index_type": index_type, "count": n, "dim": dim, "stored_vectors": store_vectors}
    raw = ann.load_index(os.path.join(folder, ondisk.INDEX_FILE), use_gpu=False).index
    if store_vectors:
        params.update(ondisk.tune(raw, ondisk.open_vectors(folder), query_rows))
    else:  # no vectors to measure recall with: the codes rank, over the lists that hold 4 x k candidates
        params.update({"search": {"nprobe": ann.lists_to_cover(raw, tuning.K * 4), "k_factor": 1}})
    seconds["tune"] = time.perf_counter() - start - sum(seconds.values())
    params["build_seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    ondisk.write_params(folder, params)
    return params
