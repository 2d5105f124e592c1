"""Text query vectors for the service: concurrent texts encoded together, recent ones cached.

Batching: one long-lived thread runs the model; the texts of requests that
arrive while it is busy are encoded together in its next call. Short texts
cost about a third as much each in a call of 16 as one at a time
(``benchmarks/bench_query.py``), so under load throughput grows with the
batch. Under load the next call also waits a little for as many texts as the
last one had (``_gather``); a lone query is encoded at once. The thread lives
on between queries: a new thread's first call into torch costs about 10 ms
more (its OpenMP team and buffers are made again).

Caching: the page loads further pages of a query (``offset``) as the user
scrolls, each with the same text, and popular queries repeat; those come from
a small LRU cache, not the model.
"""

import threading
import time
from collections import OrderedDict
from concurrent.futures import Future

WAIT_SHARE = 0.25  # the longest wait for more texts, as a share of the last call's time


class TextVectors:
    """``vector(text)``: the encoder's normalised vector of ``text``, as ``encode_texts([text])[0]``."""

    def __init__(self, encode_texts, cache_size=1024, max_batch=64):
        self._encode = encode_texts
        self._cache_size = cache_size
        self._max_batch = max_batch
        self._cache = OrderedDict()
        self._pending = {}  # text -> Future, for texts waiting for or inside an encoding
        self._queue = []  # texts waiting for the next encoding, oldest first
        self._thread = None  # the thread that runs the model, started by the first text
        self._last = (0, 0.0, 0.0)  # texts, seconds and end (time.monotonic) of the last call
        self._lock = threading.Lock()  # guards the above; the model runs outside it
        self._arrived = threading.Condition(self._lock)  # a text was queued

    def vector(self, text):
        with self._lock:
            vector = self._cache.get(text)
            if vector is not None:
                self._cache.move_to_end(text)
                return vector
            future = self._pending.get(text)
            if future is None:
                future = self._pending[text] = Future()
                self._queue.append(text)
                self._arrived.notify()
            if self._thread is None or not self._thread.is_alive():  # the first text, or a forked process
                self._thread = threading.Thread(target=self._run_batches, name="text-encoder", daemon=True)
                try:
                    self._thread.start()
                except RuntimeError:  # no thread to be had: the next request tries again
                    self._thread = None
                    raise
        return future.result()

    def _run_batches(self):
        while True:
            with self._lock:
                while not self._queue:
                    self._arrived.wait()
                self._gather()
                batch = self._queue[:self._max_batch]
                del self._queue[:self._max_batch]
            start = time.monotonic()
            try:
                vectors, error = [_frozen(v) for v in self._encode(batch)], None
            except BaseException as e:  # the requesting threads raise it (answered as a JSON 500)
                vectors, error = None, e
            with self._lock:
                end = time.monotonic()
                self._last = (len(batch), end - start, end)
                futures = [self._pending.pop(text) for text in batch]
                if error is None and self._cache_size:
                    self._cache.update(zip(batch, vectors))
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
            for i, future in enumerate(futures):
                if error is None:
                    future.set_result(vectors[i])
                else:
                    future.set_exception(error)

    def _gather(self):
        """Wait (lock held) for as many texts as the last call had, while that call is recent.

        When a call of N texts ends, its N requests search and answer, and their
        clients' next texts arrive over the next milliseconds. Encoding the first
        of them at once would split the load into smaller calls that cost more
        per text (on two cores, ViT-B-32: 86 ms for a text alone, 34 ms each in a
        call of 8, 27 ms in a call of 16). The wait ends a quarter of the last
        call's time after it ended. Once a call's own time has passed since it
        ended, the load is over and nothing waits; a single client, whose calls
        hold one text each, never waits.
        """
        size, seconds, end = self._last
        if time.monotonic() - end > seconds:
            return
        deadline = end + WAIT_SHARE * seconds
        while 0 < len(self._queue) < min(size, self._max_batch):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.wait(remaining)


def _frozen(vector):
    vector = vector.copy()  # its own memory, not a view of the batch
    vector.setflags(write=False)  # shared by every request for this text
    return vector
