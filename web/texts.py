"""Text query vectors for the service: concurrent texts encoded together, recent ones cached.

``TextVectors.encode_texts`` is the service's ``encode_texts`` part of its
:class:`search.query.searcher.Searcher`, and gives what the encoder's own
``encode_texts`` gives.

Batching: the texts of requests that arrive while the model is busy are
encoded together in its next call (``web.coalesce``). A text costs far less
in a call of 16 than alone (``benchmarks/RESULTS.md``, "Queries"), so under
load throughput grows with the batch; under load a call also waits a little
for as many texts as the last one had, and a lone query is encoded at once.

Caching: the page loads further pages of a query (``offset``) as the user
scrolls, each with the same text, and popular queries repeat; those come from
a small LRU cache, not the model.
"""

import threading
import time
from collections import OrderedDict

import numpy as np

from .coalesce import Coalescer


class TextVectors:
    """``encode_texts(texts)``: the encoder's unit vectors of ``texts``, ``[len(texts), dim]`` float32."""

    def __init__(self, encode_texts, cache_size=1024, max_batch=64, clock=time.monotonic):
        self._encode = encode_texts
        self._calls = Coalescer(self._encode_batch, max_batch, gather=True, name="text-encoder", clock=clock)
        self._cache_size = cache_size
        self._cache = OrderedDict()
        self._pending = {}  # text -> Future, for texts waiting for or inside an encoding
        self._lock = threading.Lock()  # guards the above; the model runs outside it

    def encode_texts(self, texts):
        texts = list(texts)
        if not texts:
            return self._encode(texts)
        found, waiting = {}, {}
        with self._lock:
            for text in texts:
                if text in found or text in waiting:
                    continue
                vector = self._cache.get(text)
                if vector is not None:
                    self._cache.move_to_end(text)
                    found[text] = vector
                    continue
                future = self._pending.get(text)
                if future is None:  # one encoding per text, however many requests ask for it
                    future = self._pending[text] = self._calls.submit(text)
                waiting[text] = future
        for text, future in waiting.items():
            found[text] = future.result()
        return np.stack([found[text] for text in texts])

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
