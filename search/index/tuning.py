"""Tuning an approximate index's search parameters at build time.

Held-out queries are rows of the collection that the quantisers did not train
on, searched with their own row left out (as if they were not indexed), and
compared with exact search, through the same candidates-then-exact-re-score
path as ``Searcher.search``.
For each refine factor the smallest nprobe that reaches the target recall is
found (recall only grows with nprobe); of those, the fastest measured wins.
"""

import time

import faiss
import numpy as np

from . import ann

TARGET_RECALL = 0.95
K = 10
K_FACTORS = (4, 8, 16, 32, 64)  # candidates per result, re-scored exactly
QUERIES = 1000  # held-out queries: recall measured to about +-0.005
MARGIN = 0.005  # tuned a little above the target: the held-out sample itself has sampling error
SATURATED = 0.002  # recall gained by doubling nprobe below which a factor has peaked


def query_count(n, queries=QUERIES):
    """Held-out queries for ``n`` rows: :data:`QUERIES`, or a tenth of a small collection."""
    return min(queries, max(1, n // 10))


def split_rows(n, train_size, queries=QUERIES, seed=0):
    """``(train_rows, query_rows)``, disjoint: queries the quantisers never trained on
    measure the recall that new queries get (rows seen in training score higher)."""
    order = np.random.default_rng(seed).permutation(n)
    count = query_count(n, queries)
    return np.sort(order[count:count + train_size]), np.sort(order[:count])


def exact_neighbours(vectors, rows, k=K):
    """Rows of the exact ``k`` nearest neighbours of ``vectors[rows]``, each row itself left out."""
    _, found = faiss.knn(np.ascontiguousarray(vectors[rows]), vectors, k + 1, metric=faiss.METRIC_INNER_PRODUCT)
    return drop_self(found, rows, k)


def refine(candidate_ids, queries, ids, vectors, k):
    """Ids of the ``k`` best candidates per query by exact inner product with ``vectors``.

    ``ids`` (sorted) label the rows of ``vectors``, or None when a row is its id; -1 candidates are ignored.
    This is what ``Searcher.search`` does for each query, done in bulk.
    """
    out = np.full((len(queries), k), -1, np.int64)
    for start in range(0, len(queries), 64):  # bounded memory: 64 queries' candidate vectors at a time
        cand = candidate_ids[start:start + 64]
        rows = np.maximum(cand, 0) if ids is None else np.searchsorted(ids, np.maximum(cand, 0))
        gathered = np.asarray(vectors[rows.ravel()], np.float32).reshape(*rows.shape, -1)  # a VectorFile too
        scores = np.einsum("qcd,qd->qc", gathered, queries[start:start + 64])
        scores[cand < 0] = -np.inf
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        out[start:start + 64] = np.take_along_axis(cand, best, 1)
    return out


def recall(found, truth):
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth)])) / truth.shape[1]


def measure(index, params, ids, vectors, rows, truth):
    """``(recall@K, seconds per query)`` of ``index`` searched with ``params`` and re-scored."""
    searchable = ann.SearchableIndex(index, params)
    queries = np.ascontiguousarray(vectors[rows], dtype=np.float32)
    start = time.perf_counter()
    # as Searcher.search fetches for K results, plus the query's own row
    _, cand = ann.search(searchable, queries, ann.candidate_count(searchable, K) + 1)
    found = refine(cand, queries, ids, vectors, K + 1)
    seconds = (time.perf_counter() - start) / len(rows)
    found_rows = np.searchsorted(ids, np.maximum(found, 0))
    found_rows[found < 0] = -1
    return recall(drop_self(found_rows, rows, K), truth), seconds


def tune(index, ids, vectors, rows, target=TARGET_RECALL, truth=None):
    """Search parameters for ``index`` (IVF) reaching ``target`` recall@10 for the query ``rows``.

    ``vectors``: an array, or a memory-mapped one (float16 too) with ``truth``,
    the rows of each query's exact neighbours, found without loading them all.

    Returns a dict for the manifest: ``search`` (nprobe, k_factor), the recall
    and query time measured, and whether the target was met.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if truth is None:
        vectors = np.asarray(vectors, dtype=np.float32)
        truth = exact_neighbours(vectors, rows)
    nlist = faiss.extract_index_ivf(index).nlist
    aim = target + MARGIN
    reached, best = [], None
    for k_factor in K_FACTORS:
        # the fewest lists that ann.search would scan for this many candidates anyway
        nprobe = ann.lists_to_cover(index, min(len(ids), K * k_factor + 1))
        previous = -1.0
        # A larger factor is only worth it with fewer lists than a setting already found.
        while not reached or nprobe < min(p.nprobe for _, p, _ in reached):
            params = ann.SearchParams(nprobe=nprobe, k_factor=k_factor)
            got, seconds = measure(index, params, ids, vectors, rows, truth)
            if best is None or got > best[1]:
                best = (params, got, seconds)
            if got >= aim:
                reached.append((seconds, params, got))
                break
            if nprobe >= nlist or got - previous < SATURATED:
                break  # more lists cannot help: the codes, not the lists, limit this factor
            nprobe, previous = min(nlist, nprobe * 2), got
    if reached:
        seconds, params, got = min(reached, key=lambda r: r[0])
    else:  # the codes are too coarse for the target: keep the best recall found
        params, got, seconds = best
    return {
        "search": params.to_dict(),
        "recall_at_10": round(got, 4),
        "target_recall": target,
        "target_met": bool(reached),
        "query_ms": round(seconds * 1e3, 3),
        "tuned_on_queries": len(rows),
    }


def drop_self(found, rows, k):
    """The first ``k`` entries of each row of ``found`` that are not the query's own row."""
    out = np.full((len(found), k), -1, np.int64)
    for i, (f, own) in enumerate(zip(found, rows)):
        kept = f[f != own][:k]
        out[i, :len(kept)] = kept
    return out
