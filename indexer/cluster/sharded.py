"""The on-disk index of a bundle generation, built by Ray tasks from the vectors where they lie.

The vectors of a generation come in :class:`Piece` s: rows of a Parquet file
(a build's shards, a benchmark's parts) or of the previous generation's
vectors file. Tasks copy them, as float16, into the new generation's vectors
file (a row per id, as any bundle's); the driver trains the quantisers on a
sample of that file's rows (``search.index.ondisk.train``); one task per
range of rows adds them to a copy of the trained index, a block at a time,
and finds the exact neighbours of the tuning's held-out rows in its range
(one pass over the vectors for both); the driver merges the parts' lists
into one file on disk and tunes the search parameters against those. No
process ever holds the whole collection, and the vectors are never in the
driver. The nodes must see the
generation folder (and the pieces' files) at the same paths.
"""

import math
import os
import shutil
import time
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from search.index import ann, ondisk, tuning
from search.store.bundle import IDS_FILE, METADATA_FILE, VECTORS_FILE
from search.store.metadata import load_metadata
from search.store.vectors import VectorFile
from search.store.writer import check_ids, commit_generation

from ..errors import BuildError

TASK_CPUS = 1  # and one faiss thread in each task: more only wait on each other's cores
PART_ROWS = 1_000_000  # rows per add task at most: its codes stay in memory until it writes its part
COPY_ROWS = 1_000_000  # rows per copy task, about


@dataclass(frozen=True)
class Piece:
    """Rows ``take`` of the vectors in ``path`` (Parquet with a ``vector`` column of float32 or float16
    lists, or a ``.npy`` vectors file), which become rows ``rows`` of the new generation."""

    path: str
    take: np.ndarray | None  # None: every row, in order
    rows: np.ndarray


def read_vectors(path, take=None):
    """``[len(take), dim]`` vectors (float16 or float32 as stored) of rows ``take`` (default all) of ``path``."""
    if path.endswith(".npy"):
        stored = VectorFile(path)
        try:
            return stored[:] if take is None else stored.rows(take)
        finally:
            stored.close()
    column = pq.read_table(path, columns=["vector"]).column("vector").combine_chunks()
    dim = column.type.list_size if hasattr(column.type, "list_size") else len(column[0])
    flat = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return flat if take is None else flat[take]


def parquet_rows(paths_and_ids, batch_rows=65_536):
    """Metadata rows (``search.store.metadata.FIELDS`` tuples) of Parquet files with the shards' columns,
    each ``(path, ids)``: a file and the ids of its rows, in order, read a batch of columns at a time."""
    names = ("path", "size", "mtime_ns", "sha256", "width", "height", "taken_at", "camera")
    for path, ids in paths_and_ids:
        start = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_rows, columns=list(names)):
            columns = [batch.column(name).to_pylist() for name in names]
            batch_ids = ids[start:start + batch.num_rows].tolist()
            start += batch.num_rows
            yield from (row + (None, None, None) for row in zip(batch_ids, *columns))


def _copy(pieces, vectors_path):
    """Write ``pieces`` into the generation's float16 vectors file; returns the rows written."""
    out = np.load(vectors_path, mmap_mode="r+")
    written = 0
    for piece in pieces:
        vectors = read_vectors(piece.path, piece.take).astype(np.float16, copy=False)
        count = len(piece.rows)
        if count and int(piece.rows[-1]) - int(piece.rows[0]) == count - 1 and np.all(np.diff(piece.rows) == 1):
            out[int(piece.rows[0]):int(piece.rows[0]) + count] = vectors  # a run of rows: one copy
        else:
            out[piece.rows] = vectors
        written += count
    out.flush()
    return written


def _add(trained, vectors_path, ids_path, start, stop, part_path, queries):
    stored, ids = VectorFile(vectors_path), np.load(ids_path, mmap_mode="r")
    blocks = ((i, ids[i:min(stop, i + ondisk.BLOCK)], stored[i:min(stop, i + ondisk.BLOCK)])
              for i in range(start, stop, ondisk.BLOCK))
    try:
        return ondisk.add_part(trained, blocks, part_path, queries)
    finally:
        stored.close()


class Tasks:
    """Runs a function over tuples of arguments: as Ray tasks of :data:`TASK_CPUS` each on the cluster of
    ``ray`` (an initialised ``ray`` module), or, without one, in this process one after another."""

    def __init__(self, ray=None):
        self.ray = ray

    @property
    def cpus(self):
        return max(1, int(self.ray.cluster_resources().get("CPU", 1))) if self.ray is not None else 1

    def map(self, fn, calls):
        if self.ray is None:
            return [fn(*args) for args in calls]
        remote = self.ray.remote(num_cpus=TASK_CPUS)(_in_task)
        return self.ray.get([remote.remote(fn, *args) for args in calls])


