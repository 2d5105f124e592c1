"""The bundle on its own: synthetic vectors, no model, searched by vector and id through a Searcher."""

import json
import os
import re
import shutil
import threading
from dataclasses import asdict, replace

import numpy as np
import pytest

from indexer.cli import main as cli_main
from search.store import writer
from search.query import ranking
from search.query.searcher import Searcher
from search.store.bundle import Bundle
from search.errors import BundleError, BundleLockedError, InvalidArgumentError, UnknownIdError
from search.store.manifest import MANIFEST, Manifest, read_manifest, write_manifest
from search.store.metadata import ImageRecord

DIM = 16


def make_records(n, start_id=0):
    return [ImageRecord(start_id + i, f"{'a' if i % 2 else 'b'}/img{i:03d}.jpg", 100 + i, i, f"{i:064x}", 64, 48)
            for i in range(n)]


def write(path, n, seed=0, manifest=None):
    vectors = ranking.normalize(np.random.default_rng(seed).normal(size=(n, DIM)))
    manifest = manifest or Manifest(model={"name": "m", "pretrained": "t", "dim": DIM}, dim=DIM, root="/photos")
    return writer.commit(str(path), manifest, make_records(n), vectors), vectors


@pytest.fixture
def bundle(tmp_path):
    write(tmp_path, 200)
    return Bundle.open(tmp_path)


@pytest.fixture
def searcher(bundle):
    return Searcher(bundle)  # no encoder: vectors and ids only


def test_search_equals_brute_force(bundle, searcher):
    query = ranking.normalize(np.random.default_rng(1).normal(size=DIM))
    page = searcher.search_vector(query, k=25)
    scores, rows = ranking.brute_force(bundle.vectors, query, 25)
    assert [r.id for r in page.results] == bundle.ids[rows].tolist()
    np.testing.assert_allclose([r.score for r in page.results], scores, atol=1e-5)
    assert page.total == 200


def test_offset_pages_through_the_same_ranking(bundle, searcher):
    query = bundle.vector(3)
    full = [r.id for r in searcher.search_vector(query, k=40).results]
    pages = [r.id for off in (0, 10, 20, 30) for r in searcher.search_vector(query, k=10, offset=off).results]
    assert pages == full


def test_min_score_and_path_prefix(bundle, searcher):
    query = bundle.vector(4)
    page = searcher.search_vector(query, k=200, min_score=0.2)
    assert all(r.score >= 0.2 for r in page.results)
    assert page.total == int(np.sum(bundle.vectors @ query >= 0.2)) == len(page.results)
    page = searcher.search_vector(query, k=5, path_prefix="a/")
    assert page.total == 100 and all(r.path.startswith("a/") for r in page.results)
    assert searcher.search_vector(query, k=5, path_prefix="nowhere").total == 0


def test_more_like_this_leaves_the_query_image_out(searcher):
    page = searcher.search_id(5, k=5)
    assert 5 not in [r.id for r in page.results] and page.total == 199


@pytest.mark.parametrize("kwargs", [dict(k=0), dict(k=10_001), dict(k="3"), dict(k=True), dict(offset=-1)])
def test_bad_options(bundle, searcher, kwargs):
    with pytest.raises(InvalidArgumentError):
        searcher.search_vector(bundle.vector(0), **kwargs)


def test_wrong_dimension_and_unknown_id(bundle, searcher):
    with pytest.raises(InvalidArgumentError, match="dimension 16"):
        searcher.search_vector(np.ones(8))
    with pytest.raises(UnknownIdError):
        bundle.vector(10_000)
    with pytest.raises(UnknownIdError):
        bundle.record(-1)
    with pytest.raises(UnknownIdError):
        searcher.search_id(10_000)


@pytest.mark.parametrize("step", [1, 3])  # ids that run on (rows are offsets), ids with gaps (rows are searched)
def test_rows_of_ids_and_unknown_ids(tmp_path, step):
    n = 50
    vectors = ranking.normalize(np.random.default_rng(0).normal(size=(n, DIM)))
    records = [ImageRecord(7 + step * i, f"img{i}.jpg", 1, 1, f"{i:064x}") for i in range(n)]
    manifest = Manifest(model={"name": "m", "pretrained": "t", "dim": DIM}, dim=DIM, root="/photos")
    writer.commit(str(tmp_path), manifest, records, vectors)
    bundle = Bundle.open(tmp_path)
    assert bundle.rows_of([7 + step * 49, 7, 7 + step * 3]).tolist() == [49, 0, 3]
    np.testing.assert_array_equal(bundle.vector(7 + step * 5), vectors[5])
    assert Searcher(bundle).search_vector(vectors[9], k=1).results[0].id == 7 + step * 9
    unknown = [6, 7 + step * 50, -1] + ([8] if step > 1 else [])
    for image_id in unknown:
        with pytest.raises(UnknownIdError, match=f"unknown image id {image_id}"):
            bundle.rows_of([7, image_id])


