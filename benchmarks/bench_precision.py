"""Encoder precision: speed and fidelity of ``--precision int8`` (with ``auto``'s bf16 try) against fp32, in one run.

    python -m benchmarks.bench_precision                      # ~30 min on 2 busy cores
    python -m benchmarks.bench_precision --no-build --rounds 2

The model is a seeded random-init ViT-B-32 (``common.random_checkpoint``);
the reduced encoder is made from the float32 one exactly as ``load_encoder``
does (``search.encoding.precision.reduce``, the guard included, timed).
Figures, with the two precisions interleaved batch by batch (ABBA) so that
other work on a shared machine weighs on both alike:

- encoder images/s at batch 64 on generated photos, and the lowest cosine to
  fp32 over all of them;
- text queries: in-process p50 of one query (encode + exact search over 10k
  vectors), and how many of the queries get the same top 10 over those 10k
  seeded clustered vectors (bench_query's collection) and over the photos;
- ``python -m indexer build`` end to end, marginal images/s (bench_index's
  method) on 2 MP and 12 MP JPEGs, ``--precision auto`` and ``fp32`` in turn.

Prints one JSON object, with the CPU's model and the flags that matter.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from .bench_index import PHOTO_SIZES, marginal_build
from .bench_query import texts
from .common import WORKDIR, emit, machine, random_checkpoint, summary_ms
from .datasets import clustered, exact_top_k, natural_photo, write_photo_folder

FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=256, help="generated photos encoded in each precision")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--vectors", type=int, default=10_000, help="collection the text queries rank")
    parser.add_argument("--build", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--build-photos", default="2mp:96,12mp:64", help="end-to-end builds: SIZE:COUNT,...")
    parser.add_argument("--build-batch-size", type=int, default=32)
    parser.add_argument("--workdir", default=WORKDIR)
    args = parser.parse_args(argv)
    info = machine()  # the load average as the run starts: other work competing for the CPU
    import torch

    from search.encoding.encoder import load_encoder
    from search.encoding.precision import reduce

    checkpoint = random_checkpoint("ViT-B-32", args.workdir)
    fp32 = load_encoder("ViT-B-32", checkpoint, device="cpu", precision="fp32")
    start = time.perf_counter()
    auto = reduce(fp32, "int8", auto=True)  # int8, or bf16 where the CPU has it natively and it is faster
    guard_s = time.perf_counter() - start
    encoders = {"fp32": fp32, "auto": auto}
    result = {
        "benchmark": "precision", "machine": info, "cpu_flags": cpu_flags(), "torch_threads": torch.get_num_threads(),
        "auto_is": auto.fingerprint.describe(), "guard_and_quantise_s": round(guard_s, 1),
    }
    progress("load", result)
    for part, measure in (("images", images), ("texts", text_queries)):
        result[part] = measure(encoders, args)
        progress(part, result[part])
    if args.build:
        result["build"] = builds(args, checkpoint)
        progress("build", result["build"])
    result["targets"] = targets(result)
    emit(result)


def progress(part, figures):
    """Each part's figures on stderr as soon as they are measured (a run on a busy machine may be cut short)."""
    shown = {k: v for k, v in figures.items()
             if not isinstance(v, dict) or k in ("images_per_s", "in_process", "machine", "cpu_flags")}
    print(json.dumps({part: shown}, default=str), file=sys.stderr, flush=True)


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return None
    return {flag: flag in flags for flag in FLAGS}


def images(encoders, args):
    """Images/s of each encoder, batch by batch in ABBA order, and the cosines of auto's vectors to fp32's."""
    import torch

    preprocess = encoders["fp32"].preprocess
    batch = args.batch_size
    pixels = torch.stack([preprocess(natural_photo(seed, (640, 480))) for seed in range(args.photos)])
    vectors = {name: [] for name in encoders}
    seconds = {name: [] for name in encoders}
    for name, encoder in encoders.items():  # first call at this batch size: kernels picked, memory allocated
        encoder.encode_images(pixels[:batch])
    for i, start in enumerate(range(0, len(pixels), batch)):
        order = list(encoders) if i % 2 == 0 else list(encoders)[::-1]
        for name in order:
            t = time.perf_counter()
            vectors[name].append(encoders[name].encode_images(pixels[start:start + batch]))
            seconds[name].append(time.perf_counter() - t)
    per_s = {name: [round(batch / s, 2) for s in seconds[name]] for name in encoders}
    ratios = [a / f for a, f in zip(per_s["auto"], per_s["fp32"])]
    cosine = np.sum(np.concatenate(vectors["auto"]) * np.concatenate(vectors["fp32"]), axis=1)
    return {
        "photos": len(pixels), "photo_size": "640x480", "batch_size": batch,
        "images_per_s_by_batch": per_s,
        "images_per_s": {name: round(len(pixels) / sum(seconds[name]), 2) for name in encoders},
        "ratio_auto_to_fp32": round(sum(seconds["fp32"]) / sum(seconds["auto"]), 2),
        "ratio_auto_to_fp32_per_batch": [round(r, 2) for r in ratios],
        "lowest_cosine_to_fp32": round(float(cosine.min()), 5), "mean_cosine_to_fp32": round(float(cosine.mean()), 5),
        "photo_vectors": {name: np.concatenate(v) for name, v in vectors.items()},  # for the text queries; popped
    }


