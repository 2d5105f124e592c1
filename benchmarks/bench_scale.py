"""Scale: a synthetic collection built into a bundle with an on-disk index, served from its files.

Writes seeded clustered vectors (float16) with synthetic metadata (path,
size, mtime, sha256, width, height, taken_at, camera) as Parquet parts, as
a ``--ray`` build's shards hold them, then commits a bundle generation
through the code of ``python -m indexer build --ray --index-type ondisk``
(``indexer.cluster.sharded.commit_ondisk``) on a Ray of this machine, and
measures: build time by step and the metadata bulk load's rows/s, bytes on
disk per vector, and in a fresh serving process (``Bundle`` + ``Searcher``,
as the service opens it) anonymous and file-backed resident memory per
vector after warm-up (``/proc/self/smaps_rollup``), recall@10 against an
exact scan on held-out queries and query p50/p99 one at a time, encoder
excluded (by vector); then the same bundle under gunicorn (``web:create_app``)
answering "more like this image" (``{"id": ...}``) over HTTP. The manifest
names a seeded random ViT-B-32 (``common.random_checkpoint``), which the
service loads. Everything it wrote is removed at the end (``--keep`` keeps
the bundle). Sizes: ``--n 1000000`` (default) up to ``10000000``.
"""

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import WORKDIR, emit, machine, random_checkpoint, summary_ms
from benchmarks.datasets import ClusteredVectors

WARMUP = 200
CAMERAS = ("Canon EOS R5", "NIKON Z 6", "iPhone 13", "Pixel 7", None)
EPOCH_NS = 1_600_000_000 * 10**9


def synthetic_columns(ids):
    """Metadata columns of the synthetic photos ``ids``, as a build's shards hold them."""
    rng = np.random.default_rng(ids[0] if len(ids) else 0)
    n = len(ids)
    mtimes = EPOCH_NS + rng.integers(0, 10**17, n)
    taken = [None if i % 3 == 0 else time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(t) // 10**9))
             for i, t in zip(ids.tolist(), mtimes.tolist())]
    return {
        "path": [f"{i // 100_000:04d}/{(i // 1000) % 100:02d}/img_{i:09d}.jpg" for i in ids.tolist()],
        "size": rng.integers(500_000, 8_000_000, n),
        "mtime_ns": mtimes,
        "sha256": [hashlib.sha256(str(i).encode()).hexdigest() for i in ids.tolist()],
        "width": np.full(n, 4000), "height": np.full(n, 3000),
        "taken_at": taken,
        "camera": [CAMERAS[i % len(CAMERAS)] for i in ids.tolist()],
    }


def write_parts(folder, n, parts, source, tasks=None):
    """The collection as ``parts`` Parquet files (metadata columns and a float16 ``vector``, unless
    ``source`` is None), each its own seeded stream, written by ``tasks`` (``sharded.Tasks``; default
    here); returns ``[(path, ids)]``."""
    from indexer.cluster.sharded import Tasks

    os.makedirs(folder, exist_ok=True)
    edges = np.linspace(0, n, parts + 1).astype(np.int64)
    calls = [(os.path.join(folder, f"part-{i:04d}.parquet"), int(edges[i]), int(edges[i + 1]), source, i)
             for i in range(parts)]
    return (tasks or Tasks()).map(_write_part, calls)


