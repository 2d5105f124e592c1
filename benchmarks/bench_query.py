"""Query latency: text, image and more-like-this, in-process and over HTTP, at 10k to 1M vectors.

    python -m benchmarks.bench_query --size small           # 10k vectors
    python -m benchmarks.bench_query --n 1000000 --no-http  # one size, in-process only
    python -m benchmarks.bench_query --n 1000000 --parts filters  # filtered queries and browsing only
    python -m benchmarks.bench_query --n 10000 --texts mixed --precision int8  # int8; HTTP c=16 q/s over the encoder alone

Bundles hold seeded synthetic vectors (``benchmarks.datasets``) with the real
query model beside them: a seeded random-init ViT-B-32 (speed does not depend
on the weights). They are built once through ``search.store.writer.commit``, so
the index is the one the builder chooses, and kept in the work folder.
Over HTTP the production server runs: gunicorn on ``web:create_app()`` on
127.0.0.1, with a bounded number of requests per concurrency level.
Prints one JSON object.
"""

import argparse
import io
import itertools
import os
import time

import numpy as np

from search.store.bundle import Bundle
from search.store.writer import commit
from search.errors import BundleError
from search.store.manifest import Manifest, read_manifest
from search.store.metadata import ImageRecord
from search.encoding.fingerprint import ModelFingerprint
from search.encoding.precision import PRECISIONS
from search.query.searcher import Searcher
from search.runtime import configure_process

from . import filtered
from .common import WORKDIR, emit, latencies, machine, random_checkpoint, summary_ms
from .datasets import clustered, natural_photo
from .http_load import http_available, serve_and_measure

CAMERAS = ("Canon EOS R5", "iPhone 13", "Pixel 8", None)
SIZES = {"small": [10_000], "medium": [10_000, 100_000], "large": [10_000, 100_000, 1_000_000]}
IN_PROCESS_TEXTS, ENCODING_TEXTS, HTTP_TEXTS, PAIRED_TEXTS, RATE_TEXTS = (  # distinct
    1_000_000, 2_000_000, 3_000_000, 4_000_000, 5_000_000)
