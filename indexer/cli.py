"""Command line: ``python -m indexer build|info|models|duplicates|eval|finetune``. A thin adapter over the build."""

import argparse
import json
import os
import shlex
import sys

from tqdm import tqdm

from search.encoding.fingerprint import DEFAULT_MODEL, DEFAULT_PRETRAINED
from search.encoding.images import DEFAULT_MAX_PIXELS
from search.errors import SearchError
from search.quality.duplicates import DEFAULT_THRESHOLD, check_threshold, find_duplicates
from search.runtime import configure_process
from search.store.bundle import Bundle
from search.store.locate import locate_bundle

from .build import build
from .config import DEFAULT_INDEX_DIR, BuildConfig, add_arguments, config_from_args
from .quality_cli import COMMANDS as QUALITY_COMMANDS
from .quality_cli import INTERRUPTED, add_parsers


def make_parser():
    parser = argparse.ArgumentParser(prog="python -m indexer", description="Index a photo collection for search.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="create or update an index bundle from a photo folder")
    add_arguments(p, BuildConfig)
    p.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    p = sub.add_parser("info", help="describe an index bundle")
    p.add_argument("index", help="bundle folder, or the photo folder that holds it")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    sub.add_parser("models", help="list open_clip models and pretrained tags")
    p = sub.add_parser("duplicates", help="list groups of exact and near-duplicate photos in an index bundle")
    p.add_argument("--index", required=True, help="bundle folder, or the photo folder that holds it")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"cosine at or above which two photos are near-duplicates (default {DEFAULT_THRESHOLD})")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_parsers(sub)  # eval, finetune
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    configure_process(getattr(args, "max_pixels", DEFAULT_MAX_PIXELS))
    try:
        if args.command == "build":
            return cmd_build(args)
        if args.command == "info":
            return cmd_info(args)
        if args.command == "duplicates":
            return cmd_duplicates(args)
        if args.command in QUALITY_COMMANDS:
            return QUALITY_COMMANDS[args.command](args)
        return cmd_models()
    except SearchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.command == "finetune":
            print(INTERRUPTED, file=sys.stderr)
            return 130
        print("interrupted: embeddings made so far are saved; run the same command again to resume", file=sys.stderr)
        return 130


def cmd_build(args):
    config = config_from_args(args, BuildConfig)
    summary = build(config)
    if args.json:
        print(json.dumps(summary.to_dict()))
        return 0
    print(
        f"indexed {summary.indexed} images in {summary.index} ({summary.seconds:.1f} s, "
        f"{summary.images_per_second:.1f} images/s embedded)\n"
        f"  added {summary.added}, updated {summary.updated}, renamed {summary.renamed}, "
        f"removed {summary.removed}, unchanged {summary.unchanged}, skipped {len(summary.skipped)}"
    )
    for item in summary.skipped:
        print(f"  skipped {item['path']}: {item['reason']}")
    print(f"search them in a browser: {serve_command(args, config)}  (then open http://127.0.0.1:8000)")
    return 0


def serve_command(args, config):
    """The command that serves this build's index, with the paths as the user typed them."""
    if config.index == os.path.join(config.photos, DEFAULT_INDEX_DIR):
        return f"python -m web serve {shlex.quote(args.photos)}"
    return f"python -m web serve --index {shlex.quote(args.index)}"


def cmd_info(args):
    bundle = Bundle.open(locate_bundle(args.index), use_gpu=False)
    m = bundle.manifest
    info = {
        "index": bundle.path, "root": m.root, "count": m.count, "model": m.model["name"],
        "pretrained": m.model["pretrained"], "precision": bundle.fingerprint.precision,
        "dim": m.dim, "metric": m.metric, "index_type": m.index_type,
        "bytes": bundle.bytes_on_disk(), "created_at": m.created_at, "updated_at": m.updated_at,
        "format_version": m.format_version, "generation": m.generation,
    }
    if args.json:
        print(json.dumps(info))
    else:
        for key, value in info.items():
            print(f"{key:>15}: {value}")
    return 0


def cmd_duplicates(args):
    bundle = Bundle.open(locate_bundle(args.index), use_gpu=False)
    with tqdm(total=bundle.count, unit="img", desc="neighbours", disable=not sys.stderr.isatty(),
              file=sys.stderr) as bar:
        report = find_duplicates(bundle, check_threshold(args.threshold), progress=bar.update)
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    spare = sum(len(g.records) - 1 for g in report.groups)
    print(f"{len(report.groups)} groups of duplicates among {report.photos} photos "
          f"(threshold {report.threshold}, {report.seconds:.1f} s): {spare} files could go")
    for group in report.groups:
        print(f"\n{group.kind}, {len(group.records)} files, cosine >= {group.similarity:.3f}:")
        for i, r in enumerate(group.records):
            pixels = f"{r.width}x{r.height}" if r.width else "?x?"
            print(f"  {'keep' if i == 0 else '    '} {r.path}  ({pixels}, {r.size / 1e6:.1f} MB, {r.time_key[:10]})")
    return 0


def cmd_models():
    import open_clip

    for name, tag in open_clip.list_pretrained():
        mark = "  (default)" if (name, tag) == (DEFAULT_MODEL, DEFAULT_PRETRAINED) else ""
        print(f"{name:40} {tag}{mark}")
    return 0
