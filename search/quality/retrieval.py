"""Retrieval quality of a dual encoder: recall@k and median rank, both ways. Pure numpy.

Vectors are L2-normalised, so the inner product is the cosine. A query's
rank is one more than the number of candidates that score above its best
relevant one: text->image counts a caption as found at k when any of its
photo's rows (or, with a ``key``, any row of the same kind) is in the top k,
and image->text counts a photo found when any of its captions is. This is
the protocol of CLIP's published zero-shot retrieval figures (Flickr30k,
COCO 5k). Scores are computed in blocks of queries, so memory stays bounded
for COCO's 25,000 x 5,000.
"""

import numpy as np

KS = (1, 5, 10)
BLOCK = 1024  # queries scored at once


def relevance(caption_paths, image_paths, key=None):
    """For each caption, the rows of ``image_paths`` it should find: ``[(caption, row), ...]`` as two arrays.

    ``key(path)`` groups photos that count as the same (default: the path itself).
    """
    key = key or (lambda p: p)
    rows_of = {}
    for row, p in enumerate(image_paths):
        rows_of.setdefault(key(p), []).append(row)
    pairs = [(c, r) for c, p in enumerate(caption_paths) for r in rows_of.get(key(p), ())]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    caps, rows = np.array(pairs, np.int64).T
    return caps, rows


def ranks(queries, candidates, query_of, candidate_of):
    """1-based rank of the best relevant candidate for each query that has one.

    ``query_of[i]`` and ``candidate_of[i]`` are the pairs that are relevant.
    Returns an int array, one per query with at least one relevant candidate, in query order.
    """
    queries = np.asarray(queries, np.float32)
    candidates = np.asarray(candidates, np.float32)
    has = np.zeros(len(queries), bool)
    has[query_of] = True
    out = []
    for start in range(0, len(queries), BLOCK):
        stop = min(start + BLOCK, len(queries))
        scores = queries[start:stop] @ candidates.T
        inside = (query_of >= start) & (query_of < stop)
        q, c = query_of[inside] - start, candidate_of[inside]
        best = np.full(stop - start, np.inf, np.float32)
        best[np.unique(q)] = -np.inf
        np.maximum.at(best, q, scores[q, c])
        rank = (scores > best[:, None]).sum(axis=1) + 1
        out.append(rank[has[start:stop]])
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def summarise(r):
    """``{"recall@1", "recall@5", "recall@10", "median_rank"}`` of ranks ``r``."""
    if len(r) == 0:
        return {f"recall@{k}": None for k in KS} | {"median_rank": None}
    out = {f"recall@{k}": round(float(np.mean(r <= k)), 4) for k in KS}
    out["median_rank"] = float(np.median(r))
    return out


def evaluate(text_vectors, image_vectors, caption_of, image_of):
    """Both directions' figures for captions ``text_vectors`` and photos ``image_vectors``,
    with ``(caption_of, image_of)`` the relevant pairs (see :func:`relevance`)."""
    return {
        "text_to_image": summarise(ranks(text_vectors, image_vectors, caption_of, image_of)),
        "image_to_text": summarise(ranks(image_vectors, text_vectors, image_of, caption_of)),
    }
