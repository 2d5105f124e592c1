"""clip-retrieval's own ClipClient, unchanged, against the service on a real socket; and image_url fetching."""

import http.server
import importlib.util
import threading
import time
from pathlib import Path

import pytest

from web_helpers import assert_error, serving

from tests.photos import make_photo_tree
from web import ServeConfig, create_app

def load_clip_client():
    """ClipClient from the installed clip-retrieval package (``.ci/run`` installs it without its dependencies).

    The module is loaded by itself: importing the ``clip_retrieval`` package
    would pull in torch, pandas and their models.
    """
    pytest.importorskip("requests")
    spec = importlib.util.find_spec("clip_retrieval")
    if spec is None:
        pytest.skip("clip-retrieval is not installed: pip install --no-deps clip-retrieval==2.45.0")
    path = Path(spec.submodule_search_locations[0]) / "clip_client.py"
    spec = importlib.util.spec_from_file_location("clip_client_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_clip_client_text_image_and_embedding(live_server, bundle, photo_paths, photo_root, ids_by_path):
    clip_client = load_clip_client()
    client = clip_client.ClipClient(url=f"{live_server}/knn-service", indice_name="photos-index", num_images=5)
    results = client.query(text="a dog on a beach")
    assert 1 <= len(results) <= 5
    for r in results:
        assert {"id", "similarity", "image_path", "url"} <= set(r)
        assert r["url"] == f"{live_server}/api/images/{r['id']}"
    first = client.query(image=str(photo_paths[2]))[0]
    assert first["id"] == ids_by_path[photo_paths[2].relative_to(photo_root).as_posix()]
    assert first["similarity"] == pytest.approx(1.0, abs=1e-4)
    vector = bundle.vectors[bundle.rows_of([6])[0]].tolist()
    assert client.query(embedding_input=vector)[0]["id"] == 6
    # Their client returns whatever JSON comes back: our errors arrive in the one shape, not as a 500 page.
    text_client = clip_client.ClipClient(url=f"{live_server}/knn-service", indice_name="photos-index",
                                         modality=clip_client.Modality.TEXT)
    assert text_client.query(text="a dog")["error"]["code"] == "invalid_argument"


class _Photos(http.server.BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self):  # noqa: N802 - the http.server API
        if self.path == "/photo.jpg":
            self._send(200, self.payload)
        elif self.path == "/big.jpg":
            self._send(200, self.payload * 50)
        elif self.path == "/slow.jpg":
            self.send_response(200)
            self.end_headers()
            for _ in range(40):  # drips for 4 s in all, each read well within a socket timeout
                self.wfile.write(b"x" * 10)
                self.wfile.flush()
                time.sleep(0.1)
        elif self.path == "/to-file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
        else:
            self._send(404, b"missing")

    def _send(self, status, data):
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def photo_host(photo_paths):
    _Photos.payload = photo_paths[1].read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Photos)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
    server.server_close()


@pytest.fixture(scope="module")
def url_client(make_app, photo_paths):
    limit = len(photo_paths[1].read_bytes()) * 10
    app = make_app(allow_image_url=True, image_url_max_bytes=limit, image_url_timeout=1.0)
    return app.test_client()


def knn(client, url):
    body = {"image_url": url, "modality": "image", "num_images": 3, "indice_name": "photos-index"}
    return client.post("/knn-service", json=body)


def test_image_url_when_enabled(url_client, photo_host, photo_paths, photo_root, ids_by_path):
    first = knn(url_client, f"{photo_host}/photo.jpg").get_json()[0]
    assert first["id"] == ids_by_path[photo_paths[1].relative_to(photo_root).as_posix()]
    assert first["similarity"] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("path, status, code", [
    ("/big.jpg", 413, "image_too_large"),
    ("/missing.jpg", 400, "image_url_failed"),
    ("/to-file", 400, "image_url_rejected"),
    ("/slow.jpg", 400, "image_url_failed"),
])
def test_image_url_limits(url_client, photo_host, path, status, code):
    started = time.monotonic()
    assert_error(knn(url_client, f"{photo_host}{path}"), status, code)
    assert time.monotonic() - started < 3  # the 1 s limit holds for the whole transfer


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x.jpg", "gopher://x", "http://", "//x/y"])
def test_image_url_schemes_other_than_http_are_refused(url_client, url):
    assert_error(knn(url_client, url), 400, "image_url_rejected")


def test_the_readme_example_as_written(tmp_path, make_config):
    """The README's quick start (index PHOTOS, serve PHOTOS) then its ClipClient lines, unchanged."""
    clip_client = load_clip_client()
    make_photo_tree(tmp_path / "photos", 4)
    make_config(tmp_path / "photos", index=None)()
    app = create_app(ServeConfig(index=str(tmp_path / "photos"), device="cpu", warmup=False))
    with serving(app) as url:
        client = clip_client.ClipClient(url=f"{url}/knn-service", indice_name="photoindex", num_images=20)
        results = client.query(text="a dog on the beach")
    # a list of results (another name gets an error object, which their client then fails on)
    assert isinstance(results, list) and 1 <= len(results) <= 4 and all("image_path" in r for r in results)
