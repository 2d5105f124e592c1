"""Indexing speed: ``python -m indexer build`` against the encoder's own limit and a naive loop.

    python -m benchmarks.bench_index --size small     # a couple of minutes on 2 cores
    python -m benchmarks.bench_index --size medium --batch-size 32

For each photo size (about 2 MP and 12 MP, seeded JPEGs) three figures from
one run: (1) the CLI end to end, as a marginal rate that leaves out its fixed
start-up costs, (2) the encoder-only limit: the same model, batch size and
threads on preprocessed tensors already in memory, (3) a naive baseline: one
process, full decode, preprocess, encode, batch after batch.
Then a no-op rebuild of an unchanged folder. No weights are downloaded: the
model is a seeded random-init ViT-B-32 saved to a checkpoint (speed does not
depend on the weights). Prints one JSON object.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

from .common import WORKDIR, emit, machine, random_checkpoint
from .datasets import write_photo_folder

SIZES = {  # (2 MP photos, 12 MP photos, photos in the no-op rebuild)
    "small": (32, 16, 1_000),
    "medium": (96, 48, 10_000),
    "large": (512, 256, 10_000),
}
PHOTO_SIZES = {"2mp": (1632, 1224), "12mp": (4000, 3000)}
TINY = {  # the no-op rebuild never loads a model; the first build only needs one that is quick
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--photos-2mp", type=int, help="2 MP photos (overrides --size)")
    parser.add_argument("--photos-12mp", type=int, help="12 MP photos (overrides --size)")
    parser.add_argument("--noop-photos", type=int, help="photos in the no-op rebuild (overrides --size)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--pretrained", help="checkpoint file (default: a seeded random-init one, made once)")
    parser.add_argument("--workdir", default=WORKDIR,
                        help="generated photos and checkpoints are kept here between runs")
    args = parser.parse_args(argv)
    info = machine()  # the load average as the run starts: other work competing for the CPU
    n2, n12, n_noop = SIZES[args.size]
    counts = {"2mp": args.photos_2mp or n2, "12mp": args.photos_12mp or n12}
    n_noop = args.noop_photos or n_noop
    os.makedirs(args.workdir, exist_ok=True)
    checkpoint = args.pretrained or random_checkpoint(args.model, args.workdir)

    import torch

    from search.encoding.encoder import load_encoder

    encoder = load_encoder(args.model, checkpoint, device="cpu")
    results = {}
    for name, count in counts.items():
        if count:
            folder = os.path.join(args.workdir, f"photos-{name}-{count}")
            paths = write_photo_folder(folder, count, PHOTO_SIZES[name], seed=len(name))
            results[name] = compare(folder, paths, args, checkpoint, encoder)
    noop = noop_rebuild(args.workdir, n_noop) if n_noop else None
    emit({"benchmark": "index", "machine": info, "model": args.model, "batch_size": args.batch_size,
          "torch_threads": torch.get_num_threads(),
          "photo_sizes": {k: "x".join(map(str, v)) for k, v in PHOTO_SIZES.items()},
          "results": results, "noop_rebuild": noop, "targets_met": targets(results, noop)})


def compare(folder, paths, args, checkpoint, encoder):
    """The CLI's marginal rate on ``paths`` next to the encoder-only limit and the naive loop."""
    flags = ("--model", args.model, "--pretrained", checkpoint, "--batch-size", str(args.batch_size))
    summary, wall, wall_first, marginal = marginal_build(folder, paths, args.batch_size, *flags)
    limit = encoder_only(encoder, paths, args.batch_size)
    naive = naive_loop(encoder, paths, args.batch_size)
    decode_s = worker_seconds_per_image(encoder, paths[:16])
    return {
        "photos": len(paths), "mean_file_mb": round(np.mean([os.path.getsize(p) for p in paths]) / 1e6, 2),
        "cli_images_per_s": summary["images_per_second"],  # the CLI's own figure: fixed costs included
        "cli_wall_s": round(wall, 2), "cli_wall_first_batch_s": round(wall_first, 2), "stages_s": summary["stages"],
        "end_to_end_marginal_images_per_s": round(marginal, 2),
        "encoder_only_images_per_s": round(limit, 2), "naive_images_per_s": round(naive, 2),
        "ratio_end_to_end_to_encoder_only": round(marginal / limit, 3),
        "ratio_end_to_end_to_naive": round(marginal / naive, 2),
        "decode_worker_ms_per_image": round(decode_s * 1e3, 1),
        # The end-to-end / encoder-only ratio if every decoding cycle were taken from
        # the encoder; above it, the workers used cycles the encoder left idle.
        "ratio_if_decoding_took_encoder_cycles": round(1 / (1 + decode_s * limit / os.cpu_count()), 3),
    }


