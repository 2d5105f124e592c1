"""Decoding in worker processes at idle priority, with the builder decoding too rather than wait.

A worker that preempts one of the encoder's threads stalls all of them at
the next barrier: measured on 2 cores, that cost as much as decoding in
series. So the workers run at idle priority, on the cycles the encoder
leaves, and whenever the next chunk is not ready the builder decodes the
earliest chunk no worker has started instead of waiting with cores idle.
Whoever takes a chunk first marks it in a shared byte per chunk (under a
lock), and the other side skips it: every chunk is decoded exactly once.
"""

import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections import deque

from ..errors import BuildError
from .processes import exit_with_parent, next_result, transportable

AHEAD = 4  # chunks in flight per worker: enough to keep it busy, few enough to keep memory flat


def decode_in_workers(job, chunks, workers, times):
    """``job(chunk)`` for each of ``chunks``, in order, by ``workers`` processes and this one.

    ``job`` is picklable (a stage with its settings); ``times`` records this
    process's own ``decode`` and its ``wait_for_decode``.
    """
    # fork starts workers at once (as torch's DataLoader does); spawn would
    # re-import torch and open_clip in each, several seconds.
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    claims = context.Array("b", len(chunks))  # 1: a worker or this process has taken the chunk
    tasks, results = context.Queue(), context.Queue()
    tasks.cancel_join_thread()  # chunks this process took itself may stay unread by the workers
    processes = [context.Process(target=_work, args=(job, claims, tasks, results, os.getpid()),
                                 name=f"decode-{i}", daemon=True) for i in range(workers)]
    for p in processes:
        p.start()
    try:
        done = {}  # chunk number: its results, decoded here or received from a worker
        window = deque()  # numbers of the chunks handed out, oldest first
        upcoming = iter(range(len(chunks)))

        def hand_out():
            number = next(upcoming, None)
            if number is not None:
                window.append(number)
                tasks.put((number, chunks[number]))

        for _ in range(AHEAD * workers):
            hand_out()
        while window:
            head = window[0]
            _collect(results, done)
            while head not in done:
                free = next((n for n in window if n not in done and claim(claims, n)), None)
                if free is None:  # every chunk handed out is taken: wait for the head
                    break
                done[free] = times.call("decode", job, chunks[free])
                _collect(results, done)
            window.popleft()
            hand_out()
            if head not in done:
                with times.timed("wait_for_decode"):
                    while head not in done:
                        _store(next_result(results, processes, _died), done)
            yield done.pop(head)
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            p.join()
        tasks.close()
        results.close()


def claim(claims, number):
    """Whether the caller is the first to take chunk ``number`` (a worker, or the builder instead of waiting)."""
    with claims.get_lock():
        if claims[number]:
            return False
        claims[number] = 1
        return True


def lowest_priority():
    """Run only on cycles nothing else wants (Linux's SCHED_IDLE), else at the lowest nice level."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or a sandbox that forbids it
        os.nice(19)


def _work(job, claims, tasks, results, parent):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the builder's to handle: it stops the workers
    threading.Thread(target=exit_with_parent, args=(parent,), daemon=True).start()
    import torch

    # One thread: parallelism comes from the processes, and a forked child must
    # not enter an OpenMP region that its parent started (it would hang).
    torch.set_num_threads(1)
    lowest_priority()
    while True:
        number, chunk = tasks.get()
        if not claim(claims, number):
            continue  # the builder decoded it already
        try:
            results.put((number, job(chunk), None))
        except Exception as e:  # noqa: BLE001 - not a bad file (the stages skip those): the builder raises it
            results.put((number, None, transportable(e, f"the decode worker {multiprocessing.current_process().name}")))


def _collect(results, done):
    """Store what the workers have finished, without waiting."""
    while True:
        try:
            item = results.get_nowait()
        except queue.Empty:
            return
        _store(item, done)


def _store(item, done):
    number, decoded, error = item
    if error is not None:
        raise error
    done[number] = decoded


def _died(process):
    return BuildError(f"the decode worker {process.name} died (exit code {process.exitcode}); "
                      "run the same command again to resume from the embeddings saved")