def _write_part(path, first, stop, source, number, chunk_rows=262_144):
    ids = np.arange(first, stop)
    with contextlib.ExitStack() as stack:
        writer = None
        for start in range(0, len(ids), chunk_rows):  # bounded memory per part
            chunk = ids[start:start + chunk_rows]
            columns = synthetic_columns(chunk)
            if source is not None:
                vectors = source.sample(len(chunk), stream=(10 + number) * 1000 + start // chunk_rows)
                columns["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.astype(np.float16).ravel()),
                                                                      source.dim)
            table = pa.table(columns)
            writer = writer or stack.enter_context(pq.ParquetWriter(path, table.schema))
            writer.write_table(table)
    return path, ids


def build(bundle_dir, parts, fingerprint, tasks):
    """The bundle of ``parts`` through the sharded on-disk commit; returns its manifest."""
    from indexer.cluster.sharded import Piece, commit_ondisk, parquet_rows
    from search.store.manifest import Manifest

    manifest = Manifest(model=fingerprint.to_dict(), dim=fingerprint.dim, root=os.path.join(bundle_dir, "no-photos"))
    ids = np.concatenate([i for _, i in parts])
    pieces = [Piece(path, None, rows) for path, rows in parts]
    return commit_ondisk(tasks, bundle_dir, manifest, ids, parquet_rows(parts), pieces)


def metadata_only(base, n, parts):
    """Rows per second of the metadata bulk load alone (``search.store.metadata.load_metadata``) from parts."""
    from indexer.cluster.sharded import parquet_rows
    from search.store.metadata import load_metadata

    written = write_parts(os.path.join(base, "parts"), n, parts, None)
    path = os.path.join(base, "metadata.sqlite")
    start = time.perf_counter()
    load_metadata(path, parquet_rows(written))
    seconds = time.perf_counter() - start
    return {"n": n, "seconds": round(seconds, 1), "rows_per_second": round(n / seconds),
            "bytes_per_row": round(os.path.getsize(path) / n, 1)}


def smaps(pid="self"):
    """``(anonymous, file-backed)`` resident bytes of a process."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                fields[name] = int(rest.split()[0]) * 1024
    return fields["Anonymous"], fields["Rss"] - fields["Anonymous"]


def serve(bundle_dir, queries_file, truth_file):
    """In a fresh serving process: memory, recall and latency of the bundle, searched by vector."""
    from search.runtime import configure_process

    configure_process()
    import faiss

    from search.index import tuning
    from search.query.searcher import Searcher
    from search.store.bundle import Bundle

    # one query at a time: a second OpenMP thread only adds barrier waits (benchmarks/RESULTS.md, "Scale")
    faiss.omp_set_num_threads(1)
    queries, truth = np.load(queries_file), np.load(truth_file)
    before = smaps()
    start = time.perf_counter()
    searcher = Searcher(Bundle.open(bundle_dir, use_gpu=False))
    opened = time.perf_counter() - start
    n = searcher.bundle.count
    for q in queries[:WARMUP]:
        searcher.search_vector(q, k=10)
    seconds, found = [], []
    for q in queries:
        start = time.perf_counter()
        page = searcher.search_vector(q, k=10)
        seconds.append(time.perf_counter() - start)
        found.append([r.id for r in page.results] + [-1] * (10 - len(page.results)))
    after = smaps()
    relevance = []  # as /api/search asks: with the relevance cut, whose background sample reads 1,024 rows
    for q in queries:
        start = time.perf_counter()
        searcher.search_vector(q, k=10, relevance=True)
        relevance.append(time.perf_counter() - start)
    return {
        "open_seconds": round(opened, 2),
        "recall_at_10": round(tuning.recall(np.array(found), truth), 4),
        "query": summary_ms(seconds),
        "query_with_relevance_cut": summary_ms(relevance),
        "anonymous_bytes_per_vector": round((after[0] - before[0]) / n, 2),
        "file_backed_bytes_per_vector": round((after[1] - before[1]) / n, 2),
        "anonymous_mib": {"before_open": round(before[0] / 2**20, 1), "after_warmup": round(after[0] / 2**20, 1)},
        "file_backed_mib": {"before_open": round(before[1] / 2**20, 1), "after_warmup": round(after[1] / 2**20, 1)},
    }


def over_http(bundle_dir, n, count):
    """p50/p99 of ``count`` "more like this image" requests, one at a time, to gunicorn serving the bundle."""
    from benchmarks.http_load import production_server

    ids = np.random.default_rng(3).integers(0, n, WARMUP + count).tolist()
    with production_server(bundle_dir, ["--workers", "1", "--threads", "4"],
                           env={"PHOTOSEARCH_WARMUP": "false"}) as (url, _, ready):
        conn = http.client.HTTPConnection(url.split("//")[1], timeout=60)
        seconds = []
        for i, image_id in enumerate(ids):
            start = time.perf_counter()
            conn.request("POST", "/api/search", json.dumps({"id": image_id, "k": 10}),
                         {"Content-Type": "application/json"})
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"/api/search answered {response.status}: {body[:200]!r}")
            if i >= WARMUP:
                seconds.append(time.perf_counter() - start)
        conn.close()
        return {"ready_seconds": round(ready, 1), "more_like_this": summary_ms(seconds)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--http-queries", type=int, default=500)
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray")
    parser.add_argument("--workdir", default=os.path.join(WORKDIR, "scale"))
    parser.add_argument("--keep", action="store_true", help="keep the bundle (parts are removed after the build)")
    parser.add_argument("--metadata-only", action="store_true", help="measure the metadata bulk load alone")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)  # the serving process's own arguments
    args = parser.parse_args(argv)
    if args.serve:
        print("\n" + json.dumps(serve(*args.serve)))
        return
    if args.metadata_only:
        base = os.path.join(args.workdir, f"metadata-{args.n}")
        shutil.rmtree(base, ignore_errors=True)
        try:
            emit({"machine": machine(), "metadata_bulk_load": metadata_only(base, args.n, args.parts)})
        finally:
            shutil.rmtree(base, ignore_errors=True)
        return
    from search.runtime import configure_process

    configure_process()
    import ray

    from indexer.cluster.sharded import Tasks
    from search.encoding.encoder import load_encoder
    from search.index.ondisk import exact_search
    from search.store.bundle import VECTORS_FILE, Bundle
    from search.store.vectors import VectorFile

    fingerprint = load_encoder("ViT-B-32", random_checkpoint("ViT-B-32"), device="cpu").fingerprint
    base = os.path.join(args.workdir, f"{args.n}")
    shutil.rmtree(base, ignore_errors=True)
    bundle_dir = os.path.join(base, "bundle")
    try:
        source = ClusteredVectors(dim=fingerprint.dim, clusters=max(10, min(5000, args.n // 1000)))
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        start = time.perf_counter()
        parts = write_parts(os.path.join(base, "parts"), args.n, args.parts, source, Tasks(ray))
        generate = time.perf_counter() - start
        start = time.perf_counter()
        manifest = build(bundle_dir, parts, fingerprint, Tasks(ray))
        build_seconds = time.perf_counter() - start
        ray.shutdown()
        shutil.rmtree(os.path.join(base, "parts"))  # the bundle holds everything now
        gen = os.path.join(bundle_dir, manifest.generation_dir)
        queries = source.sample(args.queries, stream=1)
        stored = VectorFile(os.path.join(gen, VECTORS_FILE))
        _, truth = exact_search(stored, queries, 10)  # rows, which are the ids here
        stored.close()
        np.save(os.path.join(base, "queries.npy"), queries)
        np.save(os.path.join(base, "truth.npy"), truth)
        served = subprocess.run([sys.executable, "-m", "benchmarks.bench_scale", "--serve", bundle_dir,
                                 os.path.join(base, "queries.npy"), os.path.join(base, "truth.npy")],
                                check=True, capture_output=True, text=True).stdout
        http = over_http(bundle_dir, args.n, args.http_queries)
        size = {name: os.path.getsize(os.path.join(gen, name)) for name in os.listdir(gen)}
        steps = manifest.index_params["build_seconds"]
        emit({
            "machine": machine(),
            "n": args.n, "dim": fingerprint.dim, "parts": args.parts, "cpus": args.cpus,
            "index_type": manifest.index_type,
            "search": manifest.index_params["search"],
            "tuned_recall_at_10": manifest.index_params["recall_at_10"],
            "generate_seconds": round(generate, 1),
            "build_seconds": round(build_seconds, 1),
            "build_steps_seconds": steps,
            "metadata_rows_per_second": round(args.n / steps["metadata"]),
            "bytes_on_disk": size,
            "bytes_per_vector": {name: round(b / args.n, 1) for name, b in size.items()} | {
                "total": round(sum(size.values()) / args.n, 1)},
            "serving": json.loads(served.strip().splitlines()[-1]),  # after faiss's own messages
            "http": http,
            "bundle_opens": Bundle.open(bundle_dir, use_gpu=False).count == args.n,
        })
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
