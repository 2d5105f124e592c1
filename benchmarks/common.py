"""What every benchmark reports beside its figures: the machine, the run, timing helpers."""

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone

import numpy as np

# Generated photos, checkpoints and bundles are kept here between runs.
WORKDIR = os.path.join(os.path.expanduser("~"), ".cache", "clipsearch-bench")
# The environment of the README's production command: glibc gives each thread
# its own malloc arena by default, and the memory of 16 server threads then
# grows steadily under load (see RESULTS.md, "Load").
SERVER_ENV = {"MALLOC_ARENA_MAX": "2"}


def machine():
    """The machine and software a figure was measured on (load average: other work competing)."""
    import faiss
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory / 2**30, 1), "gpu": gpu,
        "load_average_1m": round(os.getloadavg()[0], 2), "python": platform.python_version(),
        "faiss": faiss.__version__, "torch": torch.__version__, "numpy": np.__version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable), "-m", _module()] + sys.argv[1:]),
    }


def _module():
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    return spec.name if spec else os.path.splitext(os.path.basename(sys.argv[0]))[0]


def emit(result):
    """Print the one JSON object a benchmark outputs."""
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


def rss_bytes():
    """Resident memory of this process now (Linux), for memory actually held by an index."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def latencies(fn, items, warmup=3):
    """Seconds each call ``fn(item)`` took, after ``warmup`` untimed calls."""
    for item in items[:warmup]:
        fn(item)
    out = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - start)
    return np.asarray(out)


def summary_ms(seconds):
    """p50/p99/mean in milliseconds and queries per second of a latency sample."""
    seconds = np.asarray(seconds)
    return {
        "p50_ms": round(float(np.percentile(seconds, 50)) * 1e3, 3),
        "p99_ms": round(float(np.percentile(seconds, 99)) * 1e3, 3),
        "mean_ms": round(float(seconds.mean()) * 1e3, 3),
        "qps": round(len(seconds) / float(seconds.sum()), 1),
        "n": len(seconds),
    }


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def random_checkpoint(model, workdir=WORKDIR, config=None):
    """A seeded random-init checkpoint of ``model`` (registered from ``config`` if given), saved once.

    Speed does not depend on the weights, and none can be downloaded here.
    """
    path = os.path.join(workdir, f"{model}-seed0.pt")
    if not os.path.exists(path):
        import open_clip
        import torch

        if config:
            open_clip.add_model_config(config)
        os.makedirs(workdir, exist_ok=True)
        torch.manual_seed(0)
        torch.save(open_clip.create_model(model).state_dict(), path + ".tmp")
        os.replace(path + ".tmp", path)
    return path
