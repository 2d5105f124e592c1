"""The torch exact index, on the CPU: against brute force, through a bundle, across threads.

Small score blocks force the multi-block merge; ``gpu_device="cpu"`` takes
the bundle's GPU path without a GPU. Exact search is the reference, with a
tolerance for near-ties.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from benchmarks.datasets import collection_and_queries
from search.index import ann
from search.store import writer
from search.index import gpu_exact
from search.query import ranking
from search.query.searcher import Searcher
from search.store.bundle import Bundle
from search.errors import InvalidArgumentError
from search.index.gpu_exact import TorchExactIndex
from search.store.manifest import Manifest
from search.store.metadata import ImageRecord

DIM = 32
N = 2_000
NQ = 20
BLOCK_ROWS = 300  # several blocks over N rows

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a CUDA device")


@pytest.fixture(scope="module")
def data():
    vectors, queries = collection_and_queries(N, NQ, dim=DIM, seed=5, clusters=20)
    ids = np.arange(N, dtype=np.int64) * 3 + 7  # ids are not row numbers
    return ids, vectors, queries


@pytest.fixture(scope="module")
def index(data):
    ids, vectors, _ = data
    return TorchExactIndex(ids, vectors, device="cpu", scratch_bytes=NQ * 4 * BLOCK_ROWS)


def write_bundle(path, ids, vectors, index_type="auto"):
    records = [ImageRecord(int(i), f"img{i}.jpg", 1, 0, f"{i:064x}", 64, 48) for i in ids]
    manifest = Manifest(model={"name": "m", "pretrained": "t", "dim": DIM}, dim=DIM, root="/photos")
    writer.commit(str(path), manifest, records, vectors, index_type=index_type)
    return str(path)


@pytest.fixture(scope="module", params=["Flat", "IVF16,PQ16x4fs"])
def bundle_path(request, tmp_path_factory, data):
    ids, vectors, _ = data
    return write_bundle(tmp_path_factory.mktemp("bundle"), ids, vectors, request.param)


@pytest.mark.parametrize("k", [1, 10, N])
def test_equals_brute_force(index, data, k):
    ids, vectors, queries = data
    scores, found = index.search(queries, k)
    assert scores.shape == found.shape == (NQ, k) and scores.dtype == np.float32 and found.dtype == np.int64
    for q, s, f in zip(queries, scores, found):
        truth_scores, truth_rows = ranking.brute_force(vectors, q, k)
        if k <= 10:
            assert f.tolist() == ids[truth_rows].tolist()
        # up to near-ties: the ids found score, rank by rank, what the best ones score
        assert len(set(f.tolist())) == k
        exact = vectors[np.searchsorted(ids, f)] @ q
        np.testing.assert_allclose(exact, truth_scores, atol=1e-5)
        np.testing.assert_allclose(s, exact, atol=1e-5)


@pytest.mark.parametrize("k", [10, 500])
def test_fp16_storage_picks_candidates_and_orders_them_in_float32(data, k):
    """As on a GPU: fp16 scores choose 2k + 32 candidates, float32 scores order them."""
    ids, vectors, queries = data
    index = TorchExactIndex(ids, vectors, device="cpu", dtype=torch.float16, scratch_bytes=NQ * 2 * BLOCK_ROWS)
    rounded = vectors.astype(np.float16).astype(np.float32)  # what the index holds
    scores, found = index.search(queries, k)
    assert scores.dtype == np.float32
    for q, s, f in zip(queries, scores, found):
        truth_scores, truth_rows = ranking.brute_force(rounded, q, k)
        if k <= 10:  # near-ties reorder only deep in a long list
            assert f.tolist() == ids[truth_rows].tolist()
        np.testing.assert_allclose(s, truth_scores, atol=1e-5)


def test_copies_a_read_only_memmap_in_chunks(tmp_path, data, monkeypatch):
    ids, vectors, queries = data
    np.save(tmp_path / "v.npy", vectors)
    mapped = np.load(tmp_path / "v.npy", mmap_mode="r")
    monkeypatch.setattr(gpu_exact, "COPY_ROWS", 700)  # a short last chunk too
    index = TorchExactIndex(ids, mapped, device="cpu")
    np.testing.assert_array_equal(index.vectors.numpy(), vectors)
    assert index.ntotal == N and index.search(queries[:1], 0)[1].shape == (1, 0)


def test_concurrent_searches_agree(index, data):
    _, _, queries = data
    scores, found = index.search(queries, 50)  # all queries at once: several blocks
    with ThreadPoolExecutor(8) as pool:
        for s, f in pool.map(lambda _: index.search(queries, 50), range(32)):
            np.testing.assert_array_equal(f, found)
            np.testing.assert_array_equal(s, scores)


def test_bundle_pages_match_the_faiss_index(bundle_path, data):
    _, vectors, queries = data
    cpu = Bundle.open(bundle_path, use_gpu=False)
    on_torch = Bundle.open(bundle_path, use_gpu=True, gpu_device="cpu")
    assert isinstance(on_torch.index.index, TorchExactIndex) and not on_torch.index.memory_mapped
    assert ann.candidate_count(on_torch.index, 30) == 30  # exact: no refine, whatever the manifest tuned
    agree = []
    for q in queries:
        for k, offset in [(10, 0), (10, 10), (30, 0)]:
            want = [(r.id, r.score) for r in Searcher(cpu).search_vector(q, k=k, offset=offset).results]
            got = [(r.id, r.score) for r in Searcher(on_torch).search_vector(q, k=k, offset=offset).results]
            truth_scores, truth_rows = ranking.brute_force(vectors, q, offset + k)
            assert [i for i, _ in got] == on_torch.ids[truth_rows[offset:]].tolist()
            np.testing.assert_allclose([s for _, s in got], truth_scores[offset:], atol=1e-5)
            agree.append(len(set(want) & set(got)) / k)
    if on_torch.manifest.index_type == ann.FLAT:
        assert min(agree) == 1.0
    else:  # the IVF pages are approximate, near the recall@10 >= 0.95 they were tuned to
        assert np.mean(agree) >= 0.9


def test_bundle_search_from_threads(bundle_path, data):
    _, _, queries = data
    searcher = Searcher(Bundle.open(bundle_path, use_gpu=True, gpu_device="cpu"))
    serial = [searcher.search_vector(q, k=20) for q in queries]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(lambda q: searcher.search_vector(q, k=20), queries)) == serial


@no_cuda
def test_use_gpu_true_without_cuda_says_what_to_do(bundle_path):
    with pytest.raises(InvalidArgumentError, match="no CUDA device.*use_gpu='auto'"):
        Bundle.open(bundle_path, use_gpu=True)
    # "auto" quietly keeps the faiss index, as False does
    for use_gpu in ("auto", False):
        assert not isinstance(Bundle.open(bundle_path, use_gpu=use_gpu).index.index, TorchExactIndex)


def test_vectors_that_do_not_fit_stay_on_faiss(bundle_path, monkeypatch):
    need = N * DIM * 4  # float32 on the CPU
    monkeypatch.setattr(gpu_exact, "free_memory", lambda device: 2 * need)
    assert isinstance(Bundle.open(bundle_path, use_gpu=True, gpu_device="cpu").index.index, TorchExactIndex)
    monkeypatch.setattr(gpu_exact, "free_memory", lambda device: 2 * need - 2)
    with pytest.raises(InvalidArgumentError, match="free memory of cpu.*use_gpu='auto'"):
        Bundle.open(bundle_path, use_gpu=True, gpu_device="cpu")
    assert not isinstance(Bundle.open(bundle_path, gpu_device="cpu").index.index, TorchExactIndex)
