"""A path_prefix that keeps most of a large collection costs a request no copy of the matching vectors.

The audit saw +400 MB per request on 200,000 vectors (``benchmarks/bench_filter_memory``
measures that size); here 80,000 small vectors, flat and IVF, with numpy's
allocations traced: a copy of the matching vectors would be 37 MB, their ids
cost about 4 MB.
"""

import tracemalloc

import numpy as np
import pytest

from search.query import ranking
from search.query.searcher import EXACT_SUBSET_MAX, Searcher
from search.store import writer
from search.store.bundle import Bundle
from search.store.manifest import Manifest
from search.store.metadata import ImageRecord

N, DIM, KEPT = 80_000, 128, 72_000


@pytest.fixture(scope="module", params=["Flat", "IVF64,PQ16x4fs"])
def searcher(request, tmp_path_factory):
    vectors = ranking.normalize(np.random.default_rng(5).normal(size=(N, DIM)))
    records = [ImageRecord(i, f"{'kept' if i < KEPT else 'other'}/{i:06d}.jpg", 1, 0, f"{i:064x}", 64, 48)
               for i in range(N)]
    path = tmp_path_factory.mktemp("filter-memory")
    manifest = Manifest(model={"name": "vectors-only", "pretrained": None, "dim": DIM}, dim=DIM, root="/photos")
    writer.commit(str(path), manifest, records, vectors, index_type=request.param)
    return Searcher(Bundle.open(str(path), use_gpu=False)), vectors


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_filter_keeping_most_images_copies_no_vectors(searcher):
    searcher, vectors = searcher
    assert KEPT > EXACT_SUBSET_MAX  # the index searches the subset itself
    query = vectors[7]
    searcher.search_vector(query, k=24, path_prefix="kept")  # warm: the mapped files, faiss's buffers
    tracemalloc.start()
    try:
        page = searcher.search_vector(query, k=24, path_prefix="kept")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    matching_bytes = KEPT * DIM * 4
    assert peak < matching_bytes / 4, (peak, matching_bytes)
    assert page.total == KEPT and page.results[0].id == 7
    assert all(r.path.startswith("kept/") for r in page.results)
