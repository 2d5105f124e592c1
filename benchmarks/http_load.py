"""The production server for the benchmarks, and ``bench_query``'s bounded HTTP client.

``production_server`` runs gunicorn on ``web:create_app()`` at 127.0.0.1 with
the README's environment, as ``bench_query`` and ``bench_load`` measure it.
Each concurrency level of ``serve_and_measure`` runs a fixed number of
requests from that many client threads, each over its own keep-alive
connection, and reports latency percentiles and throughput (requests over
wall time).
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
import urllib.parse
import urllib.request
from contextlib import contextmanager

from .common import SERVER_ENV, summary_ms

READY_TIMEOUT_S = 240  # model load and warm-up on a slow CPU
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def http_available():
    try:
        from web import create_app  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def production_server(bundle_dir, gunicorn_args, env=None, ready_timeout=READY_TIMEOUT_S):
    """gunicorn serving ``bundle_dir``; yields ``(url, process, seconds until /healthz answered)``, then stops it."""
    port = free_port()
    environ = dict(os.environ, **SERVER_ENV, PHOTOSEARCH_INDEX=bundle_dir, PHOTOSEARCH_DEVICE="cpu", **(env or {}))
    environ.pop("PHOTOSEARCH_TOKEN", None)
    command = [sys.executable, "-m", "gunicorn", *gunicorn_args, "--bind", f"127.0.0.1:{port}", "web:create_app()"]
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(command, env=environ, stdout=log, stderr=subprocess.STDOUT, cwd=REPOSITORY)
        try:
            url = f"http://127.0.0.1:{port}"
            yield url, server, wait_ready(url, server, log, ready_timeout)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def serve_and_measure(bundle_dir, texts, levels, gunicorn_args, paired=None, env=None, beside=None):
    """Start gunicorn on ``bundle_dir``, POST text queries at each concurrency level, stop it.

    ``paired``: ``(texts, search)``, to time each text in-process with ``search(text)``
    and then over HTTP, one after the other (see :func:`_paired`). ``env``: the server's settings.
    ``beside``: ``(name, measure)``, a figure taken in this process just before and just after
    each level, while the server idles, so that a ratio to it leaves out the machine's drift.
    """
    with production_server(bundle_dir, gunicorn_args, env) as (url, server, ready_s):
        out = {"startup_s": ready_s}
        if paired:
            out["paired_with_in_process"] = _paired(url, *paired)
        per_level = len(texts) // len(levels)
        for i, level in enumerate(levels):
            before = beside[1]() if beside else None
            cpu = server_cpu_seconds(server.pid)
            out[f"concurrency_{level}"] = result = _load(url, texts[i * per_level:(i + 1) * per_level], level)
            # CPU time over wall time: the server's own work per request, which other jobs sharing the
            # machine move far less than they move its queries per second
            result["server_cpu_ms_per_query"] = round(
                (server_cpu_seconds(server.pid) - cpu) * 1000 / max(1, result.get("n", 0)), 2)
            if beside:
                result[f"{beside[0]}_before_and_after"] = [before, beside[1]()]
        return out


def server_cpu_seconds(pid):
    """CPU seconds used so far by process ``pid`` (gunicorn's arbiter) and its children (the workers); Linux."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids = [pid, *map(int, f.read().split())]
        total = 0
        for p in pids:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    except OSError:
        return float("nan")
    return total / os.sysconf("SC_CLK_TCK")


def _paired(url, texts, search):
    """p50s of each text searched in-process and then over HTTP (concurrency 1), and their ratio.

    Taking the two in turns, text by text, leaves the machine's drift (shared
    machines swing within minutes: RESULTS.md, "Caveat") out of the ratio. The
    first text warms both up and is not counted.
    """
    address = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
    local, remote = [], []
    for text in texts:
        start = time.perf_counter()
        search(text)
        local.append(time.perf_counter() - start)
        took, status = _post_text(conn, text)
        if status != 200:
            raise SystemExit(f"/api/search answered {status} to {text!r}")
        remote.append(took)
    conn.close()
    out = {"in_process": summary_ms(local[1:]), "http": summary_ms(remote[1:])}
    out["http_p50_over_in_process"] = round(out["http"]["p50_ms"] / out["in_process"]["p50_ms"], 3)
    return out


def _load(url, texts, concurrency):
    address = urllib.parse.urlsplit(url)
    chunks = [texts[i::concurrency] for i in range(concurrency)]
    seconds, errors = [], []
    lock = threading.Lock()

    def client(chunk):
        conn = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
        for text in chunk:
            took, status = _post_text(conn, text)
            with lock:
                if status == 200:
                    seconds.append(took)
                else:
                    errors.append(status)
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


def _post_text(conn, text):
    """Seconds until the answer to one text query over ``conn`` was read, and its status."""
    body = json.dumps({"text": text, "k": 24})
    start = time.perf_counter()
    conn.request("POST", "/api/search", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    return time.perf_counter() - start, response.status


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url, path, timeout=60):
    with urllib.request.urlopen(url + path, timeout=timeout) as response:
        return json.load(response)


def wait_ready(url, server, log, timeout):
    """Seconds until ``/healthz`` answers (the model is loaded and warmed up); fails if the server exits."""
    started = time.monotonic()
    while True:
        if server.poll() is not None:
            log.seek(0)
            raise SystemExit(f"the server exited with status {server.returncode}:\n{log.read()[-3000:]}")
        try:
            http_json(url, "/healthz", timeout=max(1.0, timeout - (time.monotonic() - started)))
            return round(time.monotonic() - started, 1)
        except (OSError, http.client.HTTPException):
            if time.monotonic() - started > timeout:
                raise SystemExit(f"the server was not ready after {timeout} s") from None
            time.sleep(0.5)
