"""Text query vectors for the service, the recent ones kept in a small LRU cache.

The page loads further pages of a query (``offset``) as the user scrolls, each
with the same text; a popular query repeats too. Those come from the cache,
not the model: a text encoding takes 30-300 ms on a CPU, a hit microseconds.
Encoding the texts of concurrent requests together in one batch was tried
and measured (benchmarks/bench_load.py): no gain on a 2-core CPU, so it is
not done.
"""

import threading
from collections import OrderedDict


class TextVectors:
    """``vector(text)``: the encoder's normalised vector of ``text``, as ``encode_texts([text])[0]``."""

    def __init__(self, encode_texts, cache_size=1024):
        self._encode = encode_texts
        self._cache_size = cache_size
        self._cache = OrderedDict()
        self._lock = threading.Lock()  # the model runs outside it: requests never wait on each other here

    def vector(self, text):
        with self._lock:
            vector = self._cache.get(text)
            if vector is not None:
                self._cache.move_to_end(text)
                return vector
        vector = self._encode([text])[0].copy()  # its own memory, not a view of the batch
        vector.setflags(write=False)  # shared by every request for this text
        if self._cache_size:
            with self._lock:
                self._cache[text] = vector
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return vector
