"""Which index a collection gets, from its size and a memory budget (after autofaiss).

Exact flat search while a query over all vectors is still quick; beyond that
IVF with 4-bit PQ fast-scan codes, as many code bytes as the budget allows
(more bytes, better recall). The figures behind the constants are in
``benchmarks/RESULTS.md`` (``benchmarks/bench_ann.py``).
"""

import math
import re
import time
from dataclasses import dataclass

from . import ann, tuning
from ..errors import InvalidArgumentError

# One exact query scans 4 * dim bytes per vector, which past this count is too slow
# for a query (``benchmarks/RESULTS.md``, "Approximate search"): an approximate index is chosen.
FLAT_MAX_VECTORS = 100_000
# The default budget: what an IVF-PQ fast-scan index needs at 512 dimensions
# with 128 code bytes, with room to spare; a flat index needs 2,048.
DEFAULT_BYTES_PER_VECTOR = 128
TRAIN_PER_LIST = 64  # training rows per inverted list: k-means quality levels off, its time does not
MIN_ANN_VECTORS = 1_000  # below this a quantiser cannot be trained well; flat is instant anyway
ID_BYTES = 8  # inverted lists store an int64 id per vector
BLOCK = 32  # fast-scan packs codes by blocks of 32 vectors per list
AUTO, ONDISK = "auto", "ondisk"
# What a build may ask for: "auto" (flat or IVF-PQ in memory, by size and budget, below) or "ondisk" (an
# IVF-PQ whose lists stay on disk, built by Ray tasks: ``search.index.ondisk``, ``indexer.cluster.sharded``)
INDEX_TYPES = (AUTO, ONDISK)
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


@dataclass
class IndexChoice:
    index_type: str  # "Flat" or a faiss factory key
    bytes_per_vector: float | None  # estimated memory held per vector (None: unknown type)
    reason: str


def parse_size(text):
    """``"2G"``, ``"512M"``, ``"1.5g"`` or a plain byte count, as bytes."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = text
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", str(text).lower())
        if not match:
            raise InvalidArgumentError(f"cannot read memory size {text!r}; write e.g. 512M, 4G or 1000000")
        value = float(match.group(1)) * _UNITS[match.group(2)]
    if value <= 0:
        raise InvalidArgumentError(f"memory size must be positive, got {text!r}")
    return int(value)


def list_count(n):
    """Inverted lists for ``n`` vectors: about sqrt(n), a power of two, at least 39 vectors per list."""
    lists = 2 ** round(math.log2(max(1.0, math.sqrt(n))))
    while lists > 1 and n < 39 * lists:  # faiss's own minimum of training points per centroid
        lists //= 2
    return max(1, lists)


def flat_bytes(dim):
    return 4 * dim + ID_BYTES * 2  # vectors, plus IndexIDMap2's id array and reverse map


def ivfpq_bytes(n, dim, lists, m):
    """Estimated memory per vector of ``IVF{lists},PQ{m}x4fs`` over ``n`` vectors."""
    codes = m / 2 + ID_BYTES
    padding = lists * (BLOCK / 2) * (m / 2) / n  # half a block of padding per list on average
    centroids = lists * dim * 4 / n
    return codes + padding + centroids


def estimate_bytes(index_type, n, dim):
    """Estimated memory per vector of an index type this module can choose, else None."""
    if index_type == ann.FLAT:
        return flat_bytes(dim)
    match = re.fullmatch(r"IVF(\d+),PQ(\d+)x4fs", index_type)
    return round(ivfpq_bytes(n, dim, int(match.group(1)), int(match.group(2))), 1) if match else None


def pq_sizes(dim):
    """Code sizes ``m`` that divide ``dim`` into sub-vectors of 2 or more dimensions, largest first."""
    return [m for m in range(dim // 2, 0, -1) if dim % m == 0 and m % 2 == 0]


def choose_index(n, dim, max_index_memory=None, flat_max_vectors=FLAT_MAX_VECTORS):
    """The index for ``n`` vectors of ``dim`` within ``max_index_memory`` bytes.

    ``max_index_memory`` None means :data:`DEFAULT_BYTES_PER_VECTOR` per vector
    once the collection is too large for flat search.
    """
    budget = parse_size(max_index_memory) if max_index_memory is not None else None
    flat = flat_bytes(dim)
    fits_flat = budget is None or n * flat <= budget
    if n < MIN_ANN_VECTORS or (n <= flat_max_vectors and fits_flat):
        why = f"exact search: {n} vectors" + ("" if fits_flat else ", too few to train an approximate index")
        return IndexChoice(ann.FLAT, flat, why)
    per_vector = budget / n if budget is not None else DEFAULT_BYTES_PER_VECTOR
    lists = list_count(n)
    for m in pq_sizes(dim):
        estimate = ivfpq_bytes(n, dim, lists, m)
        if estimate <= per_vector:
            why = (f"approximate search: {n} vectors over {flat_max_vectors} for flat"
                   if fits_flat else f"approximate search: flat needs {flat:.0f} bytes per vector")
            return IndexChoice(f"IVF{lists},PQ{m}x4fs", round(estimate, 1),
                               f"{why}, budget {per_vector:.0f} bytes per vector")
    smallest = min((ivfpq_bytes(n, dim, lists, m) for m in pq_sizes(dim)), default=float("inf"))
    raise InvalidArgumentError(
        f"a memory budget of {per_vector:.1f} bytes per vector is too small for {n} vectors of dimension {dim}; "
        f"the smallest index needs about {smallest:.0f} bytes per vector (--max-index-memory {math.ceil(smallest * n)})"
    )


def build_chosen(ids, vectors, index_type="auto", max_index_memory=None, flat_max_vectors=FLAT_MAX_VECTORS):
    """Build the index for this collection; returns ``(index, index_type, index_params)``.

    ``index_type`` "auto" chooses with :func:`choose_index`; "Flat" or an IVF
    factory key forces one. Approximate indexes are tuned with
    :func:`tuning.tune`; ``index_params`` (for the manifest) records
    the search parameters, the recall measured and how the choice was made.
    """
    n, dim = vectors.shape
    start = time.perf_counter()
    if index_type == "auto":
        choice = choose_index(n, dim, max_index_memory, flat_max_vectors)
    else:
        choice = IndexChoice(index_type, estimate_bytes(index_type, n, dim), "forced")
    if choice.index_type != ann.FLAT and n < MIN_ANN_VECTORS:
        raise InvalidArgumentError(f"{choice.index_type} needs at least {MIN_ANN_VECTORS} vectors, got {n}")
    params = {"reason": choice.reason, "estimated_bytes_per_vector": choice.bytes_per_vector}
    if choice.index_type == ann.FLAT:
        index = ann.build_index(ids, vectors)
        params.update({"search": {}, "recall_at_10": 1.0})
    else:
        lists = re.match(r"IVF(\d+)", choice.index_type)
        train_size = TRAIN_PER_LIST * int(lists.group(1)) if lists else n
        train_rows, query_rows = tuning.split_rows(n, train_size)
        index = ann.build_index(ids, vectors, choice.index_type, train_rows=train_rows)
        params.update(tuning.tune(index, ids, vectors, query_rows))
    params["build_seconds"] = round(time.perf_counter() - start, 2)
    return index, choice.index_type, params
