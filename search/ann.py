"""FAISS indexes over the bundle's vectors.

Every index maps straight to image ids (``IndexIDMap2``), so a search returns
ids that the metadata database and the stored vectors agree on.
"""

import faiss
import numpy as np

INDEX_FILE = "index.faiss"


def gpu_count():
    get = getattr(faiss, "get_num_gpus", None)
    return get() if get else 0


def build_index(ids, vectors, index_type="Flat"):
    """An exact inner-product index over ``vectors`` labelled with ``ids``."""
    if index_type != "Flat":
        raise ValueError(f"unknown index type {index_type!r}; available: Flat")
    dim = vectors.shape[1]
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
    return index


def save_index(index, path):
    faiss.write_index(index, path)


def load_index(path, use_gpu="auto"):
    index = faiss.read_index(path)
    if use_gpu is True or (use_gpu == "auto" and gpu_count() > 0):
        index = to_gpu(index)
    return index


def to_gpu(index):
    """Move ``index`` to every visible GPU (fp16 storage for flat indexes)."""
    options = faiss.GpuMultipleClonerOptions()
    options.useFloat16 = True
    options.shard = True
    return faiss.index_cpu_to_all_gpus(index, co=options)


def search(index, queries, k):
    """``(scores, ids)`` of the ``k`` best ids per query; ids of -1 mean no result."""
    k = min(int(k), index.ntotal)
    if k <= 0:
        n = len(queries)
        return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