def _in_task(fn, *args):
    import faiss

    faiss.omp_set_num_threads(TASK_CPUS)  # a task's process is its own: faiss would start a thread per core
    return fn(*args)


def _runs(items, sizes, target):
    """``items`` cut, in order, into runs of about ``target`` in total ``sizes``."""
    runs, run, size = [], [], 0
    for item, n in zip(items, sizes):
        run.append(item)
        size += n
        if size >= target:
            runs.append(run)
            run, size = [], 0
    return runs + ([run] if run else [])


def build_ondisk_index(tasks, folder, ids, pieces, dim, vectors_path, ids_path, max_index_memory=None):
    """Build, with ``tasks`` (:class:`Tasks`), the on-disk index of the ``ids`` (sorted; saved at
    ``ids_path``) whose vectors are ``pieces`` into the generation ``folder``, and their float16
    vectors into ``vectors_path``.

    Returns ``(index_type, index_params)`` for the manifest: the tuned search
    parameters, the recall measured and each step's seconds.
    """
    start = time.perf_counter()
    n = len(ids)
    if n < ondisk.MIN_VECTORS:
        raise BuildError(f"an on-disk index needs at least {ondisk.MIN_VECTORS} images, this collection has {n}; "
                         "leave out --index-type ondisk for a bundle's own index")
    if sum(len(p.rows) for p in pieces) != n:
        raise BuildError(f"the shards hold {sum(len(p.rows) for p in pieces)} vectors for {n} images")
    index_type = ondisk.choose(n, dim, max_index_memory)
    seconds = {}

    def step(name):
        seconds[name] = round(time.perf_counter() - start - sum(seconds.values()), 2)

    np.lib.format.open_memmap(vectors_path, "w+", np.float16, (n, dim)).flush()
    runs = _runs(pieces, [len(p.rows) for p in pieces], COPY_ROWS)
    copied = sum(tasks.map(_copy, [(run, vectors_path) for run in runs]))
    if copied != n:
        raise BuildError(f"the copy tasks wrote {copied} vectors, not {n}")
    step("copy")
    train_rows, query_rows = tuning.split_rows(n, ondisk.train_size(index_type))
    stored = VectorFile(vectors_path)
    try:
        trained = ondisk.train(stored.rows(train_rows), index_type)
        step("train")
        parts_dir = os.path.join(folder, "parts")
        os.makedirs(parts_dir, exist_ok=True)
        edges = np.linspace(0, n, max(tasks.cpus, math.ceil(n / PART_ROWS)) + 1).astype(np.int64)
        part_paths = [os.path.join(parts_dir, f"part-{i:06d}.index") for i in range(len(edges) - 1)]
        # the tuning's exact neighbours of the held-out rows are found by the same tasks, block by block
        queries = stored.rows(query_rows)
        added = tasks.map(_add, [(trained, vectors_path, ids_path, int(a), int(b), out, queries)
                                 for a, b, out in zip(edges[:-1], edges[1:], part_paths)])
        if sum(count for count, _ in added) != n:
            raise BuildError(f"the parts added {sum(count for count, _ in added)} vectors, not {n}")
        step("add")
        ondisk.merge(trained, part_paths, folder)
        shutil.rmtree(parts_dir)
        step("merge")
        raw = ann.load_index(os.path.join(folder, ondisk.INDEX_FILE), use_gpu=False).index
        _, nearest = ondisk.merge_top([found for _, found in added], tuning.K + 1)
        truth = tuning.drop_self(nearest, query_rows, tuning.K)
        params = tuning.tune(raw, np.asarray(ids, np.int64), stored, query_rows, truth=truth)
        step("tune")
    finally:
        stored.close()
    params.update({"reason": f"on disk: {n} vectors, lists memory-mapped", "build_seconds": seconds})
    return index_type, params


def commit_ondisk(tasks, bundle_dir, manifest, ids, metadata_rows, pieces, max_index_memory=None, skipped=None):
    """Commit the next generation of ``bundle_dir`` (``search.store.writer``'s atomic commit) with an
    on-disk index built by ``tasks`` (:class:`Tasks`): ``ids`` sorted, ``metadata_rows`` their
    ``search.store.metadata.FIELDS`` tuples in the same order (bulk-loaded), ``pieces`` where their
    vectors are. The index is rebuilt from all of them. Returns the new manifest."""

    def write(gen):
        start = time.perf_counter()
        load_metadata(os.path.join(gen, METADATA_FILE), metadata_rows)
        loaded = round(time.perf_counter() - start, 2)
        index_type, params = build_ondisk_index(tasks, gen, ids, pieces, manifest.dim, os.path.join(gen, VECTORS_FILE),
                                                os.path.join(gen, IDS_FILE), max_index_memory)
        params["build_seconds"]["metadata"] = loaded
        return index_type, params

    return commit_generation(bundle_dir, manifest, check_ids(np.asarray(ids, np.int64)), write, skipped)
