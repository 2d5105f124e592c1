"""An IVF-PQ index whose inverted lists live in one file on disk, built in parts and merged.

For collections larger than one process's memory (``indexer.cluster.sharded``
builds one from Parquet shards with Ray tasks): the coarse quantiser and the
PQ codebooks are trained on a sample (:func:`train`), each part of the
collection is added to a copy of the trained index (:func:`add_part`), and
the parts' inverted lists are merged into one ``OnDiskInvertedLists`` file
(:func:`merge`, faiss's ``contrib.ondisk``). Reading the index back maps
that file: a search touches the lists it scans, so resident memory follows
the lists scanned, not the collection.

The codes are 8-bit PQ (``IVF{lists},PQ{m}``), not the 4-bit fast-scan
codes of an in-memory bundle: faiss 1.15 merges only plain inverted lists
onto disk (fast-scan packs codes in blocks of 32, which
``OnDiskInvertedLists`` refuses). Candidates are re-scored exactly against
float16 copies of the vectors, a file memory-mapped like the lists
(``VECTORS_FILE``, row = id); without it (``store_vectors=False``) the
codes' own scores rank, at the recall cost in ``benchmarks/RESULTS.md``.
"""

import json
import os

import faiss
import numpy as np

from ..errors import InvalidArgumentError
from . import ann, tuning
from .choice import ID_BYTES, TRAIN_PER_LIST, list_count, parse_size, pq_sizes

INDEX_FILE = ann.INDEX_FILE
LISTS_FILE = ann.ONDISK_LISTS  # next to INDEX_FILE, found there by ann.load_index
PARAMS_FILE = "params.json"  # the search parameters tuned at build time, the recall measured
VECTORS_FILE = "vectors.f16"  # [n, dim] float16, row = id
DEFAULT_BYTES_PER_VECTOR = 128  # as choice.py's budget for an in-memory index: codes and ids on disk
BLOCK = 65_536  # vectors per block of an exact scan


def choose(n, dim, max_index_memory=None):
    """The factory key ``IVF{lists},PQ{m}``: as many code bytes ``m`` as the budget per vector allows."""
    per_vector = parse_size(max_index_memory) / n if max_index_memory is not None else DEFAULT_BYTES_PER_VECTOR
    for m in pq_sizes(dim):
        if m + ID_BYTES <= per_vector:
            return f"IVF{list_count(n)},PQ{m}"
    raise InvalidArgumentError(f"a budget of {per_vector:.1f} bytes per vector is too small for an on-disk index "
                               f"of dimension {dim}; it needs at least {min(pq_sizes(dim)) + ID_BYTES}")


def train_size(index_type):
    return TRAIN_PER_LIST * int(index_type.split(",")[0][3:])


def train(sample, index_type):
    """The trained, empty index of ``index_type`` over ``sample`` (float32 rows), serialised (numpy bytes)."""
    index = faiss.index_factory(sample.shape[1], index_type, faiss.METRIC_INNER_PRODUCT)
    index.do_polysemous_training = False  # on by default for 8-bit PQ, and it multiplied the training time
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return faiss.serialize_index(index)


def add_part(trained, ids, vectors, path):
    """Add ``vectors`` labelled ``ids`` to a copy of the ``trained`` index and write it to ``path``."""
    index = faiss.deserialize_index(trained)
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
    faiss.write_index(index, path)
    return index.ntotal


def merge(trained, parts, folder):
    """Merge the part indexes at ``parts`` into ``folder``: INDEX_FILE and its lists in LISTS_FILE."""
    from faiss.contrib.ondisk import (
        merge_ondisk,  # only here: faiss.contrib sets up loggers on import
    )

    index = faiss.deserialize_index(trained)
    merge_ondisk(index, list(parts), os.path.join(folder, LISTS_FILE))
    faiss.write_index(index, os.path.join(folder, INDEX_FILE))
    return index.ntotal


def create_vectors(folder, n, dim):
    """The float16 vectors file of ``n`` rows, created empty, for parts to fill (:func:`open_vectors`)."""
    np.lib.format.open_memmap(os.path.join(folder, VECTORS_FILE), "w+", np.float16, (n, dim)).flush()


def open_vectors(folder, mode="r"):
    """The float16 vectors of ``folder``, memory-mapped (``r+`` for a part to write its rows)."""
    return np.load(os.path.join(folder, VECTORS_FILE), mmap_mode=mode)


def has_vectors(folder):
    return os.path.exists(os.path.join(folder, VECTORS_FILE))


def exact_search(vectors, queries, k):
    """``(scores, ids)`` of the exact ``k`` best rows of ``vectors`` (memory-mapped: read by blocks)."""
    from faiss.contrib.exhaustive_search import knn_ground_truth  # as merge_ondisk

    blocks = (np.asarray(vectors[i:i + BLOCK], np.float32) for i in range(0, len(vectors), BLOCK))
    return knn_ground_truth(np.ascontiguousarray(queries, dtype=np.float32), blocks, k, faiss.METRIC_INNER_PRODUCT)


def tune(index, vectors, rows, target=tuning.TARGET_RECALL):
    """Search parameters of the merged ``index`` for recall@10 >= ``target`` on the held-out ``rows``,
    as ``tuning.tune`` finds them, the truth found by an exact scan of the mapped ``vectors``."""
    queries = np.asarray(vectors[rows], np.float32)
    _, found = exact_search(vectors, queries, tuning.K + 1)
    truth = tuning.drop_self(found, rows, tuning.K)
    return tuning.tune(index, np.arange(len(vectors), dtype=np.int64), vectors, rows, target, truth=truth)


def write_params(folder, params):
    with open(os.path.join(folder, PARAMS_FILE), "w") as f:
        json.dump(params, f, indent=1)


class OnDiskIndex:
    """An on-disk index folder opened for search: lists and vectors mapped, search parameters as tuned.

    ``rescore``: re-score candidates against the float16 vectors (when stored);
    False ranks by the codes alone.
    """

    def __init__(self, folder, rescore=True):
        with open(os.path.join(folder, PARAMS_FILE)) as f:
            self.info = json.load(f)
        self.vectors = open_vectors(folder) if rescore and has_vectors(folder) else None
        params = self.info.get("search") if self.vectors is not None else {"nprobe": self.info["search"]["nprobe"]}
        self.index = ann.load_index(os.path.join(folder, INDEX_FILE), use_gpu=False, params=params)

    @property
    def ntotal(self):
        return self.index.ntotal

    def search(self, queries, k):
        """``(scores, ids)`` of the ``k`` best per query, best first (-1: no result)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.index.index.d)
        scores, found = ann.search(self.index, queries, ann.candidate_count(self.index, k))
        if self.vectors is None:
            return scores[:, :k], found[:, :k]
        ids = tuning.refine(found, queries, None, self.vectors, k)
        rows = np.maximum(ids, 0)
        exact = np.einsum("qkd,qd->qk", np.asarray(self.vectors[rows], np.float32), queries)
        exact[ids < 0] = -np.inf
        return exact, ids
