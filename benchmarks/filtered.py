"""Filtered queries, the relevance cut and browsing at scale: a part of ``bench_query`` (``--parts filters``).

The bundle's synthetic metadata (``bench_query.record``) puts 1% of the
photos in each of 100 folders and a quarter under each of four camera values,
so ``path_prefix=album007`` keeps 1% (scored exactly) and ``camera=Pixel 8``
25% (searched through the index with an id selector). Each query runs
unfiltered and under each filter in turn (interleaved, so a burst of load on
the shared machine hits all alike), as vector queries: the search is timed,
not the text encoder.
"""

import numpy as np

from search.query.browse import browse, encode_cursor
from search.query.facets import facets
from search.query.filters import Filters

from .common import summary_ms, timed
from .datasets import ClusteredVectors

FILTERS = {"folder_1pct": Filters(path_prefix="album007"), "camera_25pct": Filters(camera="Pixel 8")}
BROWSE_LIMIT = 100
BROWSE_REPEATS = 50
RECALL_QUERIES = 10


def measure(searcher, queries):
    bundle = searcher.bundle
    clusters = max(10, min(5000, bundle.count // 1000))  # as datasets.clustered made the collection
    vectors = ClusteredVectors(dim=bundle.dim, clusters=clusters, seed=0).sample(queries + 3, stream=1)
    cases = {"unfiltered": {}, **{name: {"filters": f} for name, f in FILTERS.items()},
             "unfiltered_relevance": {"relevance": True}, "folder_1pct_relevance": {
                 "filters": FILTERS["folder_1pct"], "relevance": True}}
    seconds = {name: [] for name in cases}
    for i, query in enumerate(vectors):
        for name, options in cases.items():
            _, took = timed(searcher.search_vector, query, k=24, **options)
            if i >= 3:  # warm-up
                seconds[name].append(took)
    out = {name: summary_ms(s) for name, s in seconds.items()}
    for name in cases:
        out[name]["p50_over_unfiltered"] = round(out[name]["p50_ms"] / out["unfiltered"]["p50_ms"], 2)
    out["matching"] = {name: len(f.matching_ids(bundle.metadata)) for name, f in FILTERS.items()}
    out["recall_at_24_vs_exact"] = {name: recall(searcher, f, vectors[:RECALL_QUERIES]) for name, f in FILTERS.items()}
    out["browse"] = browsing(bundle)
    _, took = timed(facets, bundle.metadata)
    out["facets_ms"] = round(took * 1e3, 1)
    return out


def recall(searcher, filters, queries):
    """Share of the exact 24 best matching rows that the filtered search returns."""
    bundle = searcher.bundle
    rows = bundle.rows_of(filters.matching_ids(bundle.metadata))
    found = 0
    for query in queries:
        scores = np.asarray(bundle.vectors[rows]) @ query
        exact = set(bundle.ids[rows[np.argsort(-scores)[:24]]].tolist())
        found += len(exact & {r.id for r in searcher.search_vector(query, k=24, filters=filters).results})
    return round(found / (24 * len(queries)), 4)


def browsing(bundle):
    """Milliseconds of a page of 100 at the start and 90% deep, unfiltered and under each filter."""
    out = {}
    for name, filters in {"unfiltered": Filters(), **FILTERS}.items():
        where, params = filters.sql()
        (total,) = bundle.metadata.json_rows(
            f"SELECT json_array(count(*)) FROM images{' WHERE ' + where if where else ''}", *params)
        deep_time, deep_id = bundle.metadata.json_rows(  # setup only: the row 90% of the way down
            f"SELECT json_array(time_key, id) FROM images{' WHERE ' + where if where else ''} "
            "ORDER BY time_key DESC, id DESC LIMIT 1 OFFSET ?", *params, int(total * 0.9))
        deep = encode_cursor(deep_time, deep_id, total)
        for where_in, cursor in (("first_page", None), ("deep_page", deep)):
            seconds = [timed(browse, bundle.metadata, filters, BROWSE_LIMIT, cursor, bundle.count)[1]
                       for _ in range(BROWSE_REPEATS)]
            out[f"{name}_{where_in}"] = summary_ms(seconds[3:])
    return out