_RATE_RUNS = itertools.count()
WORDS = ("dog", "beach", "sunset", "mountain", "city", "birthday", "snow", "forest", "car", "cat", "boat", "bridge")
QUERY_WORDS = WORDS + ("red", "old", "night", "rain", "river", "garden", "kids", "wedding", "dinner", "train",
                       "street", "market", "lake", "tree", "flowers", "party", "horse", "bike", "church", "window",
                       "sky", "clouds", "family", "friends", "baby", "house", "road", "field", "castle", "harbor",
                       "museum", "concert", "festival", "winter", "summer", "autumn")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--n", type=int, action="append", help="collection size (repeatable; overrides --size)")
    parser.add_argument("--queries", type=int, default=100, help="text and more-like-this queries timed")
    parser.add_argument("--image-queries", type=int, default=20)
    parser.add_argument("--large-k", type=int, default=2000, help="k of the large-result query (0: skip)")
    parser.add_argument("--http", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--http-requests", type=int, default=64, help="requests per concurrency level")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--texts", choices=TEXT_KINDS, default="equal",
                        help="text queries timed in-process and over HTTP: of equal token counts, or of mixed lengths")
    parser.add_argument("--gunicorn-args", default="--workers 1 --threads 16")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="the encoder's precision, in-process and in the server (PHOTOSEARCH_PRECISION)")
    parser.add_argument("--parts", default="queries,filters",
                        help="what to time: queries (text, image, more like this, HTTP), "
                             "filters (filtered queries, the relevance cut, browsing, facets)")
    parser.add_argument("--workdir", default=WORKDIR)
    args = parser.parse_args(argv)
    configure_process()  # as the server does: before torch loads (OpenMP threads then sleep while they wait)
    info = machine()  # the load average as the run starts: other work competing for the CPU
    from search.encoding.encoder import load_encoder

    checkpoint = random_checkpoint("ViT-B-32", args.workdir)
    encoder = load_encoder("ViT-B-32", checkpoint, device="cpu", precision=args.precision)
    levels = [int(c) for c in args.concurrency.split(",")]
    results = {"collections": []}
    if "queries" in args.parts.split(","):
        results["text_encoding"] = text_encoding(encoder, args.queries)
    for n in args.n or SIZES[args.size]:
        path = ensure_bundle(os.path.join(args.workdir, f"query-bundle-{n}-meta2"), n, encoder)
        searcher = Searcher(Bundle.open(path, use_gpu=False), encoder)
        warm_page_cache(searcher.bundle.vectors)
        entry = {"n": n, "index_type": searcher.bundle.manifest.index_type,
                 "index_params": searcher.bundle.manifest.index_params.get("search")}
        parts = args.parts.split(",")
        if "filters" in parts:
            entry["filters"] = filtered.measure(searcher, args.queries)
        if "queries" not in parts:
            results["collections"].append(entry)
            continue
        entry["in_process"] = in_process(searcher, args)
        if args.http and http_available():
            queries = TEXT_KINDS[args.texts](args.http_requests * len(levels), offset=HTTP_TEXTS)
            paired = TEXT_KINDS[args.texts](args.queries, offset=PAIRED_TEXTS), lambda t: searcher.search_text(t, k=24)
            beside = "encoder_texts_per_s", lambda: encoder_rate(encoder, args.texts)
            entry["http"] = serve_and_measure(path, queries, levels, args.gunicorn_args.split(), paired,
                                              env={"PHOTOSEARCH_PRECISION": args.precision}, beside=beside)
            entry["http_p50_over_in_process"] = entry["http"]["paired_with_in_process"]["http_p50_over_in_process"]
            c1 = entry["http"].get("concurrency_1")
            if c1 and "concurrency_16" in entry["http"]:
                entry["http_qps_16_over_1"] = round(entry["http"]["concurrency_16"]["qps"] / c1["qps"], 2)
                # what c=16 over c=1 would be if the server did nothing but encode texts 16 at a time
                texts_per_s = 1000 / results["text_encoding"][ENCODED_TOGETHER[args.texts]]["mean_ms"]
                entry["http_qps_16_over_1_encoder_bound"] = round(texts_per_s / c1["qps"], 2)
                # issue 17's target (>= 0.6): c=16 queries/s over the encoder's own texts/s, 16 texts a call,
                # the encoder timed just before and after the c=16 load
                c16 = entry["http"]["concurrency_16"]
                encoder_beside = np.mean(c16["encoder_texts_per_s_before_and_after"])
                entry["http_qps_16_over_encoder_16"] = round(c16["qps"] / encoder_beside, 3)
        results["collections"].append(entry)
    emit({"benchmark": "query", "machine": info, "model": "ViT-B-32 (random init)", "k": 24,
          "precision": encoder.fingerprint.describe(),
          "results": results, "http_server": f"gunicorn {args.gunicorn_args} web:create_app()"
          if args.http and http_available() else "web.create_app not available: HTTP not measured"})


def in_process(searcher, args):
    rng = np.random.default_rng(0)
    ids = searcher.bundle.ids[rng.choice(searcher.bundle.count, args.queries, replace=False)]
    images = [jpeg(seed) for seed in range(args.image_queries)]
    out = {
        "text": summary_ms(latencies(lambda t: searcher.search_text(t, k=24),
                                     TEXT_KINDS[args.texts](args.queries, offset=IN_PROCESS_TEXTS))),
        "image": summary_ms(latencies(lambda b: searcher.search_image(b, k=24), images, warmup=1)),
        "more_like_this": summary_ms(latencies(lambda i: searcher.search_id(int(i), k=24), list(ids))),
    }
    if args.large_k:
        k = min(args.large_k, searcher.bundle.count - 1)
        out[f"more_like_this_k{k}"] = summary_ms(latencies(lambda i: searcher.search_id(int(i), k=k), list(ids[:20])))
    return out


def text_encoding(encoder, count, together=16):
    """Milliseconds per text: open_clip over the full 77-token context, ours one at a time, ours 16 at a time;
    and 16 texts of mixed lengths at a time, each text padded to the longest against short texts packed."""
    import torch

    sample = texts(count, offset=ENCODING_TEXTS)

    def full_context(text):
        with torch.inference_mode():
            encoder.model.encode_text(encoder.tokenizer([text]))

    def per_text_in_calls(encode, sample):
        batches = [sample[i:i + together] for i in range(0, count - together + 1, together)]
        return summary_ms(latencies(encode, batches, warmup=1) / together)

    out = {
        "full_context_one_at_a_time": summary_ms(latencies(full_context, sample)),
        "one_at_a_time": summary_ms(latencies(lambda t: encoder.encode_texts([t]), sample)),
        f"{together}_together_per_text": per_text_in_calls(encoder.encode_texts, sample),
    }
    one = out["one_at_a_time"]["mean_ms"]
    out["speedup_one_at_a_time"] = round(out["full_context_one_at_a_time"]["mean_ms"] / one, 2)
    out[f"speedup_{together}_together"] = round(one / out[f"{together}_together_per_text"]["mean_ms"], 2)
    tower = encoder._text_tower
    if tower is not None:
        def padded(batch):
            with torch.inference_mode():
                tower.encode(encoder.tokenizer(batch), pack=False)

        mixed = mixed_length_texts(count, offset=ENCODING_TEXTS)
        out[f"{together}_mixed_lengths_padded_per_text"] = per_text_in_calls(padded, mixed)
        out[f"{together}_mixed_lengths_packed_per_text"] = per_text_in_calls(encoder.encode_texts, mixed)
        out[f"speedup_{together}_mixed_lengths_packed"] = round(
            out[f"{together}_mixed_lengths_padded_per_text"]["mean_ms"]
            / out[f"{together}_mixed_lengths_packed_per_text"]["mean_ms"], 2)
    return out


