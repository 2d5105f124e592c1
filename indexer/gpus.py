"""One builder process per GPU, when the machine has several.

Each GPU needs its own process: torchvision keeps one nvJPEG decoder per
process and re-creates it whenever the device changes, and on an H200 the
JPEG decoder, not the model, bounds a build (``benchmarks/RESULTS.md``), so
GPUs sharing one process would share that bound. Each process (spawned: CUDA
cannot be forked) reads, hashes, decodes and embeds every n-th file, with its
share of the reading threads and CPU cores. The vectors meet in the build's
checkpoint folder, which the parent reads back once all are done; the parent
loads no model.
"""

import os
import pickle
import queue
import threading
from dataclasses import replace

from search.errors import InvalidArgumentError, SearchError

from .decode import exit_with_parent
from .errors import BuildError

POLL_S = 0.5
MIN_SHARE = 2048  # files per GPU before another GPU's process is worth starting


def builder_devices(config, files):
    """``cuda:0`` ... ``cuda:{n-1}`` when ``n`` > 1 GPUs are to read ``files`` (a count), else
    ``[config.device]``: the build's own process alone.

    ``n`` is ``--gpus``, else every GPU torch sees, but no more than one per
    ``MIN_SHARE`` files: a process takes seconds to start and load the model.
    """
    if config.device == "cpu":
        return [config.device]
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    wanted = min(count, max(1, files // MIN_SHARE)) if config.gpus is None else config.gpus
    if wanted > count:
        raise InvalidArgumentError(f"--gpus {wanted} was asked for, but torch sees {count} CUDA devices; "
                                   f"use at most {count}, or leave --gpus out" if count else
                                   f"--gpus {wanted} was asked for, but torch sees no CUDA device; leave --gpus out")
    return [f"cuda:{i}" for i in range(wanted)] if wanted > 1 else [config.device]


def run_shards(embed_shard, config, devices, files, progress):
    """``embed_shard(config, device, number, files, progress)`` in one process per device, each
    on every n-th file; their results in device order. The first error stops them all and is raised."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    n = len(devices)
    config = replace(config, workers=-(-config.workers // n))
    processes = [context.Process(target=_shard_main, name=f"build-{device}", args=(
        results, embed_shard, config, device, i, n, files[i::n], progress, os.getpid()))
        for i, device in enumerate(devices)]
    done = {}
    try:
        for p in processes:
            p.start()
        while len(done) < n:
            try:
                i, error, result = results.get(timeout=POLL_S)
            except queue.Empty:
                for i, p in enumerate(processes):
                    if i not in done and p.exitcode is not None:
                        raise BuildError(f"the builder process for {devices[i]} died (exit code {p.exitcode}); "
                                         "run the same command again to resume from the embeddings saved")
                continue
            if isinstance(error, (SearchError, KeyboardInterrupt)):
                raise error
            if error is not None:
                raise BuildError(f"the builder process for {devices[i]} failed: {error!r}") from error
            done[i] = result
    finally:
        for p in processes:
            if p.is_alive():
                p.terminate()
            if p.pid is not None:
                p.join()
    return [done[i] for i in range(n)]


def _shard_main(results, embed_shard, config, device, number, count, files, progress, parent):
    threading.Thread(target=exit_with_parent, args=(parent,), daemon=True).start()
    try:
        import torch

        kind, _, index = device.partition(":")
        if kind == "cuda" and index:
            torch.cuda.set_device(int(index))  # "cuda" now means this GPU, to the model and the decoder
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // count))
        config = replace(config, device=kind, gpus=None)  # one device of this process's own
        results.put((number, None, embed_shard(config, device, number, files, progress)))
    except BaseException as e:  # noqa: BLE001 - the parent raises it and stops the other processes
        try:
            pickle.dumps(e)
        except Exception:  # noqa: BLE001 - what cannot travel is described instead
            e = BuildError(f"the builder process for {device} failed: {e!r}")
        results.put((number, e, None))
