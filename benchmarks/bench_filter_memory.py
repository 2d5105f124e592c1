"""Memory of one ``path_prefix`` query that keeps most of a large collection, flat and IVF.

A filter that matches 90% of 200,000 vectors once gathered every matching
vector per request (+400 MB). Each case runs in a fresh process: it opens the
bundle, warms up with one query, then runs ``--queries`` filtered queries and
reports the growth of the peak RSS (VmHWM) over that of the warm process and the largest
numpy allocation peak of a query (tracemalloc), against the size of the
matching vectors. Usage: ``python -m benchmarks.bench_filter_memory [--n 200000]``.
"""

import argparse
import json
import os
import subprocess
import sys

from search.errors import BundleError
from search.store.bundle import Bundle
from search.store.manifest import Manifest
from search.store.metadata import ImageRecord
from search.store.writer import commit

from .common import WORKDIR, machine
from .datasets import clustered

DIM = 512
KEEP = 0.9  # of the rows under the prefix

CHILD = """
import sys, time, tracemalloc
import numpy as np
from search.query.searcher import Searcher
from search.errors import BundleError
from search.store.bundle import Bundle
from benchmarks.datasets import clustered
path, queries = sys.argv[1], int(sys.argv[2])
searcher = Searcher(Bundle.open(path, use_gpu=False))
query = clustered(queries + 1, dim=searcher.bundle.dim, seed=0, stream=1)
searcher.search_vector(query[0], k=24, path_prefix="kept")  # warm: pages of the mapped files, faiss buffers
def status_kib(field):  # VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's
    return int(next(l for l in open("/proc/self/status") if l.startswith(field)).split()[1])
warm, numpy_peak, seconds = status_kib("VmHWM"), 0, []
tracemalloc.start()
for q in query[1:]:
    tracemalloc.reset_peak()
    started = time.perf_counter()
    page = searcher.search_vector(q, k=24, path_prefix="kept")
    seconds.append(time.perf_counter() - started)
    numpy_peak = max(numpy_peak, tracemalloc.get_traced_memory()[1])
peak = status_kib("VmHWM")
print(f'{{"index_type": "{searcher.bundle.manifest.index_type}", "total": {page.total}, '
      f'"peak_rss_growth_mb": {(peak - warm) / 1024:.1f}, "traced_peak_per_query_mb": {numpy_peak / 2**20:.1f}, '
      f'"median_ms": {1000 * sorted(seconds)[len(seconds) // 2]:.1f}}}')
"""


def ensure_bundle(path, n, index_type):
    try:
        bundle = Bundle.open(path, use_gpu=False)
        if bundle.count == n:
            return path
    except BundleError:
        pass
    vectors = clustered(n, dim=DIM, seed=0)
    kept = int(n * KEEP)
    records = [ImageRecord(i, f"{'kept' if i < kept else 'other'}/img{i:07d}.jpg", 1, 0, f"{i:064x}", 64, 48)
               for i in range(n)]
    manifest = Manifest(model={"name": "vectors-only", "pretrained": None, "dim": DIM}, dim=DIM,
                        root=os.path.join(path, "no-photos"))
    commit(path, manifest, records, vectors, index_type=index_type)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=6)
    args = parser.parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    report = {"machine": machine(), "n": args.n, "matching": int(args.n * KEEP),
              "matching_vectors_mb": round(args.n * KEEP * DIM * 4 / 2**20, 1), "cases": []}
    for index_type in ("Flat", "IVF1024,PQ64x4fs"):
        path = ensure_bundle(os.path.join(WORKDIR, f"filter-{args.n}-{index_type.split(',')[0]}"), args.n, index_type)
        out = subprocess.run([sys.executable, "-c", CHILD, path, str(args.queries)], capture_output=True,
                             text=True, cwd=root, env={**os.environ, "PYTHONPATH": root}, timeout=900, check=True)
        report["cases"].append(json.loads(out.stdout))
        print(out.stdout.strip(), file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
