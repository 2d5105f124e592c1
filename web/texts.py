"""Text query vectors for the service: recent texts cached, concurrent ones encoded in one batch.

A text is encoded by one thread at a time. Requests that arrive while a batch
is being encoded wait for it, and the first of them to get its turn encodes
every text waiting by then, all in one call: under load, texts batch up on
their own, and an idle server adds no delay. The next page of a query, or a
popular one, comes from a small LRU cache instead of the model.
"""

import threading
from collections import OrderedDict


class _Pending:
    __slots__ = ("error", "text", "vector")

    def __init__(self, text):
        self.text, self.vector, self.error = text, None, None


class TextVectors:
    """``vector(text)``: the encoder's normalised vector of ``text``, as ``encode_texts([text])[0]``."""

    def __init__(self, encode_texts, cache_size=1024, batching=True):
        self._encode = encode_texts
        self._cache_size = cache_size
        self._batching = batching
        self._cache = OrderedDict()
        self._pending = []
        self._lock = threading.Lock()  # guards the cache and the pending list
        self._encoding = threading.Lock()  # one batch at a time

    def vector(self, text):
        with self._lock:
            vector = self._cache.get(text)
            if vector is not None:
                self._cache.move_to_end(text)
                return vector
            if self._batching:
                mine = _Pending(text)
                self._pending.append(mine)
        if not self._batching:
            vector = _frozen(self._encode([text])[0])
            self._remember({text: vector})
            return vector
        with self._encoding:
            if mine.vector is None and mine.error is None:  # no earlier batch took it: encode all waiting now
                with self._lock:
                    batch, self._pending = self._pending, []
                self._run(batch)
        if mine.error is not None:
            raise mine.error
        return mine.vector

    def _run(self, batch):
        texts = list(dict.fromkeys(p.text for p in batch))  # each distinct text once
        try:
            vectors = dict(zip(texts, map(_frozen, self._encode(texts))))
        except Exception as e:  # noqa: BLE001 - every waiter gets the error, as its own call would have
            for p in batch:
                p.error = e
            return
        for p in batch:
            p.vector = vectors[p.text]
        self._remember(vectors)

    def _remember(self, vectors):
        if not self._cache_size:
            return
        with self._lock:
            for text, vector in vectors.items():
                self._cache[text] = vector
                self._cache.move_to_end(text)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


def _frozen(row):
    """A read-only copy: shared by every request for the text, and not a view keeping its whole batch alive."""
    vector = row.copy()
    vector.setflags(write=False)
    return vector
