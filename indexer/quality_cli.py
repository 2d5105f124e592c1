"""``python -m indexer eval`` and ``python -m indexer finetune``: thin adapters over ``search.quality``."""

import json
import os
import sys
import tempfile

from search.encoding.fingerprint import DEFAULT_MODEL, DEFAULT_PRETRAINED
from search.encoding.precision import PRECISIONS
from search.errors import InvalidArgumentError
from search.quality.captions import read_captions
from search.quality.evaluation import evaluate_bundle
from search.quality.training import SETTINGS as FINETUNE_SETTINGS
from search.quality.training import FinetuneSettings
from search.store.bundle import Bundle

from .build import build
from .config import BuildConfig
from .stages.model import ModelChoice, load_model

INTERRUPTED = "interrupted: the training state is saved; run the same command again to resume"


def add_parsers(sub):
    p = sub.add_parser("eval", help="measure text-to-image and image-to-text recall on captioned photos")
    p.add_argument("photos", nargs="?", metavar="PHOTOS",
                   help="photo folder: build a temporary index per --model (instead of --index)")
    p.add_argument("--index", metavar="DIR", help="an index bundle to measure, as it is served")
    _common(p)
    p.add_argument("--model", action="append", metavar="NAME",
                   help="model to compare (repeat it); with --index, a model sharing its space (a text fine-tune)")
    p.add_argument("--pretrained", action="append", metavar="TAG|PATH", help="weights of each --model, in order")
    p.add_argument("--model-config", metavar="FILE", help="JSON architecture of a custom --model")
    p.add_argument("--precision", choices=PRECISIONS, metavar="|".join(PRECISIONS),
                   help="what the encoder computes in (default: the index's with --index, else auto)")
    p = sub.add_parser("finetune", help="fine-tune the index's model on captioned photos (contrastive)")
    p.add_argument("--index", required=True, metavar="DIR", help="the index bundle whose model and photos to use")
    p.add_argument("--out", required=True, metavar="FILE.safetensors", help="checkpoint to write (--pretrained FILE)")
    _common(p)
    FINETUNE_SETTINGS.add_arguments(p)


def _common(p):
    p.add_argument("--captions", required=True, metavar="FILE",
                   help="JSONL, CSV (path,caption), COCO captions or Karpathy-split JSON; paths relative to the photos")
    p.add_argument("--split", metavar="NAME", help="Karpathy JSON: keep this split only (test, val, train)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where the model runs")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def cmd_eval(args):
    captions = read_captions(args.captions, split=args.split)
    if (args.index is None) == (args.photos is None):
        raise InvalidArgumentError("give either --index DIR (an existing index) or PHOTOS (a folder to index "
                                   "per --model)")
    if args.index:
        reports = [_eval_index(args, captions)]
    else:
        reports = [_eval_photos(args, captions, name, pretrained)
                   for name, pretrained in _pairs(args.model, args.pretrained)]
    if args.json:
        out = [r.to_dict() for r in reports]
        print(json.dumps(out[0] if len(out) == 1 else out))
        return 0
    _print_problems(reports[0].problems)
    print(f"{'model':40} {'photos':>7} {'captions':>8}  text->image R@1  R@5  R@10 medR  "
          f"image->text R@1  R@5  R@10 medR  images/s")
    for r in reports:
        t, i = r.text_to_image, r.image_to_text
        print(f"{r.model['name'] + ' / ' + os.path.basename(str(r.model['pretrained'])):40.40} {r.photos:7} "
              f"{r.captions:8}  {_row(t):>25}  {_row(i):>25}  {r.images_per_second or 0:8.1f}")
    return 0


def _eval_index(args, captions):
    """The bundle's figures with its own model, or with the --model/--pretrained given (a text fine-tune
    of it, for one)."""
    if len(args.model or []) > 1 or len(args.pretrained or []) > 1:
        raise InvalidArgumentError("with --index, give at most one --model and --pretrained (sharing its space)")
    bundle = Bundle.open(args.index, use_gpu=False)
    fp = bundle.fingerprint
    name = (args.model or [fp.name])[0]
    pretrained = (args.pretrained or [fp.pretrained if name == fp.name else None])[0]
    encoder = load_model(ModelChoice(name, pretrained, fp.config if name == fp.name else None, args.device,
                                     args.precision or fp.precision))
    return evaluate_bundle(bundle, captions, encoder)


def _eval_photos(args, captions, name, pretrained):
    with tempfile.TemporaryDirectory(prefix="photosearch-eval-") as index:
        summary = build(BuildConfig(photos=args.photos, index=index, model=name, pretrained=pretrained,
                                    model_config=args.model_config, device=args.device,
                                    precision=args.precision or "auto"))
        bundle = Bundle.open(index, use_gpu=False)
        fp = bundle.fingerprint
        report = evaluate_bundle(bundle, captions, load_model(ModelChoice(fp.name, pretrained, fp.config,
                                                                          args.device, fp.precision)))
    report.images_per_second = summary.images_per_second or report.images_per_second
    return report


def _pairs(models, pretrained):
    """``[(model, pretrained)]`` of the repeated flags: one --pretrained per --model, or none at all."""
    if not models:
        return [(DEFAULT_MODEL, (pretrained or [DEFAULT_PRETRAINED])[0])]
    pretrained = pretrained or [None] * len(models)
    if len(pretrained) != len(models):
        raise InvalidArgumentError(f"give one --pretrained per --model ({len(models)} models, "
                                   f"{len(pretrained)} --pretrained)")
    return list(zip(models, pretrained))


def _row(figures):
    if figures["recall@1"] is None:
        return "-"
    return " ".join(f"{figures[f'recall@{k}']:.3f}" for k in (1, 5, 10)) + f" {figures['median_rank']:4g}"


def _print_problems(problems):
    for p in problems:
        print(f"left out {p['where']} ({p['path']}): {p['reason']}", file=sys.stderr)


def cmd_finetune(args):
    from search.quality.finetune import finetune  # torch: only for this command

    settings = FINETUNE_SETTINGS.from_sources(FinetuneSettings, args)
    captions = read_captions(args.captions, split=args.split)
    report = finetune(args.index, captions, args.out, settings, device=args.device, progress=sys.stderr.isatty())
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    _print_problems(report.problems)
    b, a = report.before["text_to_image"], report.after["text_to_image"]
    print(f"fine-tuned ({report.mode}) on {report.photos['train']} photos, measured on {report.photos['held_out']} "
          f"held out; best epoch {report.best_epoch} of {len(report.epochs)}"
          f"{' (stopped early)' if report.stopped_early else ''}, {report.samples_per_second:.1f} pairs/s\n"
          f"  held-out text->image recall@1/5/10: {_row(b)} before, {_row(a)} after\n"
          f"  wrote {report.out}: " + ("search the same index with --pretrained " + report.out if report.mode == "text"
                                       else "a new model: rebuild the index with --pretrained " + report.out))
    return 0


COMMANDS = {"eval": cmd_eval, "finetune": cmd_finetune}
