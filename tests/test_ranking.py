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
