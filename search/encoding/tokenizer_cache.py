"""A bound on open_clip's word cache.

``open_clip.tokenizer.SimpleTokenizer`` keeps the byte-pair encoding of every
word it has seen in ``self.cache``, a dict that never shrinks: a server fed
distinct made-up words grows without limit. Its special tokens live in the
same dict and must stay (the tokenizer finds them there), so the cache is
emptied back to them when full.
"""

TOKENIZER_CACHE_SIZE = 10_000  # words: far more than any run of real queries repeats


class BoundedCache(dict):
    """A dict that returns to its first entries when it would grow past ``size`` more."""

    def __init__(self, pinned, size=TOKENIZER_CACHE_SIZE):
        super().__init__(pinned)
        self._pinned = dict(pinned)
        self._limit = len(self._pinned) + size

    def __setitem__(self, key, value):
        if key not in self and len(self) >= self._limit:
            self.clear()
            self.update(self._pinned)
        super().__setitem__(key, value)


def bound_cache(tokenizer, size=TOKENIZER_CACHE_SIZE):
    """``tokenizer`` with its word cache, if it keeps one in a plain dict, bounded to ``size`` words."""
    cache = getattr(tokenizer, "cache", None)
    if type(cache) is dict:
        tokenizer.cache = BoundedCache(cache, size)
    return tokenizer
