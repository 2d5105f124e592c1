"""Approximate vs exact search on seeded clustered vectors: recall@10, queries/s, bytes/vector, build time.

    python -m benchmarks.bench_ann --size medium          # 100k x 512
    python -m benchmarks.bench_ann --size large           # 1M x 512
    python -m benchmarks.bench_ann --n 300000 --pq 128,64

The reference is exact search in numpy; every candidate is checked against it
on held-out queries. The flat baseline and each IVF-PQ type the builder can
choose go through the same path as ``Searcher.search``: the index proposes
candidates, which are re-scored exactly from a memory-mapped ``vectors.npy``.
Prints one JSON object.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

from search.index import ann
from search.index import choice
from search.index import tuning

from .common import emit, latencies, machine, summary_ms, timed
from .datasets import collection_and_queries, exact_top_k

SIZES = {"small": 20_000, "medium": 100_000, "large": 1_000_000, "huge": 10_000_000}
K = 10


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="medium")
    parser.add_argument("--n", type=int, help="collection size (overrides --size)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries for recall and batch speed")
    parser.add_argument("--single", type=int, default=200, help="queries timed one at a time")
    parser.add_argument("--pq", default="auto", help="PQ code sizes to build, e.g. 128,64 ('auto': the default budget's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    info = machine()  # the load average as the run starts: other work competing for the CPU
    n = args.n or SIZES[args.size]

    (vectors, queries), gen_s = timed(collection_and_queries, n, args.queries, dim=args.dim, seed=args.seed)
    ids = np.arange(n, dtype=np.int64) * 2 + 1  # ids are not row numbers, as in a bundle after deletions
    (_, truth_rows), ref_s = timed(exact_top_k, vectors, queries, K)
    truth = ids[truth_rows]
    lists = choice.list_count(n)
    sizes = [int(m) for m in args.pq.split(",")] if args.pq != "auto" else [
        int(choice.choose_index(n, args.dim, flat_max_vectors=0).index_type.split("PQ")[1].split("x")[0])]
    with tempfile.TemporaryDirectory() as tmp:
        stored_path = os.path.join(tmp, "vectors.npy")
        np.save(stored_path, vectors)
        stored = np.load(stored_path, mmap_mode="r")  # the refine reads what a bundle stores
        results = [measure(tmp, "Flat", ids, vectors, stored, queries, truth, args.single)]
        for m in sizes:
            results.append(measure(tmp, f"IVF{lists},PQ{m}x4fs", ids, vectors, stored, queries, truth, args.single))
    flat = results[0]
    for r in results[1:]:
        r["speedup_vs_flat_single"] = round(r["single"]["qps"] / flat["single"]["qps"], 1)
        r["speedup_vs_flat_batch"] = round(r["batch_qps"] / flat["batch_qps"], 1)
        r["targets_met"] = {
            "recall_at_10 >= 0.95": r["recall_at_10"] >= 0.95,
            ">= 20x flat queries/s (one query at a time)": r["speedup_vs_flat_single"] >= 20,
            "<= 128 bytes per vector": r["bytes_per_vector"] <= 128,
        }
    emit({
        "benchmark": "ann", "machine": info, "n": n, "dim": args.dim, "queries": args.queries,
        "k": K, "data": "benchmarks.datasets.collection_and_queries (seeded, clustered, unit norm)",
        "generate_s": round(gen_s, 1), "reference_exact_numpy_s": round(ref_s, 1),
        "builder_choice_default_budget": choice.choose_index(n, args.dim).index_type,
        "indexes": results,
    })


def measure(tmp, index_type, ids, vectors, stored, queries, truth, single):
    (index, chosen, params), build_s = timed(
        choice.build_chosen, ids, vectors, index_type=index_type)
    path = os.path.join(tmp, ann.INDEX_FILE)
    ann.save_index(index, path)
    del index
    loaded = ann.load_index(path, use_gpu=False, params=params.get("search"), mmap=False)
    n = len(ids)

    def one(query):
        _, found = ann.search(loaded, query[None, :], ann.candidate_count(loaded, K))
        return tuning.refine(found, query[None, :], ids, stored, K)[0]  # exact, as Searcher.search does

    exact = index_type == ann.FLAT
    # Flat is slow at 1M, even in a batch (RESULTS.md, "Approximate search"): checked on fewer queries.
    batch_q = queries[:100] if exact else queries
    (_, batch_found), batch_s = timed(ann.search, loaded, batch_q, ann.candidate_count(loaded, K))
    found = batch_found if exact else np.array([one(q) for q in queries])
    count = min(single, 30 if exact else len(queries))
    result = {
        "index_type": chosen,
        "build_s": round(build_s, 1),
        "bytes_per_vector": round(os.path.getsize(path) / n, 1),
        "rss_bytes_per_vector": round(held_bytes(path) / n, 1),
        "recall_at_10": round(tuning.recall(found, truth[:len(found)]), 4),
        "recall_queries": len(found),
        "single": summary_ms(latencies(one, list(queries[:count]))),
        "batch_qps": round(len(batch_q) / batch_s, 1),
        "params": {k: v for k, v in params.items() if k != "reason"},
    }
    return result


def held_bytes(path):
    """Resident memory that loading the index at ``path`` adds, measured in a fresh process."""
    script = ("import faiss, sys; from benchmarks.common import rss_bytes; b = rss_bytes(); "
              "i = faiss.read_index(sys.argv[1]); print(rss_bytes() - b)")
    out = subprocess.run([sys.executable, "-c", script, path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


if __name__ == "__main__":
    main()