def encoder_rate(encoder, kind, calls=8, together=16):
    """Texts per second of ``encoder`` alone, ``together`` distinct texts of ``kind`` a call (packed)."""
    sample = TEXT_KINDS[kind]((calls + 1) * together, offset=RATE_TEXTS + next(_RATE_RUNS) * 10_000)  # fresh
    encoder.encode_texts(sample[:together])  # untimed: the first call after the server ran is slower
    start = time.perf_counter()
    for i in range(1, calls + 1):
        encoder.encode_texts(sample[i * together:(i + 1) * together])
    return round(calls * together / (time.perf_counter() - start), 1)


def texts(count, offset):
    """Distinct query texts, so no cache of repeated texts flatters a figure.

    Offsets of the same number of digits give texts of the same token count:
    text encoding stops at the last token, so longer texts take longer.
    """
    return [f"a photo of a {WORDS[i % len(WORDS)]} near a {WORDS[(i // 7) % len(WORDS)]}, number {offset + i}"
            for i in range(count)]


def mixed_length_texts(count, offset):
    """Distinct queries of 2 to 12 words, as lengths vary in what people type (seeded by ``offset``)."""
    rng = np.random.default_rng(offset)
    out = {}
    while len(out) < count:
        words = rng.choice(QUERY_WORDS, size=2 + len(out) % 11)
        out.setdefault(" ".join(words), None)
    return list(out)


TEXT_KINDS = {"equal": texts, "mixed": mixed_length_texts}
ENCODED_TOGETHER = {"equal": "16_together_per_text", "mixed": "16_mixed_lengths_packed_per_text"}


def warm_page_cache(vectors, chunk=1 << 16):
    """Read the memory-mapped vectors once, as a server that has run a while has them in the page cache.

    Candidates are re-scored from these rows, so a cold cache turns each query into random disk reads
    (``RESULTS.md``, "Queries": a cold page cache).
    """
    for start in range(0, len(vectors), chunk):
        np.asarray(vectors[start:start + chunk]).sum()


def jpeg(seed):
    buf = io.BytesIO()
    natural_photo(10_000 + seed, (1632, 1224)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def record(i):
    """Metadata of synthetic photo ``i``: 100 folders (one keeps 1%), four cameras, one photo every 17 minutes
    from 2001 on (a third without EXIF time, dated by mtime), so browsing and filters meet varied values."""
    when = 978_307_200 + i * 1021  # 2001-01-01 UTC onwards
    taken = None if i % 3 == 0 else time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when))
    return ImageRecord(i, f"album{i % 100:03d}/img{i:07d}.jpg", 1_000_000 + i, when * 10**9, f"{i:064x}", 4000, 3000,
                       taken, CAMERAS[i % len(CAMERAS)])


def ensure_bundle(path, n, encoder):
    """A bundle of ``n`` synthetic vectors for ``encoder``'s space, built once."""
    try:
        manifest = read_manifest(path)
        # any precision's queries search the same vectors (synthetic ones, whatever the encoder)
        if manifest.count == n and ModelFingerprint.from_dict(manifest.model).same_space(encoder.fingerprint):
            return path
    except BundleError:  # missing or unreadable: build it
        pass
    vectors = clustered(n, dim=encoder.dim, seed=0)
    records = [record(i) for i in range(n)]
    manifest = Manifest(model=encoder.fingerprint.to_dict(), dim=encoder.dim, root=os.path.join(path, "no-photos"))
    commit(path, manifest, records, vectors)
    return path


if __name__ == "__main__":
    main()
