"""Pure ranking functions: arrays in, arrays out, no model and no I/O (as faiss's ``contrib``).

Scores are inner products of L2-normalised vectors, that is cosines. Ties
are broken by the lower id (or row), so a ranking is the same however the
candidates were found.
"""

import numpy as np

from ..errors import InvalidArgumentError

DUPLICATE_THRESHOLD = 0.94  # cosine above which two results count as near-duplicates (clip-retrieval's)
COUNT_CHUNK = 262_144  # rows scored at a time when counting over all vectors: bounded memory
SCORE_CHUNK = 16_384  # rows gathered at a time to score a set of rows: bounded memory
DEDUPLICATE_MAX = 4_096  # ranked results deduplication considers: its cost grows with the square of this
DEDUPLICATE_BLOCK = 512  # results compared with each other at a time


def normalize(vectors):
    """L2-normalise rows (or one vector); zero vectors are rejected."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    if not np.all(np.isfinite(vectors)) or np.any(norms < 1e-12):
        raise InvalidArgumentError("a query vector is zero or not finite")
    return vectors / norms


def combine(unit_vectors, weights):
    """The query of weighted terms, ``beach + sunset - people``: the weighted sum of unit vectors, normalised.

    The rows are taken as they come (the encoder's and the bundle's vectors
    are unit already); the sum is the one thing normalised.
    """
    unit_vectors = np.atleast_2d(np.asarray(unit_vectors, dtype=np.float32))
    weights = np.asarray(weights, dtype=np.float32).reshape(-1)
    if len(weights) != len(unit_vectors):
        raise InvalidArgumentError("one weight is needed per query term")
    total = weights @ unit_vectors
    if np.all(np.isfinite(total)) and np.linalg.norm(total) < 1e-6:
        raise InvalidArgumentError("the weighted query terms cancel out")
    return normalize(total)


def top_k(scores, k):
    """Indices of the ``k`` highest ``scores``, best first (ties by lower index)."""
    k = min(int(k), len(scores))
    if k <= 0:
        return np.zeros(0, np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    return part[np.lexsort((part, -scores[part]))]


def brute_force(vectors, query, k):
    """Exact ``(scores, rows)`` of the ``k`` rows nearest ``query``."""
    scores = np.asarray(vectors, dtype=np.float32) @ np.asarray(query, dtype=np.float32)
    rows = top_k(scores, k)
    return scores[rows], rows


def exact_scores(vectors, rows, query, chunk=SCORE_CHUNK):
    """``vectors[rows] @ query`` in float32, in the order of ``rows``.

    The rows are read in ascending order, which a memory-mapped file serves
    far better than a random order, and ``chunk`` rows at a time, so that a
    filter matching most of a large collection copies no more than that.
    """
    rows = np.asarray(rows, dtype=np.int64)
    scores = np.empty(len(rows), np.float32)
    order = np.argsort(rows, kind="stable")
    for start in range(0, len(rows), chunk):
        part = order[start:start + chunk]
        scores[part] = np.asarray(vectors[rows[part]] @ query, dtype=np.float32)
    return scores


def rank(ids, scores):
    """``(ids, scores)`` ordered best first, ties by lower id."""
    order = np.lexsort((ids, -scores))
    return ids[order], scores[order]


def count_at_least(vectors, query, min_score, chunk=COUNT_CHUNK):
    """How many rows of ``vectors`` score ``min_score`` or more against ``query``."""
    return int(sum(np.sum(vectors[i:i + chunk] @ query >= min_score) for i in range(0, len(vectors), chunk)))


def select(ids, scores, offset, k, min_score=None, exclude=()):
    """The page ``[offset, offset + k)`` of ranked ``(ids, scores)``, without ``exclude`` and below ``min_score``."""
    keep = ~np.isin(ids, np.asarray(list(exclude), dtype=np.int64))
    if min_score is not None:
        keep &= scores >= min_score
    return ids[keep][offset:offset + k], scores[keep][offset:offset + k]


def deduplicate(vectors, threshold=DUPLICATE_THRESHOLD, max_candidates=DEDUPLICATE_MAX, block=DEDUPLICATE_BLOCK):
    """Positions to keep from ranked ``vectors``: each one not near an earlier kept one.

    Only the first ``max_candidates`` rows are considered (the rest are not
    kept), so a request's cost is bounded. Rows are compared ``block`` at a
    time: one matrix product against the rows kept so far, then the greedy
    pass within the block over its own small Gram matrix.
    """
    vectors = np.asarray(vectors[:max_candidates], dtype=np.float32)
    kept = np.zeros(len(vectors), dtype=bool)
    for start in range(0, len(vectors), block):
        part = vectors[start:start + block]
        free = np.ones(len(part), dtype=bool)
        if start:  # rows near one kept in an earlier block
            free &= ~np.any(part @ vectors[:start][kept[:start]].T >= threshold, axis=1)
        near = part @ part.T >= threshold
        for i in np.flatnonzero(free):
            if free[i]:  # still free: keep it, and free no later row of the block near it
                kept[start + i] = True
                free[i + 1:] &= ~near[i, i + 1:]
    return np.flatnonzero(kept)
