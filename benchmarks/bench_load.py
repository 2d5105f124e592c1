"""Load on the production server: concurrent clients of mixed queries for a fixed time, and its memory.

    python -m benchmarks.bench_load                              # 16 clients, 60 s, ViT-B-32
    python -m benchmarks.bench_load --model tiny --seconds 10    # a quick look with the tiny model

The script builds a bundle of seeded generated photos (kept between runs) with
a seeded random-init checkpoint (no weights are downloaded; speed does not
depend on them), starts gunicorn on the app factory on 127.0.0.1 on a free
port, and runs ``--clients`` threads, each over its own keep-alive connection,
for ``--warmup-seconds`` unmeasured and then ``--seconds`` measured: text
queries (GET and POST; mostly new texts, some the next page of the last one),
image uploads (multipart) and "more like this" by id. Meanwhile it samples
the resident memory of the server's processes. Every loop is bounded
in time and in count, and the server is stopped at the end whatever happens.
Prints one JSON object: requests served, errors by status, latency p50/p99
(overall and by kind), requests per second, and memory at start and end, its
maximum, its mean over each tenth of the run and its linear trend in MB per
minute (over the whole run and over its second half).

With ``--hostile N`` (default 4) a second measured phase of the same length
runs the same clients with N hostile clients beside them: pixel-bomb uploads,
``/knn-service`` with ``deduplicate`` over 10,000 result ids, and texts at and
over the length limit. ``hostile_phase`` reports the normal clients' latency
there (to compare with the first phase) and what the hostile requests got.
"""

import argparse
import http.client
import io
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from .common import WORKDIR, emit, machine, random_checkpoint
from .datasets import write_photo_folder
from .http_load import http_json, production_server

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
MODELS = {"vit-b-32": "ViT-B-32", "tiny": "tiny-load"}
WORDS = ("beach", "sunset", "dog", "cat", "mountain", "city", "night", "snow", "forest", "cake", "red", "car",
         "people", "smiling", "boat", "lake", "old", "building", "flowers", "garden", "sea", "bridge", "rain", "child")


def build_bundle(model_key, photos, workdir):
    """The bundle of ``photos`` seeded 640x480 JPEGs, built once with ``python -m indexer build``."""
    model = MODELS[model_key]
    config = None
    if model_key == "tiny":
        config = os.path.join(workdir, "tiny-load.json")
        os.makedirs(workdir, exist_ok=True)
        with open(config, "w") as f:
            json.dump(TINY, f)
    checkpoint = random_checkpoint(model, workdir, config=config)
    folder = os.path.join(workdir, f"load-photos-{photos}")
    paths = write_photo_folder(folder, photos, size=(640, 480), seed=7)
    index = os.path.join(workdir, f"load-index-{model_key}-{photos}")
    command = [sys.executable, "-m", "indexer", "build", folder, "--index", index, "--model", model,
               "--pretrained", checkpoint, "--device", "cpu"] + (["--model-config", config] if config else [])
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return index, paths, round(time.perf_counter() - started, 1)


KINDS = ("text_get", "text_post", "image", "similar")
REQUEST_TIMEOUT_S = 60


class Client(threading.Thread):
    """One client: its own keep-alive connection, requests of each kind in turn, until the deadline.

    Records ``(kind, status, seconds)`` per request; a failed connection is
    recorded as ``exception:Name`` and replaced.
    """

    def __init__(self, url, number, material, deadline, max_requests):
        super().__init__(daemon=True)
        parts = urllib.parse.urlsplit(url)
        self.address = (parts.hostname, parts.port)
        self.number, self.material, self.deadline, self.max_requests = number, material, deadline, max_requests
        self.rng = random.Random(number)
        self.results = []
        self.last_text = None

    KINDS = KINDS

    def request_kind(self, i):
        return self.KINDS[(i + self.number) % len(self.KINDS)]

    def new_text(self):
        """Three words of a few dozen: mostly a text no client asked for before."""
        return " ".join(self.rng.sample(WORDS, 3))

    def run(self):
        connection = None
        for i in range(self.max_requests):
            if time.monotonic() >= self.deadline:
                break
            kind = self.request_kind(i)
            method, path, body, headers = self.request(kind)
            started = time.perf_counter()
            try:
                connection = connection or http.client.HTTPConnection(*self.address, timeout=REQUEST_TIMEOUT_S)
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as e:
                status = f"exception:{type(e).__name__}"
                if connection is not None:
                    connection.close()
                connection = None
            self.results.append((kind, status, time.perf_counter() - started))
        if connection is not None:
            connection.close()

    def request(self, kind):
        m, rng = self.material, self.rng
        if kind == "text_get":  # a new query, or the next page of this client's last one (the same text)
            if self.last_text is None or rng.random() < 0.5:
                self.last_text, offset = self.new_text(), 0
            else:
                offset = 24
            query = urllib.parse.urlencode({"q": self.last_text, "k": 24, "offset": offset})
            return "GET", f"/api/search?{query}", None, {}
        if kind == "text_post":
            return "POST", "/api/search", _json({"text": self.new_text(), "k": 24}), _JSON
        if kind == "similar":
            return "POST", "/api/search", _json({"id": rng.choice(m["ids"]), "k": 24}), _JSON
        return _multipart(rng.choice(m["uploads"]), "upload.jpg")


