"""Text vectors of the service: the encoder's own, cached, and batched across concurrent requests."""

import threading
import time

import numpy as np
import pytest

from web.texts import TextVectors


class SlowEncoder:
    """A stand-in for ``encode_texts`` that takes its time and records every batch it is given."""

    def __init__(self, seconds=0.0, fail=False):
        self.seconds, self.fail, self.batches = seconds, fail, []

    def __call__(self, texts):
        self.batches.append(list(texts))
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("the model broke")
        return np.stack([np.full(4, float(len(t)), np.float32) for t in texts])


def test_vectors_are_the_encoders(encoder):
    texts = TextVectors(encoder.encode_texts)
    for text in ("a dog on a beach", "a dog on a beach", "snow"):
        np.testing.assert_allclose(texts.vector(text), encoder.encode_texts([text])[0], atol=1e-6)


def test_recent_texts_come_from_the_cache_least_recent_out():
    encode = SlowEncoder()
    texts = TextVectors(encode, cache_size=2)
    for text in ("a", "bb", "a", "ccc", "a", "bb"):
        texts.vector(text)
    assert encode.batches == [["a"], ["bb"], ["ccc"], ["bb"]]  # "bb" was the least recent when "ccc" came
    with pytest.raises(ValueError):
        texts.vector("a")[0] = 1.0  # a cached vector is shared: read-only


def test_no_cache_means_the_model_every_time():
    encode = SlowEncoder()
    texts = TextVectors(encode, cache_size=0, batching=False)
    texts.vector("a")
    texts.vector("a")
    assert encode.batches == [["a"], ["a"]]


def _concurrently(texts, words):
    results, threads = {}, []
    for i, word in enumerate(words):
        threads.append(threading.Thread(target=lambda i=i, w=word: results.__setitem__(i, texts.vector(w))))
        threads[-1].start()
        time.sleep(0.02)  # the first one is encoding by the time the others come
    for thread in threads:
        thread.join(10)
    return results


def test_texts_that_wait_are_encoded_in_one_batch():
    encode = SlowEncoder(seconds=0.3)
    words = ["a", "bb", "ccc", "bb", "dddd"]
    results = _concurrently(TextVectors(encode, cache_size=0), words)
    assert encode.batches == [["a"], ["bb", "ccc", "dddd"]]  # the waiting ones together, each text once
    for i, word in enumerate(words):
        assert results[i][0] == len(word)


def test_without_batching_each_text_is_its_own_call():
    encode = SlowEncoder(seconds=0.1)
    _concurrently(TextVectors(encode, cache_size=0, batching=False), ["a", "bb", "ccc"])
    assert sorted(map(tuple, encode.batches)) == [("a",), ("bb",), ("ccc",)]


def test_a_failed_batch_fails_every_request_in_it_and_the_next_one_works():
    encode = SlowEncoder(seconds=0.2, fail=True)
    texts = TextVectors(encode)
    errors = []

    def ask(word):
        try:
            texts.vector(word)
        except RuntimeError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=ask, args=(w,)) for w in ("a", "bb", "ccc")]
    for thread in threads:
        thread.start()
        time.sleep(0.02)
    for thread in threads:
        thread.join(10)
    assert errors == ["the model broke"] * 3
    encode.fail = False
    assert texts.vector("a")[0] == 1.0
