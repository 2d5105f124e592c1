"""Text vectors of the service: the encoder's own, concurrent texts batched, recent ones cached."""

import threading

import numpy as np
import pytest

from web.texts import TextVectors


class CountingEncoder:
    """A stand-in for ``encode_texts`` that records every call; ``gate`` holds the first call.

    ``entered`` is set when a call begins; ``clock`` (a :class:`Clock`) is
    moved on by ``seconds`` in each call, as the time the model took.
    """

    def __init__(self, gate=None, seconds=0.0, clock=None):
        self.calls = []
        self.threads = set()  # the threads that called the model
        self.gate = gate
        self.seconds = seconds
        self.clock = clock
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, texts):
        with self._lock:
            self.calls.append(list(texts))
            self.threads.add(threading.get_ident())
        self.entered.set()
        if self.gate is not None and len(self.calls) == 1:
            assert self.gate.wait(10)
        if self.clock is not None:
            self.clock.advance(self.seconds)
        if "boom" in texts:
            raise RuntimeError("the model failed")
        return np.stack([np.full(4, float(len(t)), np.float32) for t in texts])


class Clock:
    """A clock that moves only when told: the coalescer's view of how long calls took and how long ago."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def ask_together(texts, words):
    """``texts.encode_texts([word])`` of each word from its own thread; returns the answers (or errors) by word."""
    answers = {}

    def ask(word):
        try:
            answers[word] = texts.encode_texts([word])[0]
        except RuntimeError as e:
            answers[word] = e

    threads = [threading.Thread(target=ask, args=(w,)) for w in words]
    for thread in threads:
        thread.start()
    return threads, answers


def wait_for_queue(texts, length):
    """Until ``length`` texts wait for the next call (the coalescer announces every arrival)."""
    calls = texts._calls
    with calls._arrived:
        assert calls._arrived.wait_for(lambda: len(calls._queue) == length, timeout=10), calls._queue


def join_all(*groups):
    for threads in groups:
        for thread in threads:
            thread.join(10)
            assert not thread.is_alive()


def test_vectors_are_the_encoders(encoder):
    texts = TextVectors(encoder.encode_texts)
    for text in ("a dog on a beach", "a dog on a beach", "snow"):
        np.testing.assert_allclose(texts.encode_texts([text])[0], encoder.encode_texts([text])[0], atol=1e-6)
    batch = ["snow", "a red boat", "snow", "a cat"]  # cached, new and repeated texts in one call
    np.testing.assert_allclose(texts.encode_texts(batch), encoder.encode_texts(batch), atol=1e-6)
    assert texts.encode_texts([]).shape == (0, encoder.dim)


def test_recent_texts_come_from_the_cache_least_recent_out():
    encode = CountingEncoder()
    texts = TextVectors(encode, cache_size=2)
    for text in ("a", "bb", "a", "ccc", "a", "bb"):
        texts.encode_texts([text])
    assert encode.calls == [["a"], ["bb"], ["ccc"], ["bb"]]  # "bb" was the least recent when "ccc" came
    texts.encode_texts(["a"])[0, 0] = 99.0  # a caller's answer is its own: the cache keeps the vector
    assert float(texts.encode_texts(["a"])[0, 0]) == 1.0 and len(encode.calls) == 4


def test_no_cache_means_the_model_every_time():
    encode = CountingEncoder()
    texts = TextVectors(encode, cache_size=0)
    texts.encode_texts(["a"])
    texts.encode_texts(["a"])
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
            if texts.encode_texts([word])[0, 0] != len(word):
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
    assert encode.entered.wait(10)
    words = ["bb", "ccc", "bb", "dddd", "ccc"]  # repeats: one encoding per distinct text
    threads, more = ask_together(texts, words)
    wait_for_queue(texts, 3)
    gate.set()
    join_all(first, threads)
    answers.update(more)
    assert sorted(map(sorted, encode.calls)) == [["a"], ["bb", "ccc", "dddd"]]
    assert {w: float(v[0]) for w, v in answers.items()} == {w: float(len(w)) for w in ["a", *words]}


def test_under_load_the_next_call_waits_for_as_many_texts_as_the_last():
    """After a call of 3, texts that come in one by one while it is recent share one call; once a call's
    own time has passed since the last one ended, a lone text is encoded at once. The coalescer's clock
    is the test's: the windows hold however slowly the machine runs the threads."""
    clock, gate = Clock(), threading.Event()
    encode = CountingEncoder(gate, seconds=0.4, clock=clock)
    texts = TextVectors(encode, cache_size=0, clock=clock)
    first, _ = ask_together(texts, ["a"])
    assert encode.entered.wait(10)
    burst, _ = ask_together(texts, ["b", "c", "d"])
    wait_for_queue(texts, 3)
    gate.set()
    join_all(first, burst)  # the call of 3 has just ended, by the clock: its window is open
    trickle = []
    for i, word in enumerate(("e", "f", "g")):
        trickle += ask_together(texts, [word])[0]
        if i < 2:  # the call waits for the third text (as many as the last call had)
            wait_for_queue(texts, i + 1)
    join_all(trickle)
    assert encode.calls == [["a"], ["b", "c", "d"], ["e", "f", "g"]]
    clock.advance(0.5)  # longer than the last call took: the load is over
    texts.encode_texts(["h"])
    assert encode.calls[-1] == ["h"]
    assert len(encode.threads) == 1  # one thread ran every call, across the pause


def test_a_failed_encoding_fails_its_requests_only():
    gate = threading.Event()
    encode = CountingEncoder(gate)
    texts = TextVectors(encode)
    first, answers = ask_together(texts, ["a"])
    assert encode.entered.wait(10)
    threads, more = ask_together(texts, ["boom", "bb"])  # one batch, which fails
    wait_for_queue(texts, 2)
    gate.set()
    join_all(first, threads)
    assert float(answers["a"][0]) == 1.0
    assert all(isinstance(more[w], RuntimeError) for w in ("boom", "bb"))
    assert float(texts.encode_texts(["bb"])[0, 0]) == 2.0  # not cached as failed; the next request encodes it
    assert texts._pending == {}


def test_a_thread_that_cannot_start_leaves_no_request_hanging(monkeypatch):
    texts = TextVectors(CountingEncoder())

    class NoThreads(threading.Thread):
        def start(self):
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr("web.coalesce.threading.Thread", NoThreads)
    with pytest.raises(RuntimeError):
        texts.encode_texts(["aa"])
    monkeypatch.undo()
    assert float(texts.encode_texts(["aa"])[0, 0]) == 2.0 and texts._pending == {}  # the next request starts a thread
