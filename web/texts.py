"""Text query vectors for the service: concurrent texts encoded together, recent ones cached.

Batching: the texts of requests that arrive while the model is busy are
encoded together in its next call (``search.coalesce``). Short texts cost
about a third as much each in a call of 16 as one at a time
(``benchmarks/bench_query.py``), so under load throughput grows with the
batch; under load a call also waits a little for as many texts as the last
one had, and a lone query is encoded at once.

Caching: the page loads further pages of a query (``offset``) as the user
scrolls, each with the same text, and popular queries repeat; those come from
a small LRU cache, not the model.
"""

import threading
from collections import OrderedDict

from search.coalesce import Coalescer


class TextVectors:
    """``vector(text)``: the encoder's normalised vector of ``text``, as ``encode_texts([text])[0]``."""

    def __init__(self, encode_texts, cache_size=1024, max_batch=64):
        self._encode = encode_texts
        self._calls = Coalescer(self._encode_batch, max_batch, gather=True, name="text-encoder")
        self._cache_size = cache_size
        self._cache = OrderedDict()
        self._pending = {}  # text -> Future, for texts waiting for or inside an encoding
        self._lock = threading.Lock()  # guards the above; the model runs outside it

    def vector(self, text):
        with self._lock:
            vector = self._cache.get(text)
            if vector is not None:
                self._cache.move_to_end(text)
                return vector
            future = self._pending.get(text)
            if future is None:  # one encoding per text, however many requests ask for it
                future = self._pending[text] = self._calls.submit(text)
        return future.result()

    def _encode_batch(self, texts):
        """The model's call (in the coalescer's thread): the cache is filled before any request wakes,
        and a failed call (a JSON 500 for its requests) caches nothing."""
        vectors = None
        try:
            vectors = [_frozen(v) for v in self._encode(texts)]
            return vectors
        finally:
            with self._lock:
                for text in texts:
                    self._pending.pop(text, None)
                if vectors is not None and self._cache_size:
                    self._cache.update(zip(texts, vectors))
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)


def _frozen(vector):
    vector = vector.copy()  # its own memory, not a view of the batch
    vector.setflags(write=False)  # shared by every request for this text
    return vector