def text_queries(encoders, args):
    """One-query latency (encode + exact search over ``args.vectors`` vectors), alternating precisions, and the
    top-10 agreement with fp32 over those vectors and over the photos."""
    collection = clustered(args.vectors, dim=encoders["fp32"].dim, seed=0)
    sample = texts(args.queries, offset=1_000_000)
    seconds = {name: [] for name in encoders}
    queries = {name: [] for name in encoders}
    for i, text in enumerate(sample):
        order = list(encoders) if i % 2 == 0 else list(encoders)[::-1]
        for name in order:
            t = time.perf_counter()
            query = encoders[name].encode_texts([text])
            exact_top_k(collection, query, 24)
            seconds[name].append(time.perf_counter() - t)
            queries[name].append(query[0])
    queries = {name: np.stack(q) for name, q in queries.items()}
    return {"queries": len(sample), "vectors": args.vectors,
            "in_process": {name: summary_ms(s) for name, s in seconds.items()},
            "ratio_p50_fp32_to_auto": round(float(np.median(seconds["fp32"]) / np.median(seconds["auto"])), 2),
            "lowest_query_cosine_to_fp32": round(float(np.sum(queries["auto"] * queries["fp32"], axis=1).min()), 5),
            "same_top_10_over_vectors": same_top(collection, collection, queries),
            "agreement_over_vectors": agreement(collection, collection, queries),
            "queries_by_precision": queries}


def same_top(auto_vectors, fp32_vectors, queries, k=10):
    """Share of queries whose top ``k`` (as a set) is the same with auto's vectors and queries as with fp32's."""
    return agreement(auto_vectors, fp32_vectors, queries, k)["same_top"]


def agreement(auto_vectors, fp32_vectors, queries, k=10):
    """Top-``k`` agreement of auto with fp32: the share of queries with the same set, the mean overlap, and for
    the queries that differ how near a tie it was: fp32's gap between its ``k``-th and ``k+1``-th scores, and
    how far below fp32's ``k``-th score (in fp32's scores) auto's lowest pick falls."""
    _, auto_ids = exact_top_k(auto_vectors, queries["auto"], k)
    fp32_scores, fp32_ids = exact_top_k(fp32_vectors, queries["fp32"], k + 1)
    same, overlap, gaps, shortfalls = [], [], [], []
    for q, (a, f) in enumerate(zip(auto_ids, fp32_ids)):
        common = len(set(a) & set(f[:k]))
        same.append(common == k)
        overlap.append(common / k)
        if common < k:
            gaps.append(float(fp32_scores[q, k - 1] - fp32_scores[q, k]))
            shortfalls.append(float(fp32_scores[q, k - 1] - np.min(fp32_vectors[a] @ queries["fp32"][q])))
    near = {"fp32_gap_k_to_k1_median": round(float(np.median(gaps)), 5),
            "auto_pick_below_fp32_kth_max": round(max(shortfalls), 5)} if gaps else {}
    return {"same_top": round(float(np.mean(same)), 3), f"overlap_at_{k}": round(float(np.mean(overlap)), 4),
            "differing_queries": near}


def builds(args, checkpoint):
    """Marginal images/s of the CLI with --precision auto and fp32, alternating which goes first."""
    out = {}
    for part in args.build_photos.split(","):
        size, count = part.split(":")
        folder = os.path.join(args.workdir, f"photos-{size}-{count}")
        paths = write_photo_folder(folder, int(count), PHOTO_SIZES[size], seed=len(size))
        rates = {}
        for precision in (("auto", "fp32") if len(out) % 2 == 0 else ("fp32", "auto")):
            flags = ("--model", "ViT-B-32", "--pretrained", checkpoint, "--batch-size", str(args.build_batch_size),
                     "--precision", precision)
            summary, wall, _, marginal = marginal_build(folder, paths, args.build_batch_size, *flags)
            rates[precision] = {"marginal_images_per_s": round(marginal, 2), "wall_s": round(wall, 1),
                                "load_model_s": summary["stages"].get("load_model")}
        rates["ratio_auto_to_fp32"] = round(rates["auto"]["marginal_images_per_s"]
                                            / rates["fp32"]["marginal_images_per_s"], 2)
        out[size] = {"photos": int(count), **rates}
    return out


def targets(result):
    img, txt = result["images"], result["texts"]
    photo = img.pop("photo_vectors")
    queries = txt.pop("queries_by_precision")
    txt["same_top_10_over_photos"] = same_top(photo["auto"], photo["fp32"], queries)
    met = {
        "encoder_auto_over_fp32_ge_1.8": img["ratio_auto_to_fp32"] >= 1.8,
        "lowest_cosine_ge_0.999": img["lowest_cosine_to_fp32"] >= 0.999,
        "same_top_10_ge_0.95": txt["same_top_10_over_vectors"] >= 0.95,
    }
    for size, build in result.get("build", {}).items():
        met[f"build_{size}_auto_over_fp32_ge_1.6"] = build["ratio_auto_to_fp32"] >= 1.6
    return met


if __name__ == "__main__":
    main()
