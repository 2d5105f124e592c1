"""The service's index search part: concurrent searches share index calls and rank as they would alone."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from search.query import ranking
from search.query.searcher import Searcher, index_search
from search.store import writer
from search.store.bundle import Bundle
from search.store.manifest import Manifest
from search.store.metadata import ImageRecord
from web.coalesce import CoalescedSearch

DIM = 16
N = 200
QUERIES = 32


def test_concurrent_searches_share_index_calls_and_rank_as_alone(tmp_path):
    vectors = ranking.normalize(np.random.default_rng(0).normal(size=(N, DIM)))
    records = [ImageRecord(i, f"img{i:03d}.jpg", 1, 0, f"{i:064x}") for i in range(N)]
    writer.commit(str(tmp_path), Manifest(model={"name": "m", "pretrained": "t", "dim": DIM}, dim=DIM, root="/"),
                  records, vectors)
    bundle = Bundle.open(tmp_path, use_gpu=False)
    queries = ranking.normalize(np.random.default_rng(2).normal(size=(QUERIES, DIM)))
    ks = [1 + i % 30 for i in range(QUERIES)]
    alone = [[r.id for r in Searcher(bundle).search_vector(q, k=k).results] for q, k in zip(queries, ks)]

    search, calls, first_call = index_search(bundle), [], threading.Event()
    shared = CoalescedSearch(lambda q, count: calls.append(len(q)) or first_call.wait(10) and search(q, count),
                             idle_s=0.1)
    searcher = Searcher(bundle, search_index=shared)
    waiting = shared.calls

    def release_when_all_queued():  # the first call is held until every other search waits behind it
        with waiting._arrived:
            assert waiting._arrived.wait_for(lambda: calls and len(waiting._queue) == QUERIES - calls[0], timeout=10)
        first_call.set()

    releaser = threading.Thread(target=release_when_all_queued)
    releaser.start()
    with ThreadPoolExecutor(QUERIES) as pool:
        together = list(pool.map(lambda qk: [r.id for r in searcher.search_vector(qk[0], k=qk[1]).results],
                                 zip(queries, ks)))
    releaser.join(10)
    assert together == alone
    assert len(calls) == 2 and sum(calls) == QUERIES  # the first call, and every other search in one more
    worker = waiting._thread
    if worker is not None:
        worker.join(10)  # idle: the thread ends, and no longer holds the bundle
    assert waiting._thread is None
    assert [r.id for r in searcher.search_vector(queries[0], k=ks[0]).results] == alone[0]  # a new one starts
