"""The documented production command starts a real server: gunicorn on the app factory.

Importing torch dominates its start-up (about 10 s on 2 cores), hence the
``slow`` mark. ``python -m web serve`` is tested in-process in test_web_config.
"""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, command, env):
        self.port = free_port()
        command = [part.replace("PORT", str(self.port)) for part in command]
        self.process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def get(self, path, timeout=60):
        """JSON at ``path``, waiting for the server to come up."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self.process.stdout.read()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
                    return json.load(response)
            except urllib.error.URLError as e:
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


@pytest.mark.skipif(shutil.which("gunicorn") is None, reason="gunicorn is not installed (pip install .[serve])")
def test_gunicorn_on_the_app_factory(bundle_dir, bundle):
    server = Server([shutil.which("gunicorn"), "--workers", "1", "--threads", "4", "--bind", "127.0.0.1:PORT",
                     "web:create_app()"], {"PHOTOSEARCH_INDEX": str(bundle_dir), "PHOTOSEARCH_DEVICE": "cpu"})
    try:
        assert server.get("/healthz") == {"status": "ok", "count": bundle.count}
        body = server.get("/api/search?q=a+dog&k=3")
        assert len(body["results"]) == 3 and body["model"] == "tiny-test"
        assert server.get("/indices-list") == ["photos-index"]
    finally:
        server.stop()
