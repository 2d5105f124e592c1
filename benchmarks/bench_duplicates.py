"""Duplicate finding: precision and recall of planted groups, and its time at scale.

Two parts, each optional:

- ``--n N``: a synthetic bundle of ``N`` seeded clustered vectors (the
  collection of ``bench_query``) with planted groups: exact copies (same
  hash, same vector) and near copies (the vector moved to a cosine of about
  0.98). Reports the time of ``find_duplicates`` through the bundle's own
  index, and precision/recall of the planted groups (a found group counts when
  it equals a planted one).
- ``--photos N``: ``N`` generated photos with planted copies of some: exact
  copies, JPEG quality 60, half-size, and 90% centre crops, indexed with a
  model (``--model``/``--pretrained``; default the seeded random ViT-B-32),
  then ``find_duplicates`` at ``--threshold``: precision/recall per kind and
  the cosine ranges of planted and distinct pairs, which say what a threshold
  can separate with that model.

    python -m benchmarks.bench_duplicates --n 1000000
    python -m benchmarks.bench_duplicates --photos 200 --pretrained CHECKPOINT --threshold 0.95
"""

import argparse
import os
import shutil

import numpy as np
from PIL import Image

from search.quality.duplicates import DEFAULT_THRESHOLD, find_duplicates
from search.store.bundle import Bundle
from search.store.manifest import Manifest
from search.store.metadata import ImageRecord
from search.store.writer import commit

from .common import WORKDIR, emit, machine, random_checkpoint, timed
from .datasets import clustered

PLANT_EVERY = 100  # one photo in this many gets planted copies
KINDS = ("exact", "jpeg60", "half", "crop90")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, help="vectors of the synthetic bundle (e.g. 1000000)")
    parser.add_argument("--photos", type=int, help="generated photos with planted copies (e.g. 200)")
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--pretrained", help="checkpoint file (default: a seeded random-init one)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--workdir", default=os.path.join(WORKDIR, "duplicates"))
    args = parser.parse_args(argv)
    result = {"machine": machine(), "threshold": args.threshold}
    if args.n:
        result["vectors"] = vectors_at_scale(args.n, args.threshold, args.workdir)
    if args.photos:
        result["photos"] = planted_photos(args.photos, args)
    emit(result)


def vectors_at_scale(n, threshold, workdir):
    path = os.path.join(workdir, f"vectors-{n}")
    base = clustered(n, seed=0)
    rng = np.random.default_rng(1)
    planted, extra, records = [], [], []
    for row in range(0, n, PLANT_EVERY):
        if row % (2 * PLANT_EVERY):  # an exact copy: the same content hash
            planted.append((row, n + len(extra)))
            extra.append(base[row])
        else:  # a near copy: cosine about 0.98
            noise = rng.standard_normal(base.shape[1]).astype(np.float32)
            noise -= (noise @ base[row]) * base[row]
            moved = base[row] + 0.2 * noise / np.linalg.norm(noise)
            planted.append((row, -(n + len(extra))))
            extra.append(moved / np.linalg.norm(moved))
    vectors = np.vstack([base, np.asarray(extra, np.float32)])
    exact = {abs(b): a for a, b in planted if b > 0}
    for i in range(len(vectors)):
        sha = f"{exact.get(i, i):064x}"
        records.append(ImageRecord(i, f"album{i % 100:03d}/img{i:08d}.jpg", 1, 0, sha, 4000, 3000))
    if not os.path.exists(os.path.join(path, "manifest.json")):
        shutil.rmtree(path, ignore_errors=True)
        manifest = Manifest(model={"name": "synthetic", "pretrained": None, "dim": base.shape[1]},
                            dim=base.shape[1], root=os.path.join(path, "no-photos"))
        _, build_s = timed(commit, path, manifest, records, vectors)
    else:
        build_s = None
    bundle = Bundle.open(path, use_gpu=False)
    report, seconds = timed(find_duplicates, bundle, threshold)
    group_of = {r.id: g for g, group in enumerate(report.groups) for r in group.records}
    joined = sum(1 for a, b in planted if group_of.get(a, -1) == group_of.get(abs(b), -2))
    planted_ids = {i for pair in planted for i in (pair[0], abs(pair[1]))}
    return {"n": len(vectors), "index_type": bundle.manifest.index_type, "build_seconds": build_s,
            "find_seconds": round(seconds, 1), "photos_per_second": round(len(vectors) / seconds),
            "planted_pairs": len(planted), "planted_pairs_joined": joined,
            "recall": round(joined / len(planted), 4),
            # groups among the collection's own vectors: distinct rows this close (a property of the data)
            "groups_without_planted_rows": sum(1 for g in report.groups
                                               if not planted_ids & {r.id for r in g.records})}


