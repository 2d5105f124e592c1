"""Text vectors of the service: the encoder's own, the recent ones from a bounded LRU cache."""

import threading

import numpy as np
import pytest

from web.texts import TextVectors


class CountingEncoder:
    """A stand-in for ``encode_texts`` that records every call."""

    def __init__(self):
        self.calls = []
        self._lock = threading.Lock()

    def __call__(self, texts):
        with self._lock:
            self.calls.append(list(texts))
        return np.stack([np.full(4, float(len(t)), np.float32) for t in texts])


def test_vectors_are_the_encoders(encoder):
    texts = TextVectors(encoder.encode_texts)
    for text in ("a dog on a beach", "a dog on a beach", "snow"):
        np.testing.assert_allclose(texts.vector(text), encoder.encode_texts([text])[0], atol=1e-6)


def test_recent_texts_come_from_the_cache_least_recent_out():
    encode = CountingEncoder()
    texts = TextVectors(encode, cache_size=2)
    for text in ("a", "bb", "a", "ccc", "a", "bb"):
        texts.vector(text)
    assert encode.calls == [["a"], ["bb"], ["ccc"], ["bb"]]  # "bb" was the least recent when "ccc" came
    with pytest.raises(ValueError):
        texts.vector("a")[0] = 1.0  # shared by every request for the text: read-only


def test_no_cache_means_the_model_every_time():
    encode = CountingEncoder()
    texts = TextVectors(encode, cache_size=0)
    texts.vector("a")
    texts.vector("a")
    assert encode.calls == [["a"], ["a"]]


def test_the_next_page_of_a_query_skips_the_model(make_app, monkeypatch):
    app = make_app()
    texts, calls = app.extensions["photosearch"].texts, []
    encode = texts._encode
    monkeypatch.setattr(texts, "_encode", lambda batch: calls.append(batch) or encode(batch))
    client = app.test_client()
    first = client.get("/api/search?q=a+red+boat+at+dusk&k=5").get_json()
    second = client.get("/api/search?q=a+red+boat+at+dusk&k=5&offset=5").get_json()
    everything = client.get("/api/search?q=a+red+boat+at+dusk&k=10").get_json()
    assert calls == [["a red boat at dusk"]]
    assert [r["id"] for r in first["results"] + second["results"]] == [r["id"] for r in everything["results"]]


def test_many_threads_get_the_right_vectors_and_the_cache_stays_bounded():
    encode = CountingEncoder()
    texts = TextVectors(encode, cache_size=8)
    wrong = []

    def ask(offset):
        for i in range(200):
            word = "x" * (1 + (offset + i) % 20)
            if texts.vector(word)[0] != len(word):
                wrong.append(word)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert wrong == [] and len(texts._cache) == 8
