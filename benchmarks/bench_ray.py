"""The cost of Ray: a build on a local 2-node Ray cluster against a local build, same photos, same machine.

Both build the same generated JPEGs with a seeded random ViT-B-32 (default)
from scratch, local first, then on ``ray.cluster_utils.Cluster`` (a head for
the driver, two nodes of one CPU each), and report images/s of each, their
ratio, the Ray build's stage seconds (connect, listing, actor pool,
reading the shards back) and whether the two bundles agree.
"""

import argparse
import os
import shutil

import numpy as np

from benchmarks.common import WORKDIR, emit, machine, random_checkpoint
from benchmarks.datasets import write_photo_folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=256)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--size", type=int, nargs=2, default=(640, 480))
    parser.add_argument("--workdir", default=os.path.join(WORKDIR, "ray"))
    args = parser.parse_args(argv)
    from search.runtime import configure_process

    configure_process()
    import ray
    from ray.cluster_utils import Cluster

    from indexer import BuildConfig, build
    from search.store.bundle import Bundle

    photos = os.path.join(args.workdir, f"photos-{args.photos}-{args.size[0]}x{args.size[1]}")
    write_photo_folder(photos, args.photos, size=tuple(args.size), processes=2)
    common = dict(photos=photos, model=args.model, pretrained=random_checkpoint(args.model), device="cpu")
    out = {}
    for name in ("local", "ray"):
        index = os.path.join(args.workdir, f"index-{name}")
        shutil.rmtree(index, ignore_errors=True)
        cluster = None
        if name == "ray":
            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
            for _ in range(2):
                cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
        try:
            summary = build(BuildConfig(index=index, ray=cluster.address if cluster else None, **common),
                            progress=False)
        finally:
            if cluster is not None:
                ray.shutdown()
                cluster.shutdown()
        out[name] = {"images_per_second": summary.images_per_second, "seconds": summary.seconds,
                     "stages": summary.stages}
    a, b = (Bundle.open(os.path.join(args.workdir, f"index-{n}"), use_gpu=False) for n in ("local", "ray"))
    emit({
        "machine": machine(), "photos": args.photos, "model": args.model, "size": args.size, **out,
        "ratio_ray_to_local": round(out["ray"]["images_per_second"] / out["local"]["images_per_second"], 3),
        "same_paths_and_ids": [(r.id, r.path) for r in a.metadata.all()] == [(r.id, r.path) for r in b.metadata.all()],
        "min_cosine": round(float(np.min(np.sum(np.asarray(a.vectors) * np.asarray(b.vectors), axis=1))), 6),
    })


if __name__ == "__main__":
    main()
