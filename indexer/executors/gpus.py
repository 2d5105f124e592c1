"""One builder process per GPU, when the machine has several.

Each GPU needs its own process: torchvision keeps one nvJPEG decoder per
process and re-creates it whenever the device changes, and on an H200 the
JPEG decoder, not the model, bounds a build (``benchmarks/RESULTS.md``), so
GPUs sharing one process would share that bound. Each process (spawned: CUDA
cannot be forked) runs the local executor (``local.EmbedJob``) on every n-th
file, with its share of the reading threads and CPU cores. The vectors meet
in the build's checkpoint folder, which the parent reads back once all are
done; the parent loads no model.
"""

import os
import threading
from dataclasses import dataclass, replace

from search.errors import InvalidArgumentError, SearchError
from search.runtime import configure_process

from ..errors import BuildError
from ..timing import StageTimes
from .local import Embedding
from .processes import exit_with_parent, next_result, transportable

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


def embed_on_devices(job, devices, files, times):
    """The Embedding of ``files`` by ``job`` (an EmbedJob) in one process per device, without the
    vectors (they are in the checkpoint folder); the processes' stage seconds are added to ``times``."""
    out = None
    for part, seconds in run_shards(_Shard(job), devices, files):
        times.merge(seconds)
        if out is None:
            out = Embedding(part.fingerprint)
        out.read += part.read
        out.skipped += part.skipped
        for name in ("embedded", "reused", "decoded_on_device"):
            setattr(out, name, getattr(out, name) + getattr(part, name))
    return out


@dataclass
class _Shard:
    job: object

    def __call__(self, device, number, count, files):
        """In the builder process of ``device``: ``(Embedding, stage seconds)`` of its share ``files``."""
        configure_process(self.job.config.max_pixels)  # a spawned process starts afresh
        import torch

        kind, _, index = device.partition(":")
        if kind == "cuda" and index:
            torch.cuda.set_device(int(index))  # "cuda" now means this GPU, to the model and the decoder
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // count))
        config = replace(self.job.config, device=kind, gpus=None, workers=-(-self.job.config.workers // count))
        job = replace(self.job, config=config, model=replace(self.job.model, device=kind))
        times = StageTimes()
        part = job.run(files, times, keep_vectors=False, desc=device, position=number)
        return part, times.as_dict()


def run_shards(task, devices, files):
    """``task(device, number, count, share)`` in one process per device, ``share`` being every n-th of
    ``files``; their results in device order. The first error stops them all and is raised."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    n = len(devices)
    processes = [context.Process(target=_shard_main, name=f"build-{device}", args=(
        results, task, device, i, n, files[i::n], os.getpid())) for i, device in enumerate(devices)]
    done = {}
    try:
        for p in processes:
            p.start()
        while len(done) < n:
            running = [p for i, p in enumerate(processes) if i not in done]
            i, error, result = next_result(results, running, _died)
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


def _died(process):
    device = process.name.removeprefix("build-")
    return BuildError(f"the builder process for {device} died (exit code {process.exitcode}); "
                      "run the same command again to resume from the embeddings saved")


def _shard_main(results, task, device, number, count, files, parent):
    threading.Thread(target=exit_with_parent, args=(parent,), daemon=True).start()
    try:
        results.put((number, None, task(device, number, count, files)))
    except BaseException as e:  # noqa: BLE001 - the parent raises it and stops the other processes
        results.put((number, transportable(e, f"the builder process for {device}"), None))