def test_missing_bundle_says_how_to_build(tmp_path):
    with pytest.raises(BundleError, match="python -m indexer build"):
        Bundle.open(tmp_path)


def test_failed_commit_leaves_previous_generation(tmp_path, monkeypatch):
    first, vectors = write(tmp_path, 50)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "write_metadata", full_disk)
    with pytest.raises(OSError):
        write(tmp_path, 80, seed=1, manifest=first)
    bundle = Bundle.open(tmp_path)
    assert bundle.count == 50 and read_manifest(tmp_path).generation == first.generation
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]  # the half-written folder is gone
    np.testing.assert_array_equal(bundle.vectors, vectors)


def test_old_generations_are_pruned(tmp_path):
    manifest, _ = write(tmp_path, 5)
    for seed in range(3):
        manifest, _ = write(tmp_path, 5, seed=seed, manifest=manifest)
    gens = sorted(n for n in os.listdir(tmp_path) if n.startswith("gen-"))
    assert gens == ["gen-000003", "gen-000004"]


def test_second_writer_is_refused(tmp_path):
    with writer.bundle_lock(tmp_path):
        with pytest.raises(BundleLockedError, match="another build"):
            with writer.bundle_lock(tmp_path):
                pass
    with writer.bundle_lock(tmp_path):  # released
        pass


def _with(manifest, **changes):
    data = json.loads(json.dumps(asdict(manifest)))
    data.update(changes)
    return data


BAD_MANIFESTS = {  # the audit's cases, each valid JSON: (manifest, what the one line names)
    "only-a-version": (lambda m: {"format_version": 1}, "model: Field required; dim: Field required"),
    "a-list": (lambda m: [], "a JSON object was expected, got list"),
    "generation-as-text": (lambda m: _with(m, generation="1"), "generation: Input should be a valid integer"),
    "empty-model": (lambda m: _with(m, model={}), "model.name: Field required; model.dim: Field required"),
    "model-as-text": (lambda m: _with(m, model="m"), "model: Input should be a valid dictionary"),
    "count-negative": (lambda m: _with(m, count=-1), "count: Input should be greater than or equal to 0"),
    "dims-disagree": (lambda m: _with(m, dim=DIM + 1), "the model's dim 16 differs from the bundle's dim 17"),
    "null": (lambda m: None, "got NoneType"),
}


@pytest.mark.parametrize("name", BAD_MANIFESTS)
def test_a_wrong_manifest_is_one_clear_error(tmp_path, capsys, name):
    make, words = BAD_MANIFESTS[name]
    manifest, _ = write(tmp_path, 5)
    (tmp_path / MANIFEST).write_text(json.dumps(make(manifest)))
    with pytest.raises(BundleError, match=re.escape(words)):
        Bundle.open(tmp_path)
    assert cli_main(["info", str(tmp_path)]) == 1  # python -m indexer info
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1 and words in err


def test_a_generation_whose_metadata_disagrees_with_its_manifest_is_refused(tmp_path):
    manifest, _ = write(tmp_path, 5)
    write_manifest(tmp_path, replace(manifest, count=4))
    with pytest.raises(BundleError, match="inconsistent"):
        Bundle.open(tmp_path)


def test_a_moved_or_deleted_bundle_still_answers_from_its_open_files(tmp_path):
    write(tmp_path / "a", 20)
    bundle = Bundle.open(tmp_path / "a", vectors="file")
    expected = bundle.metadata.all(), bundle.vectors[:]
    os.rename(tmp_path / "a", tmp_path / "b")
    results = []

    def read():  # a new thread needs a connection of its own: the file can no longer be opened by name
        results.append((bundle.metadata.all(), bundle.vectors[:]))

    shutil.rmtree(tmp_path / "b")
    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for records, vectors in results:
        assert records == expected[0]
        np.testing.assert_array_equal(vectors, expected[1])
    bundle.check()  # still whole


@pytest.mark.parametrize("name", ["metadata.sqlite", "ids.npy", "vectors.npy", "index.faiss"])
def test_a_generation_file_of_garbage_is_one_clear_error(tmp_path, capsys, name):
    manifest, _ = write(tmp_path, 5)
    (tmp_path / manifest.generation_dir / name).write_bytes(b"\x00garbage" * 200)
    with pytest.raises(BundleError, match="damaged|cannot read|inconsistent"):
        Bundle.open(tmp_path)
    assert cli_main(["info", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
