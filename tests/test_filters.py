"""Filters on metadata, inside the search: against exact search restricted to the matching rows.

The bundle holds seeded vectors with metadata that varies in folder, camera,
file type and date (some photos without EXIF time, so their mtime counts).
A filtered query must return what exact search over the matching rows
returns, fill its page when that many match, and count them all.
"""

import sqlite3
import tracemalloc

import numpy as np
import pytest

from search.errors import InvalidArgumentError
from search.query import ranking, searcher as searcher_module
from search.query.filters import Filters
from search.query.searcher import Searcher
from search.store import writer
from search.store.bundle import Bundle
from search.store.manifest import Manifest
from search.store.metadata import FORMAT, ImageRecord, MetadataReader, time_key_of, write_metadata

N = 1500
DIM = 16
FOLDERS = ("2023/spring", "2023/summer", "2024", "")
CAMERAS = ("Canon EOS R5", "iPhone 15", None)
EXTS = ("jpg", "JPEG", "png", "heic", "tif")
DAY = 86_400 * 10**9


def record(n, image_id):
    folder = FOLDERS[n % 4]
    name = f"img{n:04d}.{EXTS[n % 5]}"
    taken = None if n % 3 == 0 else f"202{3 + n % 2}-{1 + n % 12:02d}-{1 + n % 28:02d}T12:00:00"
    return ImageRecord(image_id, f"{folder}/{name}" if folder else name, 1000 + n, (1_700_000_000 + n * 3600) * 10**9,
                       f"{n:064x}", 40 + n % 7, 30, taken, CAMERAS[n % 3], 1, 1000 + n, 5)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    rng = np.random.default_rng(11)
    vectors = ranking.normalize(rng.normal(size=(N, DIM)))
    ids = np.arange(N, dtype=np.int64) * 3 + 1  # not dense: rows are looked up
    records = [record(n, int(i)) for n, i in enumerate(ids)]
    path = tmp_path_factory.mktemp("filters")
    manifest = Manifest(model={"name": "synthetic", "pretrained": None, "dim": DIM}, dim=DIM, root="/photos")
    writer.commit(str(path), manifest, records, vectors, index_type="IVF16,PQ8x4fs")
    return str(path), ids, vectors, records


@pytest.fixture(scope="module")
def searcher(stored):
    return Searcher(Bundle.open(stored[0], use_gpu=False))


def matches(r, f):
    """The filter's meaning, written out in Python over one record."""
    key = time_key_of(r.taken_at, r.mtime_ns)
    return ((f.path_prefix is None or r.path.startswith(f.path_prefix.strip("/") + "/"))
            and (f.taken_after is None or key >= f.taken_after)
            and (f.taken_before is None or key[:len(f.taken_before)] <= f.taken_before)
            and (not f.camera or r.camera in f.camera)
            and (not f.file_type or r.file_type in f.file_type))


def exact(stored, query, f, k, offset=0, min_score=None):
    _, ids, vectors, records = stored
    scores = vectors @ query
    keep = np.array([matches(r, f) for r in records])
    if min_score is not None:
        keep &= scores >= min_score
    order = np.lexsort((ids, -scores))
    order = order[keep[order]]
    return ids[order][offset:offset + k].tolist(), scores[order][offset:offset + k], int(keep.sum())


FILTERS = [
    Filters(path_prefix="2023"),
    Filters(path_prefix="2023/summer"),
    Filters(camera="iPhone 15"),
    Filters(camera=["Canon EOS R5", "iPhone 15"]),
    Filters(file_type="jpeg"),
    Filters(file_type=["PNG", "heic"]),
    Filters(taken_after="2024-01-01"),
    Filters(taken_before="2023-06-30"),
    Filters(taken_after="2023-03-01", taken_before="2023-03-31T23:00:00"),
    Filters(path_prefix="2024", camera="Canon EOS R5", file_type="jpeg", taken_after="2024-02-01"),
    Filters(camera="no such camera"),
]


@pytest.mark.parametrize("f", FILTERS, ids=repr)
def test_filtered_search_equals_exact_search_over_the_matching_rows(stored, searcher, f):
    rng = np.random.default_rng(3)
    for _ in range(3):
        query = ranking.normalize(rng.normal(size=DIM))
        for k, offset, min_score in ((24, 0, None), (10, 15, None), (50, 0, 0.2)):
            page = searcher.search_vector(query, k=k, offset=offset, min_score=min_score, filters=f)
            ids, scores, total = exact(stored, query, f, k, offset, min_score)
            assert [r.id for r in page.results] == ids
            np.testing.assert_allclose([r.score for r in page.results], scores, rtol=1e-5, atol=1e-6)
            assert page.total == total
            assert len(page.results) == min(k, max(0, total - offset))  # a full page when that many match


def test_the_filter_applies_before_ranking_not_after(stored, searcher):
    """A filter keeping 2% of the photos still fills a page of 24 (a post-filter would return a handful)."""
    f = Filters(path_prefix="2023/summer", camera="iPhone 15", file_type="heic")
    total = sum(matches(r, f) for r in stored[3])
    assert 24 < total < N // 20
    page = searcher.search_vector(np.ones(DIM), k=24, filters=f)
    assert len(page.results) == 24 and page.total == total
    assert all(r.path.startswith("2023/summer/") and r.camera == "iPhone 15" for r in page.results)


