"""An IVF-PQ index whose inverted lists live in one file on disk, built in parts and merged.

For collections larger than one process's memory (``indexer.cluster.sharded``
builds one into a bundle generation with Ray tasks): the coarse quantiser and
the PQ codebooks are trained on a sample (:func:`train`), each part of the
collection is added to a copy of the trained index (:func:`add_part`), and
the parts' inverted lists are merged into one ``OnDiskInvertedLists`` file
(:func:`merge`, faiss's ``contrib.ondisk``). ``ann.load_index`` maps that
file: a search touches the lists it scans, so resident memory follows the
lists scanned, not the collection.

The codes are 8-bit PQ (``IVF{lists},PQ{m}``; fewer bits for a collection too
small to train 256 centroids per sub-quantiser), not the 4-bit fast-scan
codes of an in-memory bundle: faiss 1.15 merges only plain inverted lists
onto disk (fast-scan packs codes in blocks of 32, which
``OnDiskInvertedLists`` refuses). From :data:`HNSW_MIN_LISTS` lists on, the
coarse quantiser is an HNSW graph over the centroids: assigning each vector
to its list then costs a graph walk, not a scan of every centroid. Candidates
are re-scored exactly against the bundle's own vectors, stored as float16
(``search.store.vectors``).
"""

import math
import os

import faiss
import numpy as np

from ..errors import InvalidArgumentError
from . import ann, tuning
from .choice import ID_BYTES, TRAIN_PER_LIST, list_count, parse_size, pq_sizes

INDEX_FILE = ann.INDEX_FILE
LISTS_FILE = ann.ONDISK_LISTS  # next to INDEX_FILE, found there by ann.load_index
DEFAULT_BYTES_PER_VECTOR = 128  # as choice.py's budget for an in-memory index: codes and ids on disk
BLOCK = 65_536  # vectors per block of an exact scan
HNSW_MIN_LISTS = 4096  # from here on the coarse quantiser is a graph (benchmarks/RESULTS.md, "Scale")
CODE_BITS = 8
MIN_VECTORS = 160  # a few lists of faiss's minimum size to train on, and 16 held-out queries to tune with


def choose(n, dim, max_index_memory=None):
    """The factory key ``IVF{lists}[_HNSW32],PQ{m}x{bits}``: as many code bytes ``m`` as the budget allows."""
    per_vector = parse_size(max_index_memory) / n if max_index_memory is not None else DEFAULT_BYTES_PER_VECTOR
    lists = list_count(n)
    quantiser = f"IVF{lists}_HNSW32" if lists >= HNSW_MIN_LISTS else f"IVF{lists}"
    train_rows = min(TRAIN_PER_LIST * lists, n - tuning.query_count(n))
    # k-means of 2**bits centroids per sub-quantiser wants 39 rows per centroid (faiss's warning threshold)
    bits = max(1, min(CODE_BITS, int(math.log2(max(2, train_rows // 39)))))
    for m in pq_sizes(dim):
        if math.ceil(m * bits / 8) + ID_BYTES <= per_vector:
            return f"{quantiser},PQ{m}x{bits}"
    raise InvalidArgumentError(f"a budget of {per_vector:.1f} bytes per vector is too small for an on-disk index "
                               f"of dimension {dim}; it needs at least {min(pq_sizes(dim)) + ID_BYTES}")


def train_size(index_type):
    return TRAIN_PER_LIST * int(index_type.split(",")[0][3:].split("_")[0])


def train(sample, index_type):
    """The trained, empty index of ``index_type`` over ``sample`` (float32 rows), serialised (numpy bytes)."""
    index = faiss.index_factory(sample.shape[1], index_type, faiss.METRIC_INNER_PRODUCT)
    index.do_polysemous_training = False  # on by default for 8-bit PQ, and it multiplied the training time
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return faiss.serialize_index(index)


def add_part(trained, blocks, path, queries=None, k=tuning.K + 1):
    """Add ``blocks`` (``(first_row, ids, vectors)``, a block at a time: the codes alone stay in memory) to
    a copy of the ``trained`` index and write it to ``path``; returns how many were added.

    With ``queries``, also ``(count, (scores, rows))``: the exact ``k`` best rows of the part for each
    query (:func:`merge_top` merges parts), found while each block is in memory anyway.
    """
    index = faiss.deserialize_index(trained)
    found = []
    for first_row, ids, block in blocks:
        block = np.ascontiguousarray(block, dtype=np.float32)
        index.add_with_ids(block, np.asarray(ids, dtype=np.int64))
        if queries is not None:
            found.append(block_top(queries, block, first_row, k))
    faiss.write_index(index, path)
    return index.ntotal if queries is None else (index.ntotal, merge_top(found, k))


def merge(trained, parts, folder):
    """Merge the part indexes at ``parts`` into ``folder``: INDEX_FILE and its lists in LISTS_FILE."""
    from faiss.contrib.ondisk import (
        merge_ondisk,  # only here: faiss.contrib sets up loggers on import
    )

    index = faiss.deserialize_index(trained)
    merge_ondisk(index, list(parts), os.path.join(folder, LISTS_FILE))
    faiss.write_index(index, os.path.join(folder, INDEX_FILE))
    return index.ntotal


def exact_search(vectors, queries, k):
    """``(scores, rows)`` of the exact ``k`` best rows of ``vectors`` (an array or a ``VectorFile``: read by
    blocks, never whole)."""
    blocks = ((i, np.asarray(vectors[i:i + BLOCK], np.float32)) for i in range(0, len(vectors), BLOCK))
    return merge_top([block_top(queries, block, first, k) for first, block in blocks], k)


def block_top(queries, block, first_row, k):
    """``(scores, rows)`` of the exact ``k`` best rows of ``block`` (rows ``first_row`` on) for each query."""
    scores, rows = faiss.knn(np.ascontiguousarray(queries, dtype=np.float32),
                             np.ascontiguousarray(block, dtype=np.float32), min(k, len(block)),
                             metric=faiss.METRIC_INNER_PRODUCT)
    return scores, np.where(rows >= 0, rows + first_row, -1)


def merge_top(results, k):
    """The ``k`` best of several ``(scores, rows)`` of the same queries (from :func:`block_top`), best first."""
    heap = faiss.ResultHeap(len(results[0][0]), k, keep_max=True)
    for scores, rows in results:
        heap.add_result(np.ascontiguousarray(scores, np.float32), np.ascontiguousarray(rows, np.int64))
    heap.finalize()
    return heap.D, heap.I