def planted_photos(count, args):
    from indexer import BuildConfig, build

    from .datasets import natural_photo

    root = os.path.join(args.workdir, f"photos-{count}")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, "photos"))
    truth = {kind: set() for kind in KINDS}
    for i in range(count):
        image = natural_photo(500 + i, (800, 600))
        name = os.path.join(root, "photos", f"p{i:04d}")
        image.save(name + ".png")
        if i % (count // 20 or 1):
            continue
        kind = KINDS[(i // (count // 20 or 1)) % len(KINDS)]
        copy = f"{name}-{kind}"
        if kind == "exact":
            shutil.copy(name + ".png", copy + ".png")
        elif kind == "jpeg60":
            image.save(copy + ".jpg", quality=60)
        elif kind == "half":
            image.resize((400, 300), Image.BICUBIC).save(copy + ".png")
        else:
            image.crop((40, 30, 760, 570)).save(copy + ".png")
        truth[kind].add(frozenset({f"p{i:04d}.png", os.path.basename(copy) + (".jpg" if kind == "jpeg60" else ".png")}))
    pretrained = args.pretrained or random_checkpoint(args.model)
    index = os.path.join(root, "index")
    build(BuildConfig(photos=os.path.join(root, "photos"), index=index, model=args.model, pretrained=pretrained))
    bundle = Bundle.open(index, use_gpu=False)
    report = find_duplicates(bundle, args.threshold)
    found = {frozenset(r.path for r in g.records) for g in report.groups}
    out = {"photos": bundle.count, "pretrained": os.path.basename(pretrained),
           **_precision_recall(found, set().union(*truth.values()))}
    out["recall_by_kind"] = {kind: round(len(found & pairs) / len(pairs), 3) for kind, pairs in truth.items() if pairs}
    out["cosines"] = _cosine_ranges(bundle, truth)
    return out


def _cosine_ranges(bundle, truth):
    """Lowest cosine of each kind of planted pair, and the highest between distinct photos."""
    records = {r.path: r for r in bundle.metadata.all()}
    vectors = np.asarray(bundle.vectors[bundle.rows_of([r.id for r in records.values()])])
    row_of = {path: i for i, path in enumerate(records)}
    out = {}
    for kind, pairs in truth.items():
        scores = [float(vectors[row_of[a]] @ vectors[row_of[b]]) for a, b in map(tuple, pairs)]
        if scores:
            out[f"{kind}_lowest"] = round(min(scores), 4)
    copies = {path for pairs in truth.values() for pair in pairs for path in pair if "-" in path}
    distinct = [row_of[p] for p in records if p not in copies]
    sims = vectors[distinct] @ vectors[distinct].T
    np.fill_diagonal(sims, -1)
    out["distinct_highest"] = round(float(sims.max()), 4)
    return out


def _precision_recall(found, truth):
    hits = len(found & truth)
    return {"planted_groups": len(truth), "found_groups": len(found), "correct_groups": hits,
            "precision": round(hits / len(found), 4) if found else 1.0, "recall": round(hits / len(truth), 4)}


if __name__ == "__main__":
    main()
