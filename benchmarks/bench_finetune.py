"""Fine-tuning on the user's captioned photos: held-out recall before and after, from random weights.

The seeded shapes set (``tests/captioned.py``: 24 kinds of coloured shape on
a background, two captions per photo) is indexed with a small random-weight
model, then ``finetune`` runs in each mode from the same index:

- ``full``: both towers learn (a new model; the index is rebuilt with it);
- ``text``: the image tower stays locked and the index is untouched (its
  files' hashes are checked before and after); the text tower learns to point
  at the random image tower's vectors.

A retrieved photo counts as right when its kind is the caption's, so chance
text->image recall@1 is about 1/24. Reports held-out figures before and
after, time, pairs/s, and (text mode) ``eval`` of the served index with the
new text tower.

    python -m benchmarks.bench_finetune --per-kind 12
"""

import argparse
import hashlib
import json
import os
import pathlib
import shutil
import time

from indexer import BuildConfig, build
from search.encoding.encoder import load_encoder
from search.quality.captions import read_captions
from search.quality.evaluation import evaluate_bundle
from search.quality.finetune import finetune
from search.quality.training import FinetuneSettings
from tests.captioned import kind_of, make_captioned_set

from .common import WORKDIR, emit, machine, random_checkpoint

MODEL = "shapes-small"
# A small CLIP: 32-pixel images in 4-pixel patches, captions of at most 16 tokens.
CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 3, "width": 96, "patch_size": 4, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-kind", type=int, default=12, help="photos of each of the 24 kinds")
    parser.add_argument("--modes", default="full,text")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=2e-3, help="random weights take large steps")
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    root = pathlib.Path(WORKDIR) / "finetune"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    config = root / f"{MODEL}.json"
    config.write_text(json.dumps(CONFIG))
    pretrained = random_checkpoint(MODEL, str(root), config=str(config))
    photos, captions_file = make_captioned_set(root, per_kind=args.per_kind)
    index = str(root / "index")
    build(BuildConfig(photos=str(photos), index=index, model=MODEL, model_config=str(config), pretrained=pretrained,
                      workers=0), progress=False)
    captions = read_captions(str(captions_file))
    out = {"machine": machine(), "photos": args.per_kind * 24, "captions": len(captions.captions),
           "model": MODEL, "config": CONFIG}
    for mode in args.modes.split(","):
        before = _hashes(index)
        settings = FinetuneSettings(mode=mode, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                                    patience=args.patience, warmup=0.05)
        start = time.perf_counter()
        checkpoint = str(root / f"{mode}.safetensors")
        report = finetune(index, captions, checkpoint, settings, device="cpu", key=kind_of)
        result = {"seconds": round(time.perf_counter() - start, 1), "settings": settings.to_dict(),
                  "held_out_photos": report.photos["held_out"], "best_epoch": report.best_epoch,
                  "epochs_run": len(report.epochs), "stopped_early": report.stopped_early,
                  "pairs_per_second": report.samples_per_second,
                  "before": report.before, "after": report.after,
                  "recall1_by_epoch": [e["text_to_image"]["recall@1"] for e in report.epochs],
                  "seconds_to_recall1": _seconds_to(report.epochs, (0.5, 0.8))}
        if mode == "text":
            result["index_untouched"] = _hashes(index) == before
            served = evaluate_bundle(index, captions, load_encoder(MODEL, checkpoint, device="cpu"), key=kind_of)
            result["eval_all_photos_with_new_text_tower"] = served.text_to_image
        out[mode] = result
    emit(out)


def _seconds_to(epochs, targets):
    """Training seconds (measuring included) until held-out text->image recall@1 first reached each target."""
    out, elapsed = {}, 0.0
    for e in epochs:
        elapsed += e["seconds"]
        for t in targets:
            if str(t) not in out and e["text_to_image"]["recall@1"] >= t:
                out[str(t)] = round(elapsed, 1)
    return out


def _hashes(folder):
    paths = [os.path.join(d, name) for d, _, files in os.walk(folder) for name in files]
    return {p: hashlib.sha256(pathlib.Path(p).read_bytes()).hexdigest() for p in paths}


if __name__ == "__main__":
    main()
