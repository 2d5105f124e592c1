"""The relevance cut on seeded synthetic scores, and collapsing copies on a page.

Scores imitate a query over a collection: a normal background of unrelated
photos and, when the query has matches, a cluster of relevant ones above it.
The cut must keep (nearly) the whole cluster and (nearly) none of the
background, whatever the background's centre and width, and claim few
matches for a query that has none.
"""

import numpy as np
import pytest

from search.query import ranking, searcher as searcher_module
from search.query.collapse import collapse_groups
from search.query.relevance import sample_positions, weak_below
from search.query.searcher import Searcher
from search.store import writer
from search.store.bundle import Bundle
from search.store.manifest import Manifest
from search.store.metadata import ImageRecord

N, DIM, CLUSTER = 3000, 16, 30


def scores(seed, n=20_000, centre=0.2, width=0.03, relevant=40, lift=5.0):
    """``(all scores, mask of the relevant ones)``: the relevant cluster ``lift`` widths above the centre."""
    rng = np.random.default_rng(seed)
    background = rng.normal(centre, width, n - relevant)
    cluster = rng.normal(centre + lift * width, width / 2, relevant)
    return np.concatenate([cluster, background]), np.arange(n) < relevant


@pytest.mark.parametrize("centre, width", [(0.2, 0.03), (0.05, 0.01), (0.6, 0.08)])
@pytest.mark.parametrize("seed", range(5))
def test_the_cut_keeps_the_relevant_cluster_and_folds_the_background(seed, centre, width):
    values, relevant = scores(seed, centre=centre, width=width)
    cut = weak_below(values.max(), values)
    strong = values >= cut
    assert strong[relevant].mean() >= 0.95  # recall of the planted cluster
    assert strong[~relevant].sum() <= 0.005 * (~relevant).sum()  # at most 0.5% of unrelated photos
    sampled = weak_below(values.max(), values[sample_positions(len(values))])
    assert abs(sampled - cut) < width / 4  # a sample of the background gives nearly the same cut


@pytest.mark.parametrize("seed", range(5))
def test_a_query_without_matches_claims_few(seed):
    values, _ = scores(seed, relevant=0)
    strong = values >= weak_below(values.max(), values)
    assert 1 <= strong.sum() <= 0.005 * len(values)


def test_a_cluster_far_above_keeps_its_whole_spread():
    """Matches spread over a wide band far above the background all stay strong: the gap is relative."""
    rng = np.random.default_rng(7)
    cluster = np.linspace(0.30, 0.45, 30)
    values = np.concatenate([cluster, rng.normal(0.15, 0.02, 5000)])
    assert np.all(cluster >= weak_below(values.max(), values))


def test_the_best_is_never_weak_and_the_cut_is_a_cosine():
    assert weak_below(0.3, [0.3, 0.3, 0.3]) == pytest.approx(0.3)  # all alike: all strong
    assert weak_below(0.1, np.random.default_rng(0).normal(0.5, 0.1, 100)) == pytest.approx(0.1)
    assert weak_below(1.0000001, [1.0000001]) == 1.0
    assert weak_below(0.4, []) == pytest.approx(0.4)


def test_sample_positions_are_spread_and_bounded():
    assert sample_positions(10).tolist() == list(range(10))
    positions = sample_positions(1_000_000, 4096)
    assert len(positions) == 4096 and positions[0] == 0 and positions[-1] == 999_999
    assert np.all(np.diff(positions) > 0)


def test_collapse_joins_exact_and_near_copies_in_page_order():
    rng = np.random.default_rng(0)
    base = ranking.normalize(rng.normal(size=(5, 32)))
    near = ranking.normalize(base[1] + 0.05 * rng.normal(size=32))  # cosine about 0.96
    vectors = np.stack([base[0], base[1], base[2], near, base[3], base[4]])
    hashes = ["a", "b", "c", "d", "a", "e"]  # position 4 is an exact copy of 0 with another vector
    assert float(vectors[1] @ vectors[3]) >= 0.95
    assert collapse_groups(vectors, hashes) == [[0, 4], [1, 3], [2], [5]]
    assert collapse_groups(vectors, hashes, threshold=0.999) == [[0, 4], [1], [2], [3], [5]]


def test_collapse_joins_chains_and_refuses_bad_thresholds():
    direction = np.array([1.0, 0.0])
    steps = [np.array([np.cos(a), np.sin(a)]) for a in (0.0, 0.25, 0.5)]  # 0.97 apart each, 0.88 end to end
    assert collapse_groups(np.stack(steps), ["x", "y", "z"]) == [[0, 1, 2]]
    assert collapse_groups(np.zeros((0, 2)), []) == []
    with pytest.raises(ValueError, match="from 0.5 to 1"):
        collapse_groups(np.stack([direction]), ["x"], threshold=0.2)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A bundle of 3,000 seeded vectors, 30 of them a tight cluster around ``direction``; ids not dense."""
    rng = np.random.default_rng(4)
    direction = ranking.normalize(rng.normal(size=DIM))
    vectors = rng.normal(size=(N, DIM))
    vectors[:CLUSTER] = direction * 20 + rng.normal(size=(CLUSTER, DIM))  # cosine about 0.98 to it
    vectors = ranking.normalize(vectors)
    ids = np.arange(N, dtype=np.int64) * 2 + 5
    records = [ImageRecord(int(i), f"{('a', 'b')[n % 2]}/p{n}.jpg", 1, 10**18, f"{n:064x}") for n, i in enumerate(ids)]
    path = tmp_path_factory.mktemp("planted")
    manifest = Manifest(model={"name": "synthetic", "pretrained": None, "dim": DIM}, dim=DIM, root="/photos")
    writer.commit(str(path), manifest, records, vectors, index_type="Flat")
    return Searcher(Bundle.open(str(path), use_gpu=False)), direction, ids, vectors


@pytest.mark.parametrize("window", [searcher_module.RELEVANCE_WINDOW, 5])  # 5: the cut lies past the candidates
@pytest.mark.parametrize("prefix", [None, "a"])
def test_the_searcher_cut_and_count_equal_brute_force(planted, monkeypatch, window, prefix):
    searcher, direction, ids, vectors = planted
    monkeypatch.setattr(searcher_module, "RELEVANCE_WINDOW", window)
    keep = np.arange(N) % 2 == 0 if prefix else np.ones(N, bool)
    for query, exclude in ((direction, None), (vectors[0], int(ids[0]))):
        page = (searcher.search_vector(query, k=3, path_prefix=prefix, relevance=True) if exclude is None else
                searcher.search_id(exclude, k=3, path_prefix=prefix, relevance=True))
        scores = vectors @ query
        matching = keep & (ids != exclude)
        expected = weak_below(scores[matching].max(), scores[keep][sample_positions(keep.sum())])
        assert page.weak_below == pytest.approx(expected, abs=1e-5)
        assert page.strong_total == int(np.sum(scores[matching] >= page.weak_below))
        planted_ids = set(ids[:CLUSTER][keep[:CLUSTER]].tolist()) - {exclude}
        strong_ids = set(ids[matching & (scores >= page.weak_below)].tolist())
        assert planted_ids <= strong_ids and len(strong_ids) <= len(planted_ids) + 3
