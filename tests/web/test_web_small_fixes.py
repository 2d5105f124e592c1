"""The audit's small findings (issue 14, item 13): each one reproduced."""

import dataclasses
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from flask import Flask
from werkzeug.serving import make_server

from web import cli
from web_helpers import Subprocess, assert_error

KNN = {"text": "a dog", "modality": "image", "num_images": 3, "indice_name": "photos-index"}


@pytest.mark.parametrize("url, raw", [
    ("/api/search", rb'{"text": "a", "path_prefix": "\ud800"}'),
    ("/api/search", rb'{"text": "a", "path_prefix": "x\udfffy"}'),
    ("/api/search", rb'{"text": "\ud800 dog"}'),
    ("/api/search", rb'{"queries": [{"text": "a", "weight": 1}], "path_prefix": "\udc00\ud800"}'),
    ("/knn-service", rb'{"text": "\ud83d", "modality": "image", "num_images": 3, "indice_name": "photos-index"}'),
])
def test_a_lone_surrogate_is_a_400(client, url, raw):
    assert_error(client.post(url, data=raw, content_type="application/json"), 400, "invalid_json")


def test_a_surrogate_pair_is_a_character(client):
    raw = rb'{"text": "a \ud83d\ude00", "path_prefix": "\ud83d\ude00"}'
    response = client.post("/api/search", data=raw, content_type="application/json")
    assert response.status_code == 200 and response.get_json()["total"] == 0


def test_made_up_methods_share_one_metrics_label(make_app):
    client = make_app().test_client()
    for i in range(50):
        assert client.open("/api/stats", method=f"FOO{i}").status_code == 405
    client.get("/api/stats")
    exposition = client.get("/metrics").get_data(as_text=True)
    assert "FOO" not in exposition
    assert 'method="other"' in exposition and 'method="GET"' in exposition


def test_the_model_s_local_path_is_never_shown(make_app, searcher, monkeypatch):
    client = make_app().test_client()  # then its model is renamed as a local folder's would be
    fingerprint = dataclasses.replace(searcher.encoder.fingerprint, name="local-dir:/srv/secret/models/my-clip")
    monkeypatch.setattr(searcher.encoder, "fingerprint", fingerprint)
    page, stats = client.get("/"), client.get("/api/stats")
    search = client.get("/api/search", query_string={"q": "a dog"})
    for response in (page, stats, search):
        assert response.status_code == 200
        assert b"/srv/secret" not in response.data
    assert b"my-clip" in page.data and stats.get_json()["model"] == "local-dir:my-clip"
    assert search.get_json()["model"] == "local-dir:my-clip"


def test_absolute_urls_use_the_public_url_when_set(make_app):
    hostile = {"Host": "evil.example:666"}
    default = make_app().test_client()
    results = default.post("/knn-service", json=KNN, headers=hostile).get_json()
    assert results[0]["url"].startswith("http://evil.example:666/api/images/")  # documented: set --public-url
    public = make_app(public_url="https://photos.example.org/").test_client()
    for response in (public.post("/knn-service", json=KNN, headers=hostile),
                     public.post("/metadata", json={"ids": [1], "indice_name": "photos-index"}, headers=hostile)):
        body = response.get_json()
        url = body[0]["url"] if "url" in body[0] else body[0]["metadata"]["url"]
        assert url == f"https://photos.example.org/api/images/{body[0]['id']}"


@pytest.mark.parametrize("url", ["ftp://x", "photos.example.org", "https://x/?a=1", "https://"])
def test_a_bad_public_url_is_refused(make_app, url):
    with pytest.raises(Exception, match="public URL"):
        make_app(public_url=url)


@pytest.mark.parametrize("url, raw", [
    ("/knn-service", b'{"text": "a", "text": "b", "modality": "image", "num_images": 3, "indice_name": "x"}'),
    ("/metadata", b'{"ids": [1], "ids": [2], "indice_name": "photos-index"}'),
    ("/api/search", b'{"queries": [{"text": "a", "weight": 1}], "k": 2, "k": 3}'),
])
def test_a_repeated_json_key_is_a_400_on_every_route(client, url, raw):
    error = assert_error(client.post(url, data=raw, content_type="application/json"), 400, "invalid_argument")
    assert "more than once" in error["message"]  # as the README says


def test_the_development_server_drops_a_half_open_connection(bundle_dir, monkeypatch):
    calls = []
    monkeypatch.setattr(Flask, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    assert cli.main(["serve", "--index", str(bundle_dir), "--device", "cpu", "--no-warmup"]) == 0
    app, kwargs = calls[0]
    handler = kwargs["request_handler"]
    assert handler.timeout == cli.IDLE_TIMEOUT
    monkeypatch.setattr(handler, "timeout", 1)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")  # and never the blank line
            started = time.monotonic()
            assert sock.recv(1024) == b""  # the server hung up
            assert time.monotonic() - started < 5
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(180)
def test_each_log_line_is_printed_once(bundle_dir):
    server = Subprocess(["python", "-m", "web", "serve", "--index", str(bundle_dir), "--port", "PORT",
                         "--device", "cpu", "--no-warmup"], {})
    try:
        server.get("/healthz")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(server.url + "/no-such-page", timeout=10)
    finally:
        server.process.terminate()
        output = server.process.communicate(timeout=30)[0]
    lines = [line for line in output.splitlines() if "serving 36 images" in line or "/no-such-page" in line]
    assert len(lines) == 2, output  # open_clip's logging.info() once added a second, root handler
