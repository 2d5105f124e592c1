"""A bundle generation with an on-disk index, built without Ray (the same tasks, run in this process).

Seeded clustered vectors with synthetic metadata, as Parquet parts like a
``--ray`` build's shards, committed through ``indexer.cluster.sharded``; the
bundle opens through ``Bundle.open`` and searches through ``Searcher`` and
the service like any other, ranking like an exact scan of its own vectors.
"""

import numpy as np
import pytest

from benchmarks.bench_scale import write_parts
from benchmarks.datasets import ClusteredVectors
from indexer.cli import main as indexer_main
from indexer.cluster.sharded import Piece, Tasks, commit_ondisk, parquet_rows
from indexer.errors import BuildError
from search.index import ondisk, tuning
from search.query.filters import Filters
from search.query.searcher import Searcher
from search.store.bundle import Bundle, IdRange
from search.store.manifest import Manifest
from search.store.vectors import VectorFile
from web import ServeConfig, create_app

N = 2000


def build(bundle_dir, root, fingerprint, n=N, parts=3, first_id=0):
    source = ClusteredVectors(dim=fingerprint.dim, clusters=30)
    written = write_parts(bundle_dir.parent / f"parts-{n}", n, parts, source)
    written = [(path, ids + first_id) for path, ids in written]
    manifest = Manifest(model=fingerprint.to_dict(), dim=fingerprint.dim, root=str(root))
    ids = np.concatenate([i for _, i in written])
    pieces = [Piece(path, None, np.arange(i[0] - first_id, i[-1] - first_id + 1)) for path, i in written]
    return commit_ondisk(Tasks(), str(bundle_dir), manifest, ids, parquet_rows(written), pieces), source


@pytest.fixture(scope="module")
def built(tmp_path_factory, encoder):
    base = tmp_path_factory.mktemp("ondisk")
    (base / "photos").mkdir()
    manifest, source = build(base / "bundle", base / "photos", encoder.fingerprint)
    return base, manifest, source


def exact_top(bundle, queries, k=10):
    scores = np.asarray(bundle.vectors) @ queries.T
    return np.argsort(-scores, axis=0, kind="stable")[:k].T


def test_bundle_opens_mapped_and_searches_like_an_exact_scan(built):
    base, manifest, source = built
    assert manifest.count == N and manifest.index_type.startswith("IVF") and manifest.index_params["target_met"]
    bundle = Bundle.open(str(base / "bundle"), use_gpu=False)
    # nothing per image in memory: ids are a range, vectors are read from their float16 file, the lists mapped
    assert isinstance(bundle.ids, IdRange) and isinstance(bundle.vectors, VectorFile)
    assert bundle.vectors.stored_dtype == np.float16 and bundle.index.memory_mapped
    queries = source.sample(100, stream=1)
    searcher = Searcher(bundle)
    found = np.array([[r.id for r in searcher.search_vector(q, k=10).results] for q in queries])
    assert tuning.recall(found, exact_top(bundle, queries)) >= 0.95
    page = searcher.search_id(7, k=10, relevance=True)  # as the service asks
    assert 7 not in [r.id for r in page.results] and page.total == N - 1
    assert [r.score for r in page.results] == sorted((r.score for r in page.results), reverse=True)
    assert page.results[0].score >= page.weak_below and 1 <= page.strong_total <= N - 1


def test_metadata_is_bulk_loaded_with_its_indexes(built):
    base, _, source = built
    bundle = Bundle.open(str(base / "bundle"), use_gpu=False)
    record = bundle.record(1234)
    assert record.path == "0000/01/img_000001234.jpg" and record.width == 4000 and len(record.sha256) == 64
    names = set(bundle.metadata.json_rows("SELECT json_group_array(name) FROM sqlite_master WHERE type = 'index'"))
    assert {"images_time", "images_camera", "images_folder", "images_file_type"} <= names
    page = Searcher(bundle).search_vector(source.sample(1, stream=2)[0], k=5, filters=Filters(camera="Pixel 7"))
    assert page.results and all(r.camera == "Pixel 7" for r in page.results)


def test_the_service_serves_it(built, encoder):
    base, _, _ = built
    bundle = Bundle.open(str(base / "bundle"), use_gpu=False)
    app = create_app(ServeConfig(index=str(base / "bundle"), photos=str(base / "photos"), device="cpu",
                                 warmup=False), searcher=Searcher(bundle, encoder))
    response = app.test_client().post("/api/search", json={"id": 42, "k": 10})
    assert response.status_code == 200, response.get_json()
    ids = [r["id"] for r in response.get_json()["results"]]
    assert ids == [r.id for r in Searcher(bundle).search_id(42, k=10).results] and 42 not in ids


def test_a_small_collection_and_the_hnsw_quantiser(tmp_path, encoder, monkeypatch):
    manifest, source = build(tmp_path / "small", tmp_path, encoder.fingerprint, n=ondisk.MIN_VECTORS, parts=2)
    assert manifest.count == ondisk.MIN_VECTORS
    with pytest.raises(BuildError, match=f"at least {ondisk.MIN_VECTORS}"):
        build(tmp_path / "tiny", tmp_path, encoder.fingerprint, n=ondisk.MIN_VECTORS - 1)
    assert "_HNSW32" in ondisk.choose(10_000_000, 512)
    monkeypatch.setattr(ondisk, "HNSW_MIN_LISTS", 16)  # the graph over the centroids, at a size a test can build
    manifest, source = build(tmp_path / "graph", tmp_path, encoder.fingerprint, n=2000, first_id=500)
    assert "_HNSW32" in manifest.index_type
    bundle = Bundle.open(str(tmp_path / "graph"), use_gpu=False)
    queries = source.sample(50, stream=1)
    found = np.array([[r.id - 500 for r in Searcher(bundle).search_vector(q, k=10).results] for q in queries])
    assert tuning.recall(found, exact_top(bundle, queries)) >= 0.95


def test_bad_index_type_settings(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    assert indexer_main(["build", str(tmp_path / "photos"), "--index-type", "ondisk"]) == 1
    assert "--index-type ondisk is built by Ray tasks: add --ray" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        indexer_main(["build", str(tmp_path / "photos"), "--index-type", "mmap"])
    assert "choose from 'auto', 'ondisk'" in capsys.readouterr().err


def test_an_id_range_indexes_like_its_array():
    ids, array = IdRange(500, 40), np.arange(500, 540)
    for key in (slice(None), slice(3, 9), slice(None, None, -2), slice(-5, None), 0, -1, np.array([0, 39, 7])):
        np.testing.assert_array_equal(ids[key], array[key])
    np.testing.assert_array_equal(np.asarray(ids), array)
    with pytest.raises(IndexError):
        ids[np.array([40])]
