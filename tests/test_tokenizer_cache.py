"""open_clip's word cache is bounded, and tokenising gives what it gave without the bound."""

import open_clip
import torch

from search.encoding.tokenizer_cache import BoundedCache, bound_cache


def test_the_cache_stays_bounded_and_keeps_the_special_tokens(encoder):
    tokenizer = encoder.tokenizer
    assert isinstance(tokenizer.cache, BoundedCache)  # load_encoder bounds it
    words = [_word(i) for i in range(3000)]
    small = bound_cache(open_clip.get_tokenizer("ViT-B-32"), size=100)
    specials = dict(small.cache)
    for start in range(0, len(words), 100):
        small([" ".join(words[start:start + 100])])
        assert len(small.cache) <= len(specials) + 100
    assert all(small.cache[k] == v for k, v in specials.items())
    reference = open_clip.get_tokenizer("ViT-B-32")  # unbounded: grows with every distinct word
    texts = [" ".join(words[i:i + 5]) + " <end_of_text> a dog" for i in range(0, 400, 5)]
    assert torch.equal(small(texts), reference(texts))
    assert len(reference.cache) > 400


def _word(n):
    """A distinct made-up word of letters (the tokenizer splits digits off)."""
    letters = "q"
    while n:
        n, r = divmod(n, 26)
        letters += chr(ord("a") + r)
    return letters + "zx"
