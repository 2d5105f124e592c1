"""Assertions, reference computations and servers shared by the web tests."""

import base64
import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[2]


def b64(path):
    return base64.b64encode(path.read_bytes()).decode()


def brute_force_ids(bundle, query, k):
    """Ids of the ``k`` stored vectors nearest ``query`` and their scores, computed directly."""
    scores = np.asarray(bundle.vectors, dtype=np.float64) @ np.asarray(query, dtype=np.float64)
    order = np.lexsort((bundle.ids, -scores))[:k]
    return [int(i) for i in bundle.ids[order]], scores[order]


def assert_error(response, status, code=None):
    """The one error shape, with the expected status (and code), of a Flask test response."""
    assert response.status_code == status, response.get_data(as_text=True)
    return assert_error_shape(response.mimetype, response.get_json(), code)


def assert_error_shape(mimetype, body, code=None):
    """``{"error": {"code", "message"}}`` as JSON; returns the inner object."""
    assert mimetype == "application/json", mimetype
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def serving(app):
    """``app`` on 127.0.0.1 on a free port, in a thread: yields its base URL."""
    return _in_thread(make_server("127.0.0.1", 0, app, threaded=True))


def http_server(handler):
    """A ``http.server`` handler class on 127.0.0.1 on a free port, in a thread: yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    return _in_thread(server)


@contextmanager
def _in_thread(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Subprocess:
    """A server command run from the repository root; ``PORT`` in it becomes a free port on 127.0.0.1."""

    def __init__(self, command, env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [part.replace("PORT", str(self.port)) for part in command]
        self.process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def get(self, path, timeout=120):
        """JSON at ``path``, waiting up to ``timeout`` seconds for the server to come up.

        gunicorn listens before its worker has imported torch: a request may
        wait in the backlog, so each try may take all the time that is left.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self.process.stdout.read()}")
            try:
                left = max(1.0, deadline - time.monotonic())
                with urllib.request.urlopen(self.url + path, timeout=left) as response:
                    return json.load(response)
            except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
                if isinstance(e, urllib.error.HTTPError) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


@contextmanager
def gunicorn_server(bundle_dir, **env):
    """The documented production command on ``bundle_dir``, on 127.0.0.1: yields its base URL."""
    server = Subprocess([shutil.which("gunicorn"), "--workers", "1", "--threads", "4", "--bind", "127.0.0.1:PORT",
                         "web:create_app()"],
                        {"PHOTOSEARCH_INDEX": str(bundle_dir), "PHOTOSEARCH_DEVICE": "cpu", **env})
    try:
        server.get("/healthz")
        yield server.url
    finally:
        server.stop()


def raw_request(url, data, timeout=15, close_write=False):
    """Send ``data`` as is to the server at ``url``: ``(status, headers, body)``, or None if it hung up.

    ``data`` may be an iterable of ``(bytes, seconds to wait after)`` for a slow client.
    ``close_write`` half-closes the socket after sending, as a client that stops mid-body.
    """
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        try:
            for chunk, pause in ([(data, 0)] if isinstance(data, bytes) else data):
                sock.sendall(chunk)
                time.sleep(pause)
            if close_write:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered and closed before the rest: read what it said
        response = http.client.HTTPResponse(sock)
        try:
            response.begin()
            return response.status, response.headers, response.read()
        except (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError):
            return None  # it hung up, or answered as to HTTP/0.9 (a body without a status line)
