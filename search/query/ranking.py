"""Pure ranking functions: arrays in, arrays out, no model and no I/O."""

import numpy as np

from ..errors import InvalidArgumentError

DUPLICATE_THRESHOLD = 0.94  # cosine above which two results count as near-duplicates


def normalize(vectors):
    """L2-normalise rows (or one vector); zero vectors are rejected."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    if not np.all(np.isfinite(vectors)) or np.any(norms < 1e-12):
        raise InvalidArgumentError("a query vector is zero or not finite")
    return vectors / norms


def combine(vectors, weights):
    """Weighted sum of normalised vectors, normalised: ``beach + sunset - people``."""
    vectors = normalize(np.atleast_2d(vectors))
    weights = np.asarray(weights, dtype=np.float32).reshape(-1, 1)
    if len(weights) != len(vectors):
        raise InvalidArgumentError("one weight is needed per query term")
    total = (vectors * weights).sum(axis=0)
    if np.linalg.norm(total) < 1e-6:
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


def deduplicate(vectors, threshold=DUPLICATE_THRESHOLD):
    """Positions to keep from ranked ``vectors``: each one not near an earlier kept one."""
    keep = []
    for i, v in enumerate(np.asarray(vectors, dtype=np.float32)):
        if not keep or np.max(vectors[keep] @ v) < threshold:
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)
