"""The documented production command starts a real server: gunicorn on the app factory.

Importing torch dominates its start-up (about 10 s on 2 cores), hence the
``slow`` mark. ``python -m web serve`` is tested in-process in test_web_config.
"""

import shutil

import pytest

from web_helpers import Subprocess

pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("gunicorn") is None, reason="gunicorn is not installed (pip install .[serve])")
def test_gunicorn_on_the_app_factory(bundle_dir, bundle):
    server = Subprocess([shutil.which("gunicorn"), "--workers", "1", "--threads", "4", "--bind", "127.0.0.1:PORT",
                         "web:create_app()"], {"PHOTOSEARCH_INDEX": str(bundle_dir), "PHOTOSEARCH_DEVICE": "cpu"})
    try:
        assert server.get("/healthz") == {"status": "ok", "count": bundle.count}
        body = server.get("/api/search?q=a+dog&k=3")
        assert len(body["results"]) == 3 and body["model"] == "tiny-test"
        assert server.get("/indices-list") == ["photos-index"]
    finally:
        server.stop()
