"""GPU figures (a CUDA machine): indexing 2 MP JPEGs with ViT-B-32, and exact search of 1M vectors.

    python -m benchmarks.bench_gpu                    # a few minutes on one H200
    python -m benchmarks.bench_gpu --photos 4096 --vectors 100000   # a quick look
    python -m benchmarks.bench_gpu --decode device --gpus 1 2 4     # scaling over the GPUs of one machine
    python -m benchmarks.bench_gpu --device cpu --photos 64 --unique 8 --batch-size 16 --vectors 20000
                                                      # the same code paths on a CPU (a smoke test)

Indexing: ``python -m indexer build --device cuda`` end to end, with JPEGs
decoded on the GPU (``--decode device``) and by Pillow worker processes
(``--decode workers``), each as a marginal rate over one batch (see
``bench_index.marginal_build``); next to the encoder alone (fp16, preprocessed
tensors in memory) and decoding alone (nvJPEG and the model's preprocessing
on the GPU, in batches; Pillow on one CPU core). The folder holds a few
hundred generated photos, each copied many times with a distinct JPEG
comment, so every file is decoded and embedded.
Search: the GPU exact index (``search.index.gpu_exact``) over seeded clustered
vectors: ms per batch of 64 queries at k=10 and k=2000, one query alone,
and recall@10 against exact float32 search. Prints one JSON object.
"""

import argparse
import json
import os
import sys

import numpy as np

from .bench_index import encoder_only, marginal_build, worker_seconds_per_image
from .common import WORKDIR, emit, latencies, machine, random_checkpoint, summary_ms, timed
from .datasets import collection_and_queries, write_photo_copies, write_photo_folder

PHOTO_SIZE = (1632, 1224)  # 2 MP
PIXELS = PHOTO_SIZE[0] * PHOTO_SIZE[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=24_576, help="2 MP JPEGs in the folder built")
    parser.add_argument("--unique", type=int, default=512, help="distinct photos generated, then copied")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 2) - 1,
                        help="decode worker processes, or reading threads with --decode device")
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--workdir", default=WORKDIR)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--decode", nargs="+", default=["device", "workers"], choices=("device", "workers"),
                        help="the CLI's --decode settings to run end to end")
    parser.add_argument("--gpus", nargs="+", type=int, default=[None],
                        help="the CLI's --gpus settings to run end to end, e.g. 1 2 4 (default: the CLI's, every GPU)")
    args = parser.parse_args(argv)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu needs a CUDA device; benchmarks/bench_index.py measures the CPU")
    info = machine()
    checkpoint = random_checkpoint("ViT-B-32", args.workdir)
    result = {"benchmark": "gpu", "machine": info, "device": args.device}
    for name, measure in (("search", lambda: search(args.vectors, args.device)),  # first: quick, needs no photos
                          ("indexing", lambda: indexing(args, checkpoint))):
        result[name] = measure()
        print(f"{name}: {json.dumps(result[name])}", file=sys.stderr, flush=True)  # a section, should a later one fail
    result["targets_met"] = {
        "ViT-B-32 end to end >= 4000 images/s from 2 MP JPEGs":
            result["indexing"].get("decode_device", {}).get("end_to_end_marginal_images_per_s", 0) >= 4000,
        f"{args.vectors} vectors: < 1 ms per batch of 64 queries (k=10)":
            result["search"]["batch_64_k10"]["p50_ms"] < 1.0,
    }
    emit(result)


def indexing(args, checkpoint):
    from search.encoding.encoder import load_encoder

    sources = write_photo_folder(os.path.join(args.workdir, f"gpu-sources-{args.unique}"), args.unique,
                                 PHOTO_SIZE, seed=11, processes=os.cpu_count() or 1)
    folder = os.path.join(args.workdir, f"gpu-photos-{args.photos}")
    paths, copy_s = timed(write_photo_copies, folder, sources, args.photos)
    encoder = load_encoder("ViT-B-32", checkpoint, device=args.device)
    out = {"photos": len(paths), "mean_file_mb": round(np.mean([os.path.getsize(p) for p in sources]) / 1e6, 2),
           "batch_size": args.batch_size, "workers": args.workers, "copy_s": round(copy_s, 1),
           "encoder_only_images_per_s": round(encoder_only(encoder, paths[:8192], args.batch_size), 1),
           "device_decode_only_images_per_s": round(device_decode_rate(encoder, paths[:2048], args.batch_size), 1),
           "pillow_decode_ms_per_image_per_core": round(worker_seconds_per_image(encoder, sources[:32]) * 1e3, 2),
           "min_cosine_device_vs_pillow_full_decode": round(device_vs_pillow(encoder, sources[:64]), 4)}
    del encoder
    for mode in args.decode:
        for gpus in args.gpus:
            flags = ("--model", "ViT-B-32", "--pretrained", checkpoint, "--device", args.device, "--decode", mode,
                     "--batch-size", str(args.batch_size), "--workers", str(args.workers))
            key = f"decode_{mode}" if gpus is None else f"decode_{mode}_gpus_{gpus}"
            try:
                summary, wall, wall_first, marginal = marginal_build(
                    folder, paths, args.batch_size, *flags, *(() if gpus is None else ("--gpus", str(gpus))))
            except SystemExit as e:  # report it with the other figures
                out[key] = {"error": str(e)}
                continue
            out[key] = {"cli_wall_s": round(wall, 2), "cli_wall_first_batch_s": round(wall_first, 2),
                        "cli_images_per_s": summary["images_per_second"], "stages_s": summary["stages"],
                        "embedded": summary["embedded"], "skipped": len(summary["skipped"]),
                        "decoded_on_device": summary["decoded_on_device"], "devices": summary["devices"],
                        "end_to_end_marginal_images_per_s": round(marginal, 1),
                        "ratio_to_encoder_only": round(marginal / out["encoder_only_images_per_s"], 3)}
    return out


