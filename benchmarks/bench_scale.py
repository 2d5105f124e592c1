"""Scale: seeded clustered vectors through the sharded on-disk index, built by Ray tasks, served from files.

Writes the collection as Parquet parts (``id``, ``vector``), builds the index
with ``indexer.cluster.sharded`` on a Ray of this machine, then opens it in a
fresh process (as a service would) and reports: build time by step, bytes
on disk per vector, the serving process's anonymous and file-backed resident
memory (``/proc/self/smaps_rollup``, before opening and after warm-up) per
vector, recall@10 against an exact scan on held-out queries, with and
without the float16 re-score, and query p50/p99 in-process (one query at a
time, encoder excluded). Sizes: ``--n 1000000`` (default) up to ``10000000``.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import WORKDIR, emit, machine, summary_ms
from benchmarks.datasets import ClusteredVectors

WARMUP = 200


def write_parts(folder, n, dim, parts, source):
    """The collection as ``parts`` Parquet files of (id, vector), each part its own seeded stream."""
    os.makedirs(folder, exist_ok=True)
    paths, edges = [], np.linspace(0, n, parts + 1).astype(np.int64)
    for i in range(parts):
        ids = np.arange(edges[i], edges[i + 1])
        vectors = source.sample(len(ids), stream=10 + i)
        path = os.path.join(folder, f"part-{i:04d}.parquet")
        flat = pa.array(vectors.ravel(), pa.float32())
        pq.write_table(pa.table({"id": ids, "vector": pa.FixedSizeListArray.from_arrays(flat, dim)}), path)
        paths.append(path)
    return paths


def smaps():
    """``(anonymous, file-backed)`` resident bytes of this process."""
    fields = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                fields[name] = int(rest.split()[0]) * 1024
    return fields["Anonymous"], fields["Rss"] - fields["Anonymous"]


def serve(folder, queries_file, truth_file):
    """In the serving process: memory, recall and latency of the on-disk index at ``folder``."""
    from search.index import tuning
    from search.index.ondisk import OnDiskIndex
    from search.runtime import configure_process

    configure_process()
    import faiss

    # one query at a time: a second OpenMP thread only adds barrier waits (benchmarks/RESULTS.md, "Scale")
    faiss.omp_set_num_threads(1)
    queries, truth = np.load(queries_file), np.load(truth_file)
    before = smaps()
    index = OnDiskIndex(folder)
    n = index.ntotal
    for q in queries[:WARMUP]:
        index.search(q[None], 10)
    seconds, found = [], []
    for q in queries:
        start = time.perf_counter()
        _, ids = index.search(q[None], 10)
        seconds.append(time.perf_counter() - start)
        found.append(ids[0])
    after = smaps()
    codes_only = OnDiskIndex(folder, rescore=False)
    _, coarse = codes_only.search(queries, 10)
    return {
        "recall_at_10": round(tuning.recall(np.array(found), truth), 4),
        "recall_at_10_codes_only": round(tuning.recall(coarse, truth), 4),
        "query": summary_ms(seconds),
        "anonymous_bytes_per_vector": round((after[0] - before[0]) / n, 2),
        "file_backed_bytes_per_vector": round((after[1] - before[1]) / n, 2),
        "anonymous_mib": {"before_open": round(before[0] / 2**20, 1), "after_warmup": round(after[0] / 2**20, 1)},
        "file_backed_mib": {"before_open": round(before[1] / 2**20, 1), "after_warmup": round(after[1] / 2**20, 1)},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray")
    parser.add_argument("--workdir", default=os.path.join(WORKDIR, "scale"))
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)  # the serving process's own arguments
    args = parser.parse_args(argv)
    if args.serve:
        print("\n" + json.dumps(serve(*args.serve)))
        return
    from search.runtime import configure_process

    configure_process()
    import ray

    from indexer.cluster.sharded import build_sharded_index
    from search.index.ondisk import exact_search, open_vectors

    base = os.path.join(args.workdir, f"{args.n}x{args.dim}")
    shutil.rmtree(base, ignore_errors=True)
    source = ClusteredVectors(dim=args.dim, clusters=max(10, min(5000, args.n // 1000)))
    start = time.perf_counter()
    parts = write_parts(os.path.join(base, "parts"), args.n, args.dim, args.parts, source)
    generate = time.perf_counter() - start
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    folder = os.path.join(base, "index")
    os.makedirs(folder)
    start = time.perf_counter()
    params = build_sharded_index(ray, parts, folder)
    build_seconds = time.perf_counter() - start
    ray.shutdown()
    queries = source.sample(args.queries, stream=1)
    _, truth = exact_search(open_vectors(folder), queries, 10)
    np.save(os.path.join(base, "queries.npy"), queries)
    np.save(os.path.join(base, "truth.npy"), truth)
    served = subprocess.run([sys.executable, "-m", "benchmarks.bench_scale", "--serve", folder,
                             os.path.join(base, "queries.npy"), os.path.join(base, "truth.npy")],
                            check=True, capture_output=True, text=True).stdout
    size = {name: os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder)}
    emit({
        "machine": machine(),
        "n": args.n, "dim": args.dim, "parts": args.parts,
        "generate_seconds": round(generate, 1),
        "build_seconds": round(build_seconds, 1),
        "build": params,
        "bytes_on_disk": size,
        "bytes_per_vector": {"index_and_lists": round((size["index.faiss"] + size["index.ivfdata"]) / args.n, 1),
                             "with_vectors": round(sum(size.values()) / args.n, 1)},
        "serving": json.loads(served.strip().splitlines()[-1]),  # after faiss's own messages
    })


if __name__ == "__main__":
    main()
