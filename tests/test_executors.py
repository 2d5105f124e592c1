"""The local executor's parts on their own: decoding ahead (inline, threads, worker processes), the
batch-ahead thread, and the stage timer."""

import multiprocessing
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest

from indexer import BuildError
from indexer.executors.decoding import CHUNK, decode_in_order
from indexer.stages.decode import Decoder
from indexer.stages.embed import one_ahead
from indexer.stages.walk import walk_photos
from indexer.timing import StageTimes
from tests.photos import add_broken_files, make_photo_tree


@pytest.fixture
def files(tmp_path):
    make_photo_tree(tmp_path, 21)
    add_broken_files(tmp_path)
    return list(walk_photos(tmp_path))


@pytest.fixture
def decoder(encoder):
    return Decoder(encoder.preprocess, 100_000_000, encoder.image_size)


def flat(batches):
    items = [(d.photo.rel, d.sha256) for b in batches for d in b.items]
    skipped = [(s.rel, s.reason) for b in batches for s in b.skipped]
    return items, skipped, np.stack([d.pixels for b in batches for d in b.items])


def test_every_way_of_decoding_gives_the_same_batches_in_order(files, decoder):
    times = StageTimes()
    inline = list(decode_in_order(files, decoder, 0, False, times))
    assert len(inline) == -(-len(files) // CHUNK) and set(times.as_dict()) == {"decode"}
    expected = flat(inline)
    assert [rel for rel, _ in expected[0]] == [f.rel for f in files if not f.rel.startswith("broken/")]
    assert len(expected[1]) == 4
    for workers, threads in ((2, True), (2, False), (1, False)):
        got = flat(list(decode_in_order(files, decoder, workers, threads, StageTimes())))
        assert got[:2] == expected[:2], (workers, threads)
        np.testing.assert_array_equal(got[2], expected[2])


@dataclass(frozen=True)
class Broken(Decoder):
    """A decoder with a bug: it raises on every batch, in a worker process or in the builder."""

    def __call__(self, files):
        raise ZeroDivisionError("a bug in a stage")


@dataclass(frozen=True)
class DiesInWorkers(Decoder):
    """Slow in the builder; in a worker process, the process is killed (as by the kernel's OOM killer)."""

    builder: int = field(default_factory=os.getpid)

    def __call__(self, files):
        if os.getpid() != self.builder:
            os._exit(7)
        time.sleep(1)
        return super().__call__(files)


def decode_workers():
    return [p for p in multiprocessing.active_children() if p.name.startswith("decode-")]


def test_a_stage_that_raises_in_a_worker_raises_in_the_build_and_stops_the_workers(files, encoder):
    broken = Broken(encoder.preprocess, 100_000_000, encoder.image_size)
    with pytest.raises(ZeroDivisionError, match="a bug in a stage"):
        list(decode_in_order(files, broken, 2, False, StageTimes()))
    assert decode_workers() == []


def test_a_worker_that_dies_is_an_error_not_a_wait(files, encoder):
    dies = DiesInWorkers(encoder.preprocess, 100_000_000, encoder.image_size)
    start = time.perf_counter()
    with pytest.raises(BuildError, match=r"the decode worker decode-\d died \(exit code 7\); run the same command"):
        list(decode_in_order(files, dies, 2, False, StageTimes()))
    assert time.perf_counter() - start < 30 and decode_workers() == []


def test_one_ahead_works_on_the_next_item_while_the_consumer_has_this_one():
    started = [threading.Event() for _ in range(4)]

    def prepare(i):
        started[i].set()
        return i * 10

    seen = []
    for future in one_ahead(prepare, range(4)):
        value = future.result()
        if value < 30:
            assert started[value // 10 + 1].wait(10), "the next item was not under way"
        seen.append(value)
    assert seen == [0, 10, 20, 30]


def test_one_ahead_stops_its_thread_with_the_consumer_and_passes_errors_on():
    ahead = one_ahead(lambda i: 1 // i, [1, 0, 1])
    assert next(ahead).result() == 1
    with pytest.raises(ZeroDivisionError):
        next(ahead).result()
    ahead.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("device-decode")]


def test_stage_times_add_up_calls_threads_and_other_processes():
    times = StageTimes()
    assert times.call("load", max, 1, 2) == 2
    with pytest.raises(ZeroDivisionError):
        times.call("failing", lambda: 1 / 0)
    sleep = times.wrap("decode_on_device", time.sleep)
    threads = [threading.Thread(target=sleep, args=(0.05,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in range(3):
        times.merge({"embed": 0.0004})  # sums small values before rounding
    seconds = times.as_dict()
    assert set(seconds) == {"load", "failing", "decode_on_device", "embed"}
    assert seconds["decode_on_device"] >= 0.2 and seconds["embed"] == 0.001