def device_vs_pillow(encoder, paths):
    """Lowest cosine between the vectors of photos decoded on the device and by Pillow at full size."""
    import torch

    from search.encoding.device_images import DevicePreprocess
    from search.encoding.images import load_image

    device = DevicePreprocess.from_transform(encoder.preprocess, encoder.device)
    datas = read_all(paths)
    ours = encoder.encode_images(torch.stack(device.inputs(datas, [1] * len(datas), [PIXELS] * len(datas))))
    reference = encoder.encode_images([load_image(d)[0] for d in datas])
    return float(np.min(np.sum(ours * reference, axis=1)))


def device_decode_rate(encoder, paths, batch_size):
    """Images/s of nvJPEG decoding plus the model's preprocessing on the GPU, files already in memory."""
    import torch

    from search.encoding.device_images import DevicePreprocess

    device = DevicePreprocess.from_transform(encoder.preprocess, encoder.device)
    datas = read_all(paths)
    batches = [datas[i:i + batch_size] for i in range(0, len(datas), batch_size)]

    def run(batch):
        device.inputs(batch, [1] * len(batch), [PIXELS] * len(batch))
        if device.device.type == "cuda":
            torch.cuda.synchronize()

    run(batches[0])
    return len(datas) / float(latencies(run, batches, warmup=0).sum())


def parts(index, queries, k, group=1024):
    """Where a search's time goes: the matmul alone, and the top-k of its scores alone; and a
    two-stage top-k to compare (the best of each ``group`` columns, then the best of those)."""
    import torch

    coarse = torch.from_numpy(queries).to(index.device, index.vectors.dtype)
    scores = coarse @ index.vectors.T
    want = min(index.ntotal, 2 * k + 32)
    usable = scores.shape[1] // group * group  # the tail past whole groups joins the second stage as it is

    def two_stage():
        firsts = torch.topk(scores[:, :usable].view(len(scores), -1, group), want, dim=2)[0]
        return torch.topk(torch.cat([firsts.flatten(1), scores[:, usable:]], 1), want, dim=1)[0]

    def run(fn):
        def timed_call(_):
            fn()
            if index.device.type == "cuda":
                torch.cuda.synchronize()
        return summary_ms(latencies(timed_call, range(30)))["p50_ms"]

    out = {"matmul": run(lambda: coarse @ index.vectors.T),
           "topk": run(lambda: torch.topk(scores, want, dim=1))}
    if want <= group <= usable:
        out[f"topk_two_stage_{group}"] = run(two_stage)
        out["two_stage_same_scores"] = bool(torch.equal(two_stage(), torch.topk(scores, want, dim=1)[0]))
    return out


def read_all(paths):
    out = []
    for path in paths:
        with open(path, "rb") as f:
            out.append(f.read())
    return out


def search(n, device, nq=1000):
    """The GPU exact index over ``n`` vectors: latency per query batch, and recall against float32."""
    import faiss

    from search.index import tuning
    from search.index.gpu_exact import TorchExactIndex

    vectors, queries = collection_and_queries(n, nq)
    index, load_s = timed(TorchExactIndex, np.arange(n), vectors, device)
    batches = [queries[i:i + 64] for i in range(0, nq - 63, 64)]
    out = {"vectors": n, "dim": vectors.shape[1], "load_s": round(load_s, 2),
           "bytes_per_vector": index.vectors.element_size() * vectors.shape[1]}
    for k in (10, 2000):
        out[f"batch_64_k{k}"] = summary_ms(latencies(lambda q: index.search(q, k), batches * 3, warmup=5))
    out["single_query_k10"] = summary_ms(latencies(lambda q: index.search(q[None], 10), list(queries[:200])))
    out["batch_64_k10_parts_p50_ms"] = parts(index, queries[:64], 10)
    _, truth = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
    _, found = index.search(queries, 10)
    out["recall_at_10"] = round(tuning.recall(found, truth), 4)
    return out


if __name__ == "__main__":
    main()
