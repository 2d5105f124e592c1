"""Text vectors of the service: the encoder's own, concurrent texts batched, recent ones cached."""

import threading
import time

import numpy as np
import pytest

from web.texts import TextVectors


class CountingEncoder:
    """A stand-in for ``encode_texts`` that records every call; ``gate`` holds the first call."""

    def __init__(self, gate=None, seconds=0.0):
        self.calls = []
        self.threads = set()  # the threads that called the model
        self.gate = gate
        self.seconds = seconds  # each call's time in the model
        self._lock = threading.Lock()

    def __call__(self, texts):
        with self._lock:
            self.calls.append(list(texts))
            self.threads.add(threading.get_ident())
        if self.gate is not None and len(self.calls) == 1:
            assert self.gate.wait(10)
        time.sleep(self.seconds)
        if "boom" in texts:
            raise RuntimeError("the model failed")
        return np.stack([np.full(4, float(len(t)), np.float32) for t in texts])


def ask_together(texts, words):
    """``texts.vector`` of each word from its own thread; returns the answers (or errors) by word."""
    answers = {}

    def ask(word):
        try:
            answers[word] = texts.vector(word)
        except RuntimeError as e:
            answers[word] = e

    threads = [threading.Thread(target=ask, args=(w,)) for w in words]
    for thread in threads:
        thread.start()
    return threads, answers


def wait_for_queue(texts, length):
    for _ in range(1000):
        if len(texts._calls._queue) == length:
            return
        time.sleep(0.005)
    raise AssertionError(f"queue never reached {length}: {texts._calls._queue}")


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


def test_texts_that_arrive_during_an_encoding_share_the_next_one():
    gate = threading.Event()
    encode = CountingEncoder(gate)
    texts = TextVectors(encode, cache_size=0)
    first, answers = ask_together(texts, ["a"])
    while not encode.calls:
        time.sleep(0.005)
    words = ["bb", "ccc", "bb", "dddd", "ccc"]  # repeats: one encoding per distinct text
    threads, more = ask_together(texts, words)
    wait_for_queue(texts, 3)
    gate.set()
    join_all(first, threads)
    answers.update(more)
    assert sorted(map(sorted, encode.calls)) == [["a"], ["bb", "ccc", "dddd"]]
    assert {w: float(v[0]) for w, v in answers.items()} == {w: float(len(w)) for w in ["a", *words]}


def join_all(*groups):
    for threads in groups:
        for thread in threads:
            thread.join(10)


def test_under_load_the_next_call_waits_for_as_many_texts_as_the_last(monkeypatch):
    """After a call of 3, texts that trickle in within its wait window share one call; after a pause longer
    than a call, a lone text is encoded at once even with a window far longer than the test."""
    gate = threading.Event()
    encode = CountingEncoder(gate, seconds=0.4)
    texts = TextVectors(encode, cache_size=0)
    first, _ = ask_together(texts, ["a"])
    while not encode.calls:
        time.sleep(0.005)
    burst, _ = ask_together(texts, ["b", "c", "d"])
    wait_for_queue(texts, 3)
    gate.set()
    join_all(first, burst)  # the call of 3 has just ended; its window is 0.25 x 0.4 s
    trickle = []
    for word in ("e", "f", "g"):
        trickle += ask_together(texts, [word])[0]
        time.sleep(0.01)
    join_all(trickle)
    assert encode.calls == [["a"], ["b", "c", "d"], ["e", "f", "g"]]
    monkeypatch.setattr("search.coalesce.WAIT_SHARE", 100.0)
    time.sleep(0.5)  # longer than the last call: the load is over
    start = time.perf_counter()
    texts.vector("h")
    assert encode.calls[-1] == ["h"] and time.perf_counter() - start < 5
    assert len(encode.threads) == 1  # one thread ran every call, across the pause


def test_a_failed_encoding_fails_its_requests_only():
    gate = threading.Event()
    encode = CountingEncoder(gate)
    texts = TextVectors(encode)
    first, answers = ask_together(texts, ["a"])
    while not encode.calls:
        time.sleep(0.005)
    threads, more = ask_together(texts, ["boom", "bb"])  # one batch, which fails
    wait_for_queue(texts, 2)
    gate.set()
    for thread in first + threads:
        thread.join(10)
    assert float(answers["a"][0]) == 1.0
    assert all(isinstance(more[w], RuntimeError) for w in ("boom", "bb"))
    assert float(texts.vector("bb")[0]) == 2.0  # not cached as failed; the next request encodes it
    assert texts._pending == {}


def test_a_thread_that_cannot_start_leaves_no_request_hanging(monkeypatch):
    texts = TextVectors(CountingEncoder())

    class NoThreads(threading.Thread):
        def start(self):
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr("search.coalesce.threading.Thread", NoThreads)
    with pytest.raises(RuntimeError):
        texts.vector("aa")
    monkeypatch.undo()
    assert float(texts.vector("aa")[0]) == 2.0 and texts._pending == {}  # the next request starts a thread
