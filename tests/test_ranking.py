import numpy as np
import pytest

from search.query import ranking
from search.errors import InvalidArgumentError


@pytest.fixture
def vectors():
    rng = np.random.default_rng(0)
    return ranking.normalize(rng.normal(size=(500, 16)))


def test_brute_force_matches_full_sort(vectors):
    query = vectors[7]
    scores, rows = ranking.brute_force(vectors, query, 20)
    expected = np.argsort(-(vectors @ query), kind="stable")[:20]
    assert rows.tolist() == expected.tolist()
    assert rows[0] == 7 and scores[0] == pytest.approx(1.0, abs=1e-6)


def test_top_k_handles_k_larger_than_n_and_ties():
    scores = np.array([0.5, 0.9, 0.5, 0.1], np.float32)
    assert ranking.top_k(scores, 10).tolist() == [1, 0, 2, 3]
    assert ranking.top_k(scores, 0).tolist() == []


def test_combine_is_normalised_weighted_sum(vectors):
    combined = ranking.combine(vectors[:3], [1.0, 0.5, -1.0])
    expected = vectors[0] + 0.5 * vectors[1] - vectors[2]
    np.testing.assert_allclose(combined, expected / np.linalg.norm(expected), atol=1e-6)


@pytest.mark.parametrize("bad", [np.zeros(4), np.array([1.0, np.nan, 0, 0]), np.array([np.inf, 0, 0, 0])])
def test_normalize_rejects_zero_and_non_finite(bad):
    with pytest.raises(InvalidArgumentError):
        ranking.normalize(bad)


def test_combine_rejects_cancelling_terms(vectors):
    with pytest.raises(InvalidArgumentError):
        ranking.combine(np.stack([vectors[0], vectors[0]]), [1.0, -1.0])


def test_deduplicate_drops_near_copies(vectors):
    near = ranking.normalize(vectors[0] + 0.01 * vectors[1])
    ranked = np.stack([vectors[0], near, vectors[2]])
    assert ranking.deduplicate(ranked).tolist() == [0, 2]


def greedy_deduplicate(vectors, threshold=ranking.DUPLICATE_THRESHOLD):
    """The definition: keep each row not near an earlier kept one, one row at a time."""
    keep = []
    for i, v in enumerate(vectors):
        if not keep or np.max(vectors[keep] @ v) < threshold:
            keep.append(i)
    return keep


def test_deduplicate_in_blocks_matches_the_greedy_definition():
    rng = np.random.default_rng(3)
    base = ranking.normalize(rng.normal(size=(300, 32)))
    copies = ranking.normalize(base[rng.integers(0, 300, 500)] + 0.05 * rng.normal(size=(500, 32)))
    ranked = np.concatenate([base, copies])[rng.permutation(800)]
    for block in (1, 7, 64, 1000):  # copies near rows of earlier blocks and of their own
        assert ranking.deduplicate(ranked, block=block).tolist() == greedy_deduplicate(ranked)


@pytest.mark.timeout(30)
def test_deduplicate_of_the_largest_page_is_bounded():
    # The audit's request: 10,000 distinct results took 129 s one at a time.
    ranked = ranking.normalize(np.random.default_rng(4).normal(size=(10_000, 512)))
    keep = ranking.deduplicate(ranked)
    assert keep.tolist() == list(range(ranking.DEDUPLICATE_MAX))  # only the first candidates are considered
