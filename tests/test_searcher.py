"""The one query path, against exact brute force: paging, totals, filters, exclusions, ties, parts.

The bundle holds seeded vectors in the tiny model's space (so text and image
terms run the real tiny encoder), with ids that do not run on (rows are
searched, not offsets) and a few repeated vectors (ties, broken by id).
"""

import faiss
import numpy as np
import pytest

from search.errors import ImageTooLargeError, InvalidArgumentError, ModelMismatchError, UnknownIdError
from search.index import ann
from search.query import ranking
from search.query.filters import Filters
from search.query.searcher import Searcher
from search.query.terms import QueryKind, QueryTerm
from search.store import writer
from search.store.bundle import Bundle
from search.store.manifest import Manifest
from search.store.metadata import ImageRecord
from tests.photos import make_image

N = 300
FOLDERS = ("a", "a/x", "b")


@pytest.fixture(scope="module")
def stored(tmp_path_factory, encoder):
    rng = np.random.default_rng(7)
    vectors = ranking.normalize(rng.normal(size=(N, encoder.dim)))
    vectors[10:13] = vectors[50]  # ties: equal scores for every query
    ids = np.arange(N, dtype=np.int64) * 2 + 5
    records = [ImageRecord(int(i), f"{FOLDERS[n % 3]}/img{n:03d}.jpg", 1, 0, f"{n:064x}", 64, 48)
               for n, i in enumerate(ids)]
    path = tmp_path_factory.mktemp("searcher")
    manifest = Manifest(model=encoder.fingerprint.to_dict(), dim=encoder.dim, root="/photos")
    writer.commit(str(path), manifest, records, vectors)
    return str(path), ids, vectors, [r.path for r in records]


@pytest.fixture(scope="module")
def bundle(stored):
    return Bundle.open(stored[0], use_gpu=False)


@pytest.fixture(scope="module")
def searcher(bundle, encoder):
    return Searcher(bundle, encoder)


def brute_force_page(stored, query, k, offset=0, min_score=None, folder=None, exclude=()):
    """``(ids, scores, total)`` computed from scratch over every stored vector."""
    _, ids, vectors, paths = stored
    scores = vectors @ query
    match = np.ones(N, bool) if folder is None else np.array([p.startswith(folder + "/") for p in paths])
    if min_score is not None:
        match &= scores >= min_score
    total = int(match.sum()) - sum(1 for i in exclude if match[np.searchsorted(ids, i)])
    match &= ~np.isin(ids, exclude)
    order = sorted(np.flatnonzero(match), key=lambda r: (-scores[r], ids[r]))[offset:offset + k]
    return ids[order].tolist(), scores[order], total


@pytest.mark.parametrize("folder", [None, "a", "a/x", "b", "nowhere"])
@pytest.mark.parametrize("k, offset, min_score", [(10, 0, None), (7, 5, None), (300, 0, 0.1), (20, 290, None),
                                                  (5, 0, 0.99)])
@pytest.mark.parametrize("by_id", [False, True])
def test_pages_and_totals_equal_brute_force(searcher, stored, folder, k, offset, min_score, by_id):
    _, ids, vectors, _ = stored
    if by_id:  # "more like this" of an image with two others of the same vector
        page = searcher.search_id(int(ids[11]), k=k, offset=offset, min_score=min_score, path_prefix=folder)
        query, exclude = vectors[11], [int(ids[11])]
    else:
        query = ranking.normalize(np.random.default_rng(k + offset).normal(size=vectors.shape[1]))
        page = searcher.search_vector(query, k=k, offset=offset, min_score=min_score, path_prefix=folder)
        exclude = []
    want_ids, want_scores, total = brute_force_page(stored, query, k, offset, min_score, folder, exclude)
    assert [r.id for r in page.results] == want_ids  # ties too: by lower id
    np.testing.assert_allclose([r.score for r in page.results], want_scores, atol=1e-5)
    assert page.total == total


def test_ties_rank_by_id(searcher, stored):
    _, ids, vectors, _ = stored
    page = searcher.search_vector(vectors[50], k=4)
    assert [r.id for r in page.results] == [int(i) for i in ids[[10, 11, 12, 50]]]


