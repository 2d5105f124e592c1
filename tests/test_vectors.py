"""The vectors file: rows read through one descriptor, in memory or from the file, never memory-mapped."""

import os

import numpy as np
import pytest

from search.errors import BundleError, InvalidArgumentError
from search.store.vectors import VectorFile, open_vectors


@pytest.fixture
def stored(tmp_path):
    x = np.random.default_rng(0).normal(size=(500, 16)).astype(np.float32)
    path = tmp_path / "vectors.npy"
    np.save(path, x)
    return path, x


def test_rows_come_back_in_the_order_asked(stored):
    path, x = stored
    vf = VectorFile(str(path))
    assert vf.shape == (500, 16) and len(vf) == 500 and vf.dtype == np.float32
    for rows in ([3, 4, 5, 100], [9, 2, 2, 450, 3], np.arange(0, 500, 7)[::-1], []):
        np.testing.assert_array_equal(vf[np.asarray(rows, dtype=np.int64)], x[np.asarray(rows, dtype=np.int64)])
    np.testing.assert_array_equal(vf[10:20], x[10:20])
    np.testing.assert_array_equal(vf[::50], x[::50])
    np.testing.assert_array_equal(vf[-1], x[-1])
    np.testing.assert_array_equal(np.asarray(vf), x)
    with pytest.raises(IndexError):
        vf[500]
    with pytest.raises(IndexError):
        vf[np.array([1, 500])]


def test_float16_rows_are_returned_as_float32(tmp_path):
    x = np.random.default_rng(1).normal(size=(40, 8)).astype(np.float16)
    np.save(tmp_path / "v.npy", x)
    rows = VectorFile(str(tmp_path / "v.npy"))[np.array([5, 1])]
    assert rows.dtype == np.float32
    np.testing.assert_array_equal(rows, x[[5, 1]].astype(np.float32))


def test_a_file_truncated_after_opening_is_an_error_not_a_crash(stored):
    """What a memory map would answer with SIGBUS, a read answers with a BundleError."""
    path, x = stored
    vf = VectorFile(str(path))
    np.testing.assert_array_equal(vf[np.array([499])], x[[499]])
    os.truncate(path, os.path.getsize(path) // 2)
    np.testing.assert_array_equal(vf[np.array([1])], x[[1]])  # what is still there reads
    with pytest.raises(BundleError, match="truncated or overwritten"):
        vf[np.array([0, 499])]
    with pytest.raises(BundleError, match="truncated"):
        vf[400:]


def test_a_file_moved_or_deleted_after_opening_is_still_read(stored):
    path, x = stored
    vf = VectorFile(str(path))
    os.unlink(path)
    np.testing.assert_array_equal(vf[np.array([7, 8])], x[[7, 8]])


@pytest.mark.parametrize("damage, message", [
    (lambda p: os.truncate(p, os.path.getsize(p) + 16), "bytes where its header says"),
    (lambda p: os.truncate(p, os.path.getsize(p) - 4), "bytes where its header says"),
    (lambda p: np.save(p, np.zeros((3, 4, 2), np.float32)), "2-D array"),
    (lambda p: np.save(p, np.zeros((3, 4), np.int64)), "float32 or float16"),
    (lambda p: os.truncate(p, 0) or os.truncate(p, 16), "cannot read the vectors file"),
])
def test_damaged_files_are_refused_at_open(stored, damage, message):
    path, _ = stored
    damage(str(path))
    with pytest.raises(BundleError, match=message):
        VectorFile(str(path))


def test_open_vectors_reads_small_files_into_memory_and_large_ones_from_the_file(stored):
    path, x = stored
    in_memory = open_vectors(str(path), "auto", available=10**9)
    assert isinstance(in_memory, np.ndarray)
    np.testing.assert_array_equal(in_memory, x)
    assert isinstance(open_vectors(str(path), "auto", available=x.nbytes), VectorFile)
    assert isinstance(open_vectors(str(path), "file"), VectorFile)
    assert isinstance(open_vectors(str(path), "memory", available=1), np.ndarray)
    with pytest.raises(InvalidArgumentError, match="memory, file"):
        open_vectors(str(path), "mmap")


def test_a_bundle_searches_the_same_with_its_vectors_in_memory_or_in_the_file(tmp_path):
    from search.query import ranking
    from search.query.searcher import Searcher
    from search.store import writer
    from search.store.bundle import Bundle
    from search.store.manifest import Manifest
    from search.store.metadata import ImageRecord

    x = ranking.normalize(np.random.default_rng(2).normal(size=(1200, 16)))
    records = [ImageRecord(i, f"f{i % 4}/{i}.jpg", 1, 0, f"{i:064x}") for i in range(1200)]
    writer.commit(str(tmp_path), Manifest(model={"name": "m", "dim": 16}, dim=16, root="/p"), records, x,
                  index_type="IVF8,PQ8x4fs")
    pages = []
    for mode in ("memory", "file"):
        searcher = Searcher(Bundle.open(str(tmp_path), use_gpu=False, vectors=mode))
        pages.append([searcher.search_vector(x[i], k=20, path_prefix="f1" if i % 2 else None) for i in range(10)])
    assert pages[0] == pages[1]
