"""FAISS indexes over the bundle's vectors: build, save, load, search.

Every index maps straight to image ids, so a search returns ids that the
metadata database and the stored vectors agree on. Two families exist: exact
``Flat`` (wrapped in ``IndexIDMap2``) and approximate ``IVF{n},PQ{m}x4fs``
(inverted lists store the ids themselves). Approximate search fetches
``k * k_factor`` candidates; the caller re-scores them exactly against the
stored vectors (see ``Searcher.search``), which is the refine step that lifts
4-bit PQ codes to recall@10 >= 0.95 without holding full vectors in memory.
On a GPU that faiss cannot use, an exact torch index over the stored vectors
(``gpu_exact``) stands in for either family.
"""

import os
from dataclasses import asdict, dataclass

import faiss
import numpy as np

from ..errors import InvalidArgumentError

INDEX_FILE = "index.faiss"
ONDISK_LISTS = "index.ivfdata"  # the inverted lists of an on-disk index (``ondisk``), next to its INDEX_FILE
FLAT = "Flat"
MAX_CANDIDATES = 20_000  # a refine beyond this costs more than it gains, even for k in the thousands
LIST_COVER = 2  # scan lists holding at least this many times the candidates asked for


@dataclass
class SearchParams:
    """What a search of an approximate index needs beyond the index file."""

    nprobe: int = 1  # inverted lists scanned per query
    k_factor: int = 1  # candidates fetched per result wanted, re-scored exactly afterwards

    @classmethod
    def from_dict(cls, data):
        data = data or {}
        return cls(**{k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__})

    def to_dict(self):
        return asdict(self)


class SearchableIndex:
    """A loaded index together with the search parameters tuned for it.

    ``index`` is a faiss index or a ``gpu_exact.TorchExactIndex``; both have
    ``ntotal`` and ``search(queries, k)``.
    """

    def __init__(self, index, params=None, memory_mapped=False):
        self.index = index
        self.memory_mapped = memory_mapped
        ivf = _ivf(index)
        if params is None:  # the file's own nprobe (faiss stores it), no refine
            params = SearchParams(nprobe=ivf.nprobe if ivf is not None else 1)
        self.params = params if isinstance(params, SearchParams) else SearchParams.from_dict(params)
        if ivf is not None:
            ivf.nprobe = self.params.nprobe  # also the default for callers of the raw index

    @property
    def ntotal(self):
        return self.index.ntotal


def _ivf(index):
    """The IVF part of a faiss ``index``, or None (also for a torch index)."""
    return faiss.try_extract_index_ivf(index) if isinstance(index, faiss.Index) else None


def gpu_count():
    get = getattr(faiss, "get_num_gpus", None)
    return get() if get else 0


