"""What every helper process of a build shares: it ends with its parent, and its death is noticed."""

import os
import pickle
import queue
import time

from ..errors import BuildError

POLL_S = 0.5


def exit_with_parent(parent):
    """A process killed with SIGKILL cannot stop its workers (or builder processes); they stop themselves.
    Run in a daemon thread of the child."""
    while os.getppid() == parent:
        time.sleep(POLL_S)
    os._exit(1)


def next_result(results, processes, died):
    """The next item of the multiprocessing queue ``results``; raises ``died(process)`` when one of
    ``processes`` has ended without one (a worker killed by the kernel would otherwise be waited for)."""
    while True:
        try:
            return results.get(timeout=POLL_S)
        except queue.Empty:
            dead = next((p for p in processes if p.exitcode is not None), None)
            if dead is None:
                continue
            try:
                return results.get(timeout=POLL_S)  # what it sent just before it ended
            except queue.Empty:
                raise died(dead) from None


def transportable(error, who):
    """``error`` if it can travel to the parent (pickled), else a BuildError that describes it."""
    try:
        pickle.dumps(error)
        return error
    except Exception:  # noqa: BLE001 - what cannot travel is described instead
        return BuildError(f"{who} failed: {error!r}")