def test_candidates_of_minus_one_are_dropped_and_the_rest_scored_exactly(bundle, encoder, stored):
    """An IVF index scanning one list returns fewer hits than asked, padded with -1 (faiss's convention)."""
    _, ids, vectors, _ = stored
    quantizer = faiss.IndexFlatIP(vectors.shape[1])
    ivf = faiss.IndexIVFFlat(quantizer, vectors.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    ivf.train(vectors)
    ivf.add_with_ids(vectors, ids)
    one_list = faiss.SearchParametersIVF(nprobe=1)
    searcher = Searcher(bundle, encoder, search_index=lambda q, count: ivf.search(q, count, params=one_list))
    query = vectors[100]
    _, found = ivf.search(query[None], ann.candidate_count(bundle.index, 200), params=one_list)
    assert np.any(found[0] < 0)
    hits = found[0][found[0] >= 0]
    page = searcher.search_vector(query, k=200)
    rows = np.searchsorted(ids, hits)
    scores = vectors[rows] @ query
    order = np.lexsort((hits, -scores))
    assert [r.id for r in page.results] == hits[order].tolist()
    np.testing.assert_allclose([r.score for r in page.results], scores[order], atol=1e-6)
    assert page.total == N


def test_texts_of_a_query_go_to_the_text_part_in_one_call(bundle, encoder):
    calls = []

    def encode_texts(texts):  # the encoder's own call, recorded
        calls.append(list(texts))
        return encoder.encode_texts(texts)

    searcher = Searcher(bundle, encoder, encode_texts=encode_texts)
    image = make_image(3)
    terms = [QueryTerm(QueryKind.TEXT, "beach", 2.0), QueryTerm(QueryKind.IMAGE, image),
             QueryTerm(QueryKind.TEXT, "people", -0.5), QueryTerm(QueryKind.ID, int(bundle.ids[4]), 0.75)]
    page = searcher.search(terms, k=15)
    assert calls == [["beach", "people"]]
    text = encoder.encode_texts(["beach", "people"])
    by_hand = 2.0 * text[0] + encoder.embed_image(image) - 0.5 * text[1] + 0.75 * bundle.vector(int(bundle.ids[4]))
    by_hand /= np.linalg.norm(by_hand)
    scores, rows = ranking.brute_force(bundle.vectors, by_hand, 15)
    np.testing.assert_allclose([r.score for r in page.results], scores, atol=1e-5)
    assert page.total == N  # a combined query with an id leaves nothing out


def test_a_text_query_is_the_encoders_vector(searcher, bundle, encoder):
    page = searcher.search_text("a red square", k=10)
    scores, rows = ranking.brute_force(bundle.vectors, encoder.encode_texts(["a red square"])[0], 10)
    assert [r.id for r in page.results] == bundle.ids[rows].tolist()
    np.testing.assert_allclose([r.score for r in page.results], scores, atol=1e-5)


def test_the_image_part_and_max_pixels(bundle, encoder):
    sources = []
    searcher = Searcher(bundle, encoder, encode_image=lambda s: sources.append(s) or encoder.embed_image(s))
    image = make_image(5)
    searcher.search_image(image, k=3)
    assert sources == [image]
    with pytest.raises(ImageTooLargeError):  # the default part applies the searcher's pixel limit
        Searcher(bundle, encoder, max_pixels=100).search_image(image, k=3)


def test_deduplicate_drops_near_copies_and_keeps_the_total(searcher, stored):
    _, ids, vectors, _ = stored
    plain = searcher.search_vector(vectors[50], k=8)
    page = searcher.search_vector(vectors[50], k=8, deduplicate=True)
    keep = ranking.deduplicate(vectors[np.searchsorted(ids, [r.id for r in plain.results])])
    assert [r.id for r in page.results] == [plain.results[i].id for i in keep]
    assert len(page.results) == len(plain.results) - 3  # the three copies of vector 50
    assert page.total == plain.total
    assert set(plain.seconds) == {"embed", "search"} and set(page.seconds) == {"embed", "search", "deduplicate"}
    assert all(s >= 0 for s in page.seconds.values())


def test_filters_object_and_keyword(searcher, stored):
    query = stored[2][0]
    by_keyword = searcher.search_vector(query, k=10, path_prefix="a/x")
    by_filters = searcher.search_vector(query, k=10, filters=Filters(path_prefix="a/x"))
    assert by_keyword == by_filters and by_keyword.total == N // 3
    assert searcher.search_vector(query, k=10, path_prefix="/").total == N  # the whole tree
    with pytest.raises(InvalidArgumentError, match="path_prefix once"):
        searcher.search_vector(query, filters=Filters(path_prefix="a"), path_prefix="b")
    with pytest.raises(InvalidArgumentError, match="path_prefix must be a string"):
        Filters(path_prefix=3)


def test_bad_queries(searcher, bundle):
    with pytest.raises(InvalidArgumentError, match="at least one term"):
        searcher.search([])
    with pytest.raises(InvalidArgumentError, match="non-empty string"):
        searcher.search_text("  ")
    with pytest.raises(InvalidArgumentError, match="cancel out"):
        searcher.search([QueryTerm(QueryKind.ID, int(bundle.ids[1])), QueryTerm(QueryKind.ID, int(bundle.ids[1]), -1)])
    with pytest.raises(InvalidArgumentError, match="zero or not finite"):
        searcher.search_vector(np.zeros(bundle.dim))
    with pytest.raises(UnknownIdError):
        searcher.search_id(6)  # ids run 5, 7, 9...
    with pytest.raises(InvalidArgumentError, match="unknown query kind 'sound'.*text, image, id, embedding"):
        QueryTerm("sound", b"")


def test_without_an_encoder_only_vectors_and_ids(bundle, stored):
    searcher = Searcher(bundle)
    assert searcher.search_id(int(stored[1][0]), k=3).results
    for search in (searcher.search_text, searcher.search_image):
        with pytest.raises(InvalidArgumentError, match="no encoder"):
            search("a dog")


def test_an_encoder_of_another_space_is_refused(tmp_path, encoder):
    manifest = Manifest(model={"name": "other", "pretrained": "t", "dim": encoder.dim}, dim=encoder.dim, root="/")
    writer.commit(str(tmp_path), manifest, [ImageRecord(0, "a.jpg", 1, 0, "0" * 64)], np.eye(1, encoder.dim))
    with pytest.raises(ModelMismatchError, match="built with other"):
        Searcher(Bundle.open(tmp_path, use_gpu=False), encoder)
