"""Cost of decoding hostile and large query images: the indexer's decode (what the service used) against the
query decode (``load_query_image``: its own pixel limit from the header, one decode per core, reduced).

Each case runs in a fresh process, so its peak RSS is its own: the figure is
the growth of the peak over the process's RSS before the decode. Usage:
``python -m benchmarks.bench_query_images [--copies 4]``.
"""

import argparse
import json
import os
import subprocess
import sys

from PIL import Image

from .common import WORKDIR, machine

# name: (size, mode, format options); the first two are the audit's files.
FILES = {
    "webp-lossless-16383x6100": ((16383, 6100), "RGB", {"format": "WEBP", "lossless": True, "method": 0}),
    "png-1bit-10000x10000": ((10000, 10000), "1", {"format": "PNG", "optimize": True}),
    "webp-lossless-rgba-24mp": ((6000, 4000), "RGBA", {"format": "WEBP", "lossless": True, "method": 0}),
}

CHILD = """
import sys, threading, time
from search.encoding.images import load_image, load_query_image
from search.errors import ImageError
path, how, copies = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(path, "rb").read()
def status_kib(field):  # VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's
    return int(next(l for l in open("/proc/self/status") if l.startswith(field)).split()[1])
before, outcome = status_kib("VmRSS"), []
def one():
    try:
        if how == "index":
            image, _ = load_image(data, max_pixels=100_000_000, min_size=224)
        else:
            image, _ = load_query_image(data, max_pixels=25_000_000, min_size=224)
        outcome.append("x".join(map(str, image.size)))
    except ImageError as e:
        outcome.append(e.code)
started = time.perf_counter()
threads = [threading.Thread(target=one) for _ in range(copies)]
[t.start() for t in threads]
[t.join() for t in threads]
seconds = time.perf_counter() - started
peak = status_kib("VmHWM")
print(f'{{"seconds": {seconds:.3f}, "peak_growth_mb": {(peak - before) / 1024:.0f}, '
      f'"after_mb": {status_kib("VmRSS") / 1024:.0f}, "outcome": "{sorted(set(outcome))}"}}')
"""


def make_files():
    folder = os.path.join(WORKDIR, "query-images")
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name, (size, mode, options) in FILES.items():
        path = paths[name] = os.path.join(folder, f"{name}.{options['format'].lower()}")
        if not os.path.exists(path):
            Image.new(mode, size, 1 if mode == "1" else (200, 30, 40, 255)[:len(mode)]).save(path, **options)
    return paths


def run(path, how, copies):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", CHILD, path, how, str(copies)], capture_output=True, text=True,
                         cwd=root, env={**os.environ, "PYTHONPATH": root}, timeout=600, check=True)
    return json.loads(out.stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4, help="the same image decoded by this many threads at once")
    args = parser.parse_args(argv)
    report = {"machine": machine(), "cases": []}
    for name, path in make_files().items():
        for copies in (1, args.copies):
            for how in ("index", "query"):  # interleaved: the same load for both
                case = {"file": name, "bytes": os.path.getsize(path), "copies": copies, "decode": how,
                        **run(path, how, copies)}
                report["cases"].append(case)
                print(json.dumps(case), file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
