"""Seconds spent in each stage of a build: the one place stages are timed.

The runner and the executors call a stage through :meth:`StageTimes.call`
(or hold a :meth:`StageTimes.timed` block around it); the stages themselves
know nothing of time. Waits are stages too (``wait_for_decode``: the model
waiting for decoded files), which is how a build shows what bounds it.
"""

import threading
import time
from contextlib import contextmanager
from functools import partial


class StageTimes:
    def __init__(self):
        self._seconds = {}
        self._lock = threading.Lock()  # a stage may run in another thread (the device decoder)

    def add(self, name, seconds):
        with self._lock:
            self._seconds[name] = self._seconds.get(name, 0.0) + seconds

    def merge(self, seconds):
        """Add ``seconds`` by stage (another process's :meth:`as_dict`)."""
        for name, value in seconds.items():
            self.add(name, value)

    @contextmanager
    def timed(self, name):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def call(self, name, fn, *args):
        """``fn(*args)``, its time counted as stage ``name``."""
        with self.timed(name):
            return fn(*args)

    def wrap(self, name, fn):
        """``fn`` as a callable whose calls count as stage ``name``."""
        return partial(self.call, name, fn)

    def as_dict(self):
        with self._lock:
            return {name: round(seconds, 3) for name, seconds in self._seconds.items()}