def build_index(ids, vectors, index_type=FLAT, train_rows=None):
    """An inner-product index of type ``index_type`` over ``vectors`` labelled with ``ids``.

    ``index_type`` is ``Flat`` or a faiss factory key of the IVF family such as
    ``IVF1024,PQ128x4fs``; quantisers train on ``vectors[train_rows]`` (default: all).
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.asarray(ids, dtype=np.int64)
    dim = vectors.shape[1]
    if index_type == FLAT:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    elif index_type.startswith("IVF"):
        try:
            index = faiss.index_factory(dim, index_type, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as e:
            raise ValueError(f"bad index type {index_type!r}: {e}") from e
        index.train(vectors if train_rows is None else np.ascontiguousarray(vectors[train_rows]))
    else:
        raise ValueError(f"unknown index type {index_type!r}; available: Flat, IVF{{lists}},PQ{{m}}x4fs")
    if len(ids):
        index.add_with_ids(vectors, ids)
    return index


def save_index(index, path):
    faiss.write_index(_raw(index), path)


def _raw(index):
    """The index itself (faiss's own wrappers also have an ``index`` attribute)."""
    return index.index if isinstance(index, SearchableIndex) else index


def load_index(path, use_gpu="auto", params=None, mmap="auto", stored=None, gpu_device="cuda"):
    """Read the index at ``path`` with its search ``params`` (a dict from the manifest).

    ``mmap``: True maps the file instead of reading it (pages load on demand);
    ``"auto"`` does so when the file is larger than half the available memory.
    Flat indexes map their vectors; faiss 1.15 still reads fast-scan inverted
    lists into memory, which at <= 128 bytes per vector is a small part of flat's 2 KB.

    ``use_gpu``: True, False or ``"auto"`` (when there is a GPU). A flat index
    moves to faiss's GPUs where faiss has GPU support. Otherwise, given the
    ``stored`` ``(ids, vectors)`` it was built from, an exact torch index over
    them on ``gpu_device`` replaces any index, if they fit; with True, failing
    to do so raises :class:`InvalidArgumentError` instead of searching on the CPU.
    """
    if mmap == "auto":
        mmap = os.path.getsize(path) > available_memory() // 2
    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
    if os.path.exists(os.path.join(os.path.dirname(path), ONDISK_LISTS)):
        # faiss maps the lists file itself, found next to the index; IO_FLAG_MMAP on top of it crashed searches
        flags, mmap = faiss.IO_FLAG_ONDISK_SAME_DIR, True
    index = None
    if use_gpu is not False and gpu_count() > 0:
        index = faiss.read_index(path, flags)
        if _ivf(index) is None:  # faiss has no GPU version of PQ fast-scan
            return SearchableIndex(to_gpu(index), params, memory_mapped=bool(mmap))
    if use_gpu is True and stored is None:
        raise InvalidArgumentError("use_gpu=True needs faiss with GPU support and a flat index, "
                                   "or the stored vectors for a torch index")
    if use_gpu is not False and stored is not None:
        from . import gpu_exact  # torch loads only here

        exact = gpu_exact.exact_index(*stored, device=gpu_device, required=use_gpu is True)
        if exact is not None:  # exact: the approximate index's tuned params no longer apply
            return SearchableIndex(exact)
    if index is None:
        index = faiss.read_index(path, flags)
    return SearchableIndex(index, params, memory_mapped=bool(mmap))


def available_memory():
    """Bytes of memory available to new allocations (Linux), else the physical total."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def to_gpu(index):
    """Move ``index`` to every visible GPU (fp16 storage for flat indexes)."""
    options = faiss.GpuMultipleClonerOptions()
    options.useFloat16 = True
    options.shard = True
    return faiss.index_cpu_to_all_gpus(index, co=options)


def candidate_count(index, k):
    """How many candidates to fetch so that the ``k`` best survive the exact re-score."""
    factor = index.params.k_factor if isinstance(index, SearchableIndex) else 1
    return min(index.ntotal, max(k, min(k * factor, MAX_CANDIDATES)))


def search(index, queries, k, selector=None, fraction=1.0):
    """``(scores, ids)`` of the ``k`` best ids per query by the index's own scores.

    ``index`` is a :class:`SearchableIndex` or a raw index; ids of -1
    mean no result. For an IVF index, more lists are scanned when ``k`` is
    large, so that the lists scanned hold enough vectors to fill ``k``.
    ``selector`` (see :func:`id_selector`) limits the search to some ids,
    about ``fraction`` of all; the lists scanned then grow to hold ``k`` of them.
    """
    raw = _raw(index)
    k = min(int(k), raw.ntotal)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if k <= 0:
        n = len(queries)
        return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
    ivf = _ivf(raw)
    if ivf is None:  # flat or torch: exact
        if selector is None:
            return raw.search(queries, k)
        return raw.search(queries, k, params=faiss.SearchParameters(sel=selector))
    nprobe = index.params.nprobe if isinstance(index, SearchableIndex) else ivf.nprobe
    nprobe = max(nprobe, lists_to_cover(raw, k / max(fraction, 1e-9)))
    # per-call parameters: concurrent requests never race on the index's own nprobe
    return raw.search(queries, k, params=faiss.SearchParametersIVF(nprobe=nprobe, sel=selector))


def supports_selector(index):
    """Whether ``index`` can search a subset of its ids (a faiss index; the torch GPU index cannot)."""
    return isinstance(_raw(index), faiss.Index)


def id_selector(ids):
    """A faiss selector of the sorted ``ids`` (a bitmap over 0..max id: one bit per id, built in numpy).

    The returned selector keeps its bitmap alive; keep the selector while searching.
    """
    ids = np.asarray(ids, dtype=np.int64)
    size = int(ids[-1]) + 1 if len(ids) else 1
    mask = np.zeros(size, dtype=bool)
    mask[ids] = True
    bitmap = np.packbits(mask, bitorder="little")
    selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))  # its size is in bytes
    selector.bitmap_array = bitmap  # owned by the selector's Python object
    return selector


def lists_to_cover(index, k):
    """The fewest lists of an IVF ``index`` that hold enough vectors to fill ``k`` results, on average."""
    ivf = faiss.extract_index_ivf(index)
    per_list = max(1.0, index.ntotal / ivf.nlist)
    return int(min(ivf.nlist, np.ceil(LIST_COVER * k / per_list)))
