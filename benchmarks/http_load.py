"""HTTP load for ``bench_query``: the production server on 127.0.0.1 and a bounded client.

Each concurrency level runs a fixed number of requests from that many client
threads, each over its own keep-alive connection, and reports latency
percentiles and throughput (requests over wall time).
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

from .common import SERVER_ENV, summary_ms

READY_TIMEOUT_S = 240  # model load and warm-up on a slow CPU


def http_available():
    try:
        from web import create_app  # noqa: F401
    except ImportError:
        return False
    return True


def serve_and_measure(bundle_dir, texts, levels, gunicorn_args):
    """Start gunicorn on ``bundle_dir``, POST text queries at each concurrency level, stop it."""
    port = _free_port()
    env = dict(os.environ, **SERVER_ENV, PHOTOSEARCH_INDEX=bundle_dir, PHOTOSEARCH_DEVICE="cpu")
    env.pop("PHOTOSEARCH_TOKEN", None)
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", *gunicorn_args, "--bind", f"127.0.0.1:{port}",
                                 "web:create_app()"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            started = _wait_ready(port, proc, log)
            out = {"startup_s": round(started, 1)}
            per_level = len(texts) // len(levels)
            for i, level in enumerate(levels):
                out[f"concurrency_{level}"] = _load(port, texts[i * per_level:(i + 1) * per_level], level)
            return out
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _load(port, texts, concurrency):
    chunks = [texts[i::concurrency] for i in range(concurrency)]
    seconds, errors = [], []
    lock = threading.Lock()

    def client(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for text in chunk:
            body = json.dumps({"text": text, "k": 24})
            start = time.perf_counter()
            conn.request("POST", "/api/search", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            took = time.perf_counter() - start
            with lock:
                if response.status == 200:
                    seconds.append(took)
                else:
                    errors.append(response.status)
        conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in chunks]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    result = summary_ms(seconds) if seconds else {}
    result.update(qps=round(len(seconds) / wall, 1), errors=len(errors), concurrency=concurrency)
    return result


def _wait_ready(port, proc, log):
    start = time.perf_counter()
    while time.perf_counter() - start < READY_TIMEOUT_S:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"gunicorn exited with {proc.returncode}:\n{log.read()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"gunicorn did not answer /healthz within {READY_TIMEOUT_S} s")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