def marginal_build(folder, paths, batch_size, *flags):
    """The CLI on ``paths``, and on their first batch alone: the difference is what the other photos cost.

    A run of a few hundred photos is dominated by fixed costs (imports, model
    load, worker start, filling the first batch, the model's first call at
    that batch size); the marginal rate ``(N - B) / (wall(N) - wall(B))``,
    with B one batch of photos, is the rate of a large collection.
    Returns ``(summary, wall, wall of the first batch, marginal images/s)``.
    """
    first = folder + f"-first-{batch_size}"
    if not os.path.isdir(first):
        os.makedirs(first)
        for path in paths[:batch_size]:
            os.link(path, os.path.join(first, os.path.basename(path)))
    _, wall_first = cli_build(first, fresh(first + "-index"), *flags)
    summary, wall = cli_build(folder, fresh(folder + "-index"), *flags)
    return summary, wall, wall_first, (len(paths) - batch_size) / (wall - wall_first)


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    return path


def cli_build(photos, index, *extra):
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "indexer", "build", photos, "--index", index, "--json", *extra],
                         capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"indexer build failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout), wall


def encoder_only(encoder, paths, batch_size):
    """Images/s of the encoder alone on preprocessed tensors in memory (a warm-up batch first)."""
    import torch

    from search.encoding.images import load_image

    pixels = torch.stack([encoder.preprocess(load_image(p, min_size=encoder.image_size)[0])
                          for p in paths[:batch_size]])
    batches = [pixels[: min(batch_size, len(paths) - i)] for i in range(0, len(paths), batch_size)]
    encoder.encode_images(batches[0])
    start = time.perf_counter()
    for batch in batches:
        encoder.encode_images(batch)
    return len(paths) / (time.perf_counter() - start)


def worker_seconds_per_image(encoder, paths):
    """CPU seconds a decode worker spends on one photo: read, hash, decode small, preprocess (1 thread)."""
    import torch

    from indexer.executors.decoding import read_and_decode
    from indexer.stages.decode import Decoder
    from indexer.stages.walk import PhotoFile
    from search.encoding.images import DEFAULT_MAX_PIXELS

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    decoder = Decoder(encoder.preprocess, DEFAULT_MAX_PIXELS, encoder.image_size)
    try:
        photos = [PhotoFile(p, os.path.basename(p), 0, 0) for p in paths]
        read_and_decode(decoder, photos[:1])  # warm-up
        start = time.process_time()
        for photo in photos:
            read_and_decode(decoder, [photo])
        return (time.process_time() - start) / len(photos)
    finally:
        torch.set_num_threads(threads)


def naive_loop(encoder, paths, batch_size):
    """Images/s of one process that fully decodes, preprocesses and encodes, batch after batch."""
    from search.encoding.images import load_image

    start = time.perf_counter()
    for i in range(0, len(paths), batch_size):
        images = [load_image(p)[0] for p in paths[i:i + batch_size]]  # full-resolution decode
        encoder.encode_images(images)  # the model's preprocessing, then the model
    return len(paths) / (time.perf_counter() - start)


def noop_rebuild(workdir, count):
    """Seconds for a rebuild of an unchanged folder of ``count`` small JPEGs (a tiny model builds it first)."""
    folder = os.path.join(workdir, f"noop-{count}")
    write_photo_folder(folder, count, (160, 120), seed=7)
    config = os.path.join(workdir, "bench-tiny.json")
    with open(config, "w") as f:
        json.dump(TINY, f)
    checkpoint = random_checkpoint("bench-tiny", workdir, config)
    index = fresh(folder + "-index")
    first, _ = cli_build(folder, index, "--model", "bench-tiny", "--model-config", config, "--pretrained", checkpoint)
    summary, wall = cli_build(folder, index)
    return {
        "photos": count, "first_build_s": first["seconds"], "rebuild_s": summary["seconds"],
        "rebuild_cli_wall_s": round(wall, 2), "stages_s": summary["stages"],
        "model_loaded": "load_model" in summary["stages"], "embedded": summary["embedded"],
    }


def targets(results, noop):
    met = {}
    for name, r in results.items():
        met[f"{name}: end-to-end >= 0.9x encoder-only"] = r["ratio_end_to_end_to_encoder_only"] >= 0.9
    if "12mp" in results:
        met["12mp: end-to-end >= 1.5x naive"] = results["12mp"]["ratio_end_to_end_to_naive"] >= 1.5
    if noop:
        met[f"no-op rebuild of {noop['photos']} photos < 3 s without the model"] = (
            noop["rebuild_cli_wall_s"] < 3 and not noop["model_loaded"])
    return met


if __name__ == "__main__":
    main()
