"""One call for the work of many threads: what queues while a call runs goes into the next one.

A server answers each request in its own thread, but a model or a matrix
product costs much less per item in one call of many than in many calls of
one (the text encoder, and a flat index that reads its vectors once for all
the queries of a call: ``benchmarks/RESULTS.md``, "Queries"). No timer delays
a lone item: it is run at once.
"""

import threading
import time
from concurrent.futures import Future

import numpy as np

WAIT_SHARE = 0.25  # the longest wait for more items, as a share of the last call's time


class Coalescer:
    """``submit(item)`` from any thread; ``run(items)`` returns one result per item, in order.

    One worker thread makes the calls. It is started by the first item and
    ends after ``idle_s`` without any, so that it does not keep its owner
    alive for ever. While it lives, a thread's first call into torch or BLAS
    (its OpenMP team and buffers are made again in a new thread) is paid once.

    ``gather``: under load, a call first waits for as many items as the last
    call had (see :meth:`_gather`). ``clock``: what measures the calls and
    that wait (``time.monotonic``; a test hands in one it sets itself).
    """

    def __init__(self, run, max_items=64, gather=False, idle_s=60.0, name="coalescer", clock=time.monotonic):
        self._run = run
        self._max_items = max_items
        self._gather_items = gather
        self._idle_s = idle_s
        self._name = name
        self._clock = clock
        self._queue = []  # (item, Future), oldest first
        self._thread = None
        self._last = (0, 0.0, 0.0)  # items, seconds and end (clock) of the last call
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # an item was queued

    def submit(self, item):
        """A Future of ``item``'s result."""
        future = Future()
        with self._lock:
            self._queue.append((item, future))
            self._arrived.notify_all()  # the worker, and anyone else waiting for the queue
            if self._thread is None or not self._thread.is_alive():  # none yet, idle, or a forked process
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                try:
                    self._thread.start()
                except RuntimeError:  # no thread to be had: this item fails, the next submit tries again
                    self._thread = None
                    self._queue.pop()
                    raise
        return future

    def _work(self):
        while True:
            with self._lock:
                idle_until = time.monotonic() + self._idle_s
                while not self._queue:
                    if not self._arrived.wait(idle_until - time.monotonic()) and not self._queue:
                        self._thread = None
                        return
                if self._gather_items:
                    self._gather()
                batch = self._queue[:self._max_items]
                del self._queue[:self._max_items]
            start = self._clock()
            try:
                results, error = self._run([item for item, _ in batch]), None
            except BaseException as e:  # the submitting threads raise it
                results, error = None, e
            end = self._clock()
            with self._lock:
                self._last = (len(batch), end - start, end)
            for i, (_, future) in enumerate(batch):
                if error is None:
                    future.set_result(results[i])
                else:
                    future.set_exception(error)

    def _gather(self):
        """Wait (lock held) for as many items as the last call had, while that call is recent.

        When a call of N items ends, its N requests go on (search, answer), and
        their clients' next items arrive over the next milliseconds. Running the
        first of them at once would split the load into smaller calls that cost
        more per item. The wait ends a quarter of the last call's time after it
        ended. Once a call's own time has passed since it ended, the load is over
        and nothing waits; a single client, whose calls hold one item, never waits.
        """
        size, seconds, end = self._last
        if self._clock() - end > seconds:
            return
        deadline = end + WAIT_SHARE * seconds
        while 0 < len(self._queue) < min(size, self._max_items):
            remaining = deadline - self._clock()
            if remaining <= 0:
                return
            self._arrived.wait(remaining)


class CoalescedSearch:
    """A ``search_index`` part (see :class:`search.query.searcher.Searcher`) whose concurrent calls share one.

    ``search(queries, count) -> (scores, ids)`` is the part it wraps; a shared
    call asks for the largest count among its queries, and each caller gets
    its own first ``count``. Its thread ends ``idle_s`` after the last search,
    freeing a replaced bundle.
    """

    def __init__(self, search, idle_s=5.0):
        self._search = search
        self.calls = Coalescer(self._search_many, idle_s=idle_s, name="index-search")

    def __call__(self, queries, count):
        found = [future.result() for future in [self.calls.submit((query, count)) for query in queries]]
        return np.stack([scores for scores, _ in found]), np.stack([ids for _, ids in found])

    def _search_many(self, items):
        scores, ids = self._search(np.stack([query for query, _ in items]), max(count for _, count in items))
        return [(s[:count], i[:count]) for s, i, (_, count) in zip(scores, ids, items)]