def test_large_subsets_go_through_the_index_with_a_selector(stored, searcher, monkeypatch):
    """Past EXACT_SUBSET_MAX the index itself searches only the selected ids; recall stays near exact."""
    monkeypatch.setattr(searcher_module, "EXACT_SUBSET_MAX", 100)
    calls = []
    real = searcher_module.Searcher._selected
    monkeypatch.setattr(searcher_module.Searcher, "_selected",
                        lambda self, *a: calls.append(1) or real(self, *a))
    f = Filters(path_prefix="2023")
    rng = np.random.default_rng(5)
    found = 0
    for _ in range(20):
        query = ranking.normalize(rng.normal(size=DIM))
        page = searcher.search_vector(query, k=10, filters=f)
        ids, _, total = exact(stored, query, f, 10)
        assert page.total == total and all(r.path.startswith("2023/") for r in page.results)
        found += len(set(ids) & {r.id for r in page.results})
    assert len(calls) == 20
    assert found / 200 >= 0.9


def test_a_selector_that_finds_too_few_falls_back_to_exact_search(stored, searcher, monkeypatch):
    monkeypatch.setattr(searcher_module, "EXACT_SUBSET_MAX", 0)
    monkeypatch.setattr(searcher_module.ann, "search",
                        lambda index, q, k, *a: (np.zeros((1, k)), np.full((1, k), -1, np.int64)))
    f = Filters(camera="Canon EOS R5")
    query = ranking.normalize(np.arange(DIM, dtype=np.float32))
    page = searcher.search_vector(query, k=24, filters=f)
    assert [r.id for r in page.results] == exact(stored, query, f, 24)[0]


def test_scoring_a_subset_copies_a_chunk_at_a_time():
    """Scoring 100k rows of 128 dimensions (51 MB) holds a chunk of them at a time, not a copy of all."""
    vectors = ranking.normalize(np.random.default_rng(0).normal(size=(100_000, 128)))
    rows = np.arange(0, 100_000, dtype=np.int64)[::-1]
    query = vectors[0]
    tracemalloc.start()
    scores = ranking.exact_scores(vectors, rows, query)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_allclose(scores, vectors[rows] @ query, rtol=1e-5)
    assert peak < 4 * ranking.SCORE_CHUNK * 128 * 4


@pytest.mark.parametrize("kwargs, message", [
    ({"taken_after": "June 2024"}, "ISO date"),
    ({"taken_before": 2024}, "ISO date"),
    ({"camera": ""}, "non-empty string"),
    ({"file_type": ["jpeg", 3]}, "non-empty string"),
    ({"camera": ["x"] * 65}, "at most 64"),
    ({"path_prefix": 5}, "path_prefix must be a string"),
])
def test_bad_filters_are_refused_with_what_is_allowed(kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        Filters(**kwargs)


def test_metadata_derives_and_indexes_folder_type_and_time(stored):
    reader = Bundle.open(stored[0], use_gpu=False).metadata
    con = sqlite3.connect(reader.uri, uri=True)
    assert con.execute("PRAGMA user_version").fetchone()[0] == FORMAT
    indexes = {row[1] for row in con.execute("PRAGMA index_list(images)")}
    assert {"images_time", "images_folder", "images_camera", "images_file_type"} <= indexes
    rows = con.execute("SELECT path, folder, file_type, time_key FROM images").fetchall()
    by_path = {r.path: r for r in stored[3]}
    for path, folder, file_type, key in rows:
        r = by_path[path]
        assert (folder, file_type, key) == (r.folder, r.file_type, r.time_key)
    assert {r.file_type for r in stored[3]} == {"jpeg", "png", "heic", "tiff"}
    plan = " ".join(str(row) for row in con.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM images WHERE time_key < ? ORDER BY time_key DESC, id DESC LIMIT 50",
        ("2024-01-01",)))
    assert "images_time" in plan and "TEMP B-TREE" not in plan  # keyset order from the index, no sort


def test_a_format_1_database_is_upgraded_into_a_copy(tmp_path):
    """Bundles written before format 2 open: their rows come back, without file identity, and filter."""
    old = tmp_path / "metadata.sqlite"
    con = sqlite3.connect(old)
    con.executescript("""CREATE TABLE images (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL, width INTEGER, height INTEGER, taken_at TEXT, camera TEXT);
        CREATE INDEX images_sha256 ON images (sha256);""")
    con.executemany("INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(1, "a/x.jpg", 5, DAY, "a" * 64, 4, 3, "2024-05-01T10:00:00", "Canon"),
                     (2, "b.png", 6, 2 * DAY, "b" * 64, None, None, None, None)])
    con.commit()
    con.close()
    reader = MetadataReader(str(old))
    assert reader.all() == [ImageRecord(1, "a/x.jpg", 5, DAY, "a" * 64, 4, 3, "2024-05-01T10:00:00", "Canon"),
                            ImageRecord(2, "b.png", 6, 2 * DAY, "b" * 64)]
    assert Filters(file_type="png").matching_ids(reader).tolist() == [2]
    assert Filters(taken_before="1970-01-03").matching_ids(reader).tolist() == [2]  # the mtime counts
    copy = reader.uri.split("?")[0][len("file:"):]
    reader.close()
    assert not __import__("os").path.exists(copy)
    assert sqlite3.connect(old).execute("PRAGMA user_version").fetchone()[0] == 0  # the bundle is untouched


def test_write_metadata_round_trips_file_identity(tmp_path):
    records = [ImageRecord(3, "x.jpg", 1, 2, "c" * 64, dev=2049, ino=2**40, ctime_ns=7)]
    write_metadata(str(tmp_path / "m.sqlite"), records)
    assert MetadataReader(str(tmp_path / "m.sqlite")).get_many([3]) == {3: records[0]}
