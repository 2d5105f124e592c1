"""Deduplication of a large page of results: the greedy one-row-at-a-time reference against
``ranking.deduplicate`` (blocks of matrix products), on seeded vectors with planted near copies.

    python -m benchmarks.bench_dedupe [--n 10000]    # the reference takes minutes at 10,000
"""

import argparse
import time

import numpy as np

from search.query import ranking

from .common import emit, machine


def greedy(vectors, threshold=ranking.DUPLICATE_THRESHOLD):
    """The definition, as the service ran it before: each row against every row kept so far."""
    keep = []
    for i, v in enumerate(vectors):
        if not keep or np.max(vectors[keep] @ v) < threshold:
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="ranked results to deduplicate")
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    vectors = ranking.normalize(rng.normal(size=(args.n, args.dim)))
    copies = vectors[1::7]  # one row in 7 a near copy of the row before it
    vectors[1::7] = ranking.normalize(vectors[0:-1:7][:len(copies)] + 0.05 * rng.normal(size=copies.shape) / 22)
    timings = {}
    for name, run in (("blocks", lambda: ranking.deduplicate(vectors, max_candidates=args.n)),
                      ("blocks_capped", lambda: ranking.deduplicate(vectors)),
                      ("greedy_reference", lambda: greedy(vectors))):
        started = time.perf_counter()
        kept = run()
        timings[name] = {"seconds": round(time.perf_counter() - started, 3), "kept": len(kept)}
        if name == "blocks":
            blocks = kept
    emit({"benchmark": "dedupe", "machine": machine(), "n": args.n, "dim": args.dim,
          "cap": ranking.DEDUPLICATE_MAX, **timings, "same_as_reference": bool(np.array_equal(blocks, kept))})


if __name__ == "__main__":
    main()
