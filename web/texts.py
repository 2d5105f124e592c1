"""Text query vectors for the service: concurrent texts encoded together, recent ones cached.

Batching: the texts of requests that arrive while the model is busy are
encoded together in its next call. Short texts cost about a third as much
each in a call of 16 as one at a time (``benchmarks/bench_query.py``), so
under load throughput grows with the batch. There is no timer: a lone query
is encoded at once, and a query that arrives during an encoding would wait
for it anyway.

Caching: the page loads further pages of a query (``offset``) as the user
scrolls, each with the same text, and popular queries repeat; those come from
a small LRU cache, not the model.
"""

import threading
from collections import OrderedDict
from concurrent.futures import Future


class TextVectors:
    """``vector(text)``: the encoder's normalised vector of ``text``, as ``encode_texts([text])[0]``."""

    def __init__(self, encode_texts, cache_size=1024, max_batch=64):
        self._encode = encode_texts
        self._cache_size = cache_size
        self._max_batch = max_batch
        self._cache = OrderedDict()
        self._pending = {}  # text -> Future, for texts waiting for or inside an encoding
        self._queue = []  # texts waiting for the next encoding, oldest first
        self._encoding = False  # whether a thread is running batches now
        self._lock = threading.Lock()  # guards the above; the model runs outside it

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
            start = not self._encoding
            self._encoding = True
        if start:  # the thread ends when the queue is empty: nothing lingers between bursts
            try:
                threading.Thread(target=self._run_batches, name="text-encoder", daemon=True).start()
            except RuntimeError:  # no thread to be had: the next request tries again
                with self._lock:
                    self._encoding = False
                raise
        return future.result()

    def _run_batches(self):
        while True:
            with self._lock:
                batch = self._queue[:self._max_batch]
                del self._queue[:self._max_batch]
                if not batch:
                    self._encoding = False
                    return
            try:
                vectors, error = [_frozen(v) for v in self._encode(batch)], None
            except BaseException as e:  # the requesting threads raise it (answered as a JSON 500)
                vectors, error = None, e
            with self._lock:
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


def _frozen(vector):
    vector = vector.copy()  # its own memory, not a view of the batch
    vector.setflags(write=False)  # shared by every request for this text
    return vector