_JSON = {"Content-Type": "application/json"}


def _multipart(image, filename):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + image + (
        f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n24\r\n--{boundary}--\r\n").encode()
    return "POST", "/api/search", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _json(value):
    return json.dumps(value).encode()


class HostileClient(Client):
    """A client whose every request is made to cost the server: bombs, huge deduplications, long texts."""

    KINDS = ("bomb_upload", "dedupe_10000", "long_text", "over_long_text")

    def request(self, kind):
        if kind == "bomb_upload":
            return _multipart(self.rng.choice(self.material["bombs"]), "bomb.png")
        if kind == "dedupe_10000":
            return "POST", "/knn-service", _json({"text": self.new_text(), "modality": "image", "num_images": 10,
                                                  "num_result_ids": 10_000, "deduplicate": True,
                                                  "indice_name": self.material["index_name"]}), _JSON
        length = 300 if kind == "long_text" else 5000  # at the limit, and over it
        word = "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(length))
        return "POST", "/api/search", _json({"text": word, "k": 24}), _JSON


def query_bombs():
    """Pixel bombs of a few kB: a 100 MP 1-bit PNG and a 16383 x 6100 lossless WebP."""
    bombs = []
    for mode, size, options in (("1", (10_000, 10_000), {"format": "PNG"}),
                                ("RGB", (16_383, 6_100), {"format": "WEBP", "lossless": True, "method": 0})):
        out = io.BytesIO()
        Image.new(mode, size).save(out, **options)
        bombs.append(out.getvalue())
    return bombs


class MemorySampler(threading.Thread):
    """Resident memory of a process and its children, every ``interval`` seconds, until stopped."""

    def __init__(self, pid, interval, max_samples=100_000):
        super().__init__(daemon=True)
        self.pid, self.interval, self.max_samples = pid, interval, max_samples
        self.samples = []  # (seconds since start, MB)
        self.stop = threading.Event()

    def run(self):
        start = time.monotonic()
        while not self.stop.is_set() and len(self.samples) < self.max_samples:
            self.samples.append((time.monotonic() - start, tree_rss_mb(self.pid)))
            self.stop.wait(self.interval)

    def summary(self):
        t, mb = np.array(self.samples).T
        half = len(t) // 2
        return {
            "samples": len(t), "interval_s": self.interval,
            "start_mb": round(float(mb[0]), 1), "end_mb": round(float(mb[-1]), 1), "max_mb": round(float(mb.max()), 1),
            "tenths_mb": [round(float(part.mean()), 1) for part in np.array_split(mb, min(10, len(mb)))],
            "slope_mb_per_min": round(float(np.polyfit(t / 60, mb, 1)[0]), 2) if len(t) > 2 else None,
            "second_half_slope_mb_per_min": round(float(np.polyfit(t[half:] / 60, mb[half:], 1)[0]), 2)
            if len(t) - half > 2 else None,
        }


def tree_rss_mb(pid):
    """VmRSS of ``pid`` and its direct children (gunicorn's master and workers), in MB."""
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total / 1024


def run_load(url, clients, seconds, material, max_requests, seed=0, hostile=0):
    """``(normal results, wall seconds, clients stuck, hostile results)``."""
    deadline = time.monotonic() + seconds
    workers = [Client(url, seed + i, material, deadline, max_requests) for i in range(clients)]
    attackers = [HostileClient(url, seed + clients + i, material, deadline, max_requests) for i in range(hostile)]
    started = time.monotonic()
    for w in workers + attackers:
        w.start()
    for w in workers + attackers:
        w.join(seconds + 120)  # each request times out in 60 s: a stuck client cannot hold the run forever
    wall = time.monotonic() - started
    return ([r for w in workers for r in w.results], wall, sum(w.is_alive() for w in workers + attackers),
            [r for w in attackers for r in w.results])


def summarize(results, wall):
    statuses = {}
    for _, status, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    ok = [(kind, s) for kind, status, s in results if status == 200]
    out = {"requests": len(results), "served_ok": len(ok), "wall_s": round(wall, 1),
           "requests_per_s": round(len(ok) / wall, 1),
           "errors": {k: v for k, v in statuses.items() if k != "200"}}
    out["latency_ms"] = _percentiles([s for _, s in ok])
    out["by_kind"] = {kind: {"requests": sum(k == kind for k, _ in ok), **_percentiles([s for k, s in ok if k == kind])}
                      for kind in sorted({k for k, _ in ok})}
    return out


def summarize_statuses(results):
    """Per kind: how many, their statuses and latency, whatever the status."""
    return {kind: {"requests": sum(k == kind for k, _, _ in results),
                   "statuses": sorted({str(st) for k, st, _ in results if k == kind}),
                   **_percentiles([s for k, _, s in results if k == kind])}
            for kind in sorted({k for k, _, _ in results})}


def _percentiles(seconds):
    if not seconds:
        return {}
    ms = np.asarray(seconds) * 1e3
    return {"p50": round(float(np.percentile(ms, 50)), 1), "p90": round(float(np.percentile(ms, 90)), 1),
            "p99": round(float(np.percentile(ms, 99)), 1), "max": round(float(ms.max()), 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent client threads")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the clients run, measured")
    parser.add_argument("--warmup-seconds", type=float, default=10.0,
                        help="the same load first, unmeasured: allocator and thread pools settle")
    parser.add_argument("--model", choices=sorted(MODELS), default="vit-b-32",
                        help="seeded random-init model of the bundle (tiny: fast, for a smoke run)")
    parser.add_argument("--photos", type=int, default=300, help="generated photos in the bundle")
    parser.add_argument("--threads", type=int, default=16, help="gunicorn threads (one worker)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="per client: a bound on its loop")
    parser.add_argument("--hostile", type=int, default=4,
                        help="hostile clients beside the normal ones in a second phase (0: no such phase)")
    parser.add_argument("--sample-interval", type=float, default=1.0, help="seconds between memory samples")
    parser.add_argument("--workdir", default=WORKDIR, help="where photos, checkpoints and bundles are kept")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the server, e.g. PHOTOSEARCH_RELOAD_INTERVAL=5")
    args = parser.parse_args(argv)

    index, paths, build_s = build_bundle(args.model, args.photos, args.workdir)
    env = dict(item.split("=", 1) for item in args.env)
    gunicorn_args = ["--workers", "1", "--threads", str(args.threads)]
    sampler = None
    with production_server(index, gunicorn_args, env, ready_timeout=300) as (url, server, ready_s):
        try:
            ids = [r["id"] for r in http_json(url, "/api/search?q=a+photo&k=200")["results"]]
            uploads = [Path(p).read_bytes() for p in paths[:8]]
            material = {"uploads": uploads, "ids": ids}
            run_load(url, args.clients, args.warmup_seconds, material, args.max_requests, seed=1000)
            sampler = MemorySampler(server.pid, args.sample_interval)
            sampler.start()
            results, wall, stuck, _ = run_load(url, args.clients, args.seconds, material, args.max_requests)
            sampler.stop.set()
            sampler.join(10)
            hostile = None
            if args.hostile:
                material.update(bombs=query_bombs(), index_name=http_json(url, "/indices-list")[0])
                normal, hostile_wall, hostile_stuck, attacks = run_load(
                    url, args.clients, args.seconds, material, args.max_requests, seed=2000, hostile=args.hostile)
                hostile = {"hostile_clients": args.hostile, "normal_clients": summarize(normal, hostile_wall),
                           "hostile_requests": summarize_statuses(attacks), "clients_stuck": hostile_stuck}
            alive_after = http_json(url, "/healthz")["status"] == "ok"
        finally:
            if sampler is not None:
                sampler.stop.set()
    emit({
        "benchmark": "load", "machine": machine(),
        "config": {"clients": args.clients, "seconds": args.seconds, "warmup_seconds": args.warmup_seconds,
                   "model": MODELS[args.model], "photos": args.photos,
                   "gunicorn": f"1 worker x {args.threads} threads",
                   "mix": "text GET 1/4 (half of them the next page of the client's last text), text POST 1/4, "
                          "image upload 1/4, more-like-this 1/4", "env": args.env},
        "build_s": build_s, "server_ready_s": ready_s,
        **summarize(results, wall), "clients_stuck": stuck, "healthz_after": alive_after,
        "server_rss": sampler.summary(), "hostile_phase": hostile,
    })


if __name__ == "__main__":
    main()
