"""clip-retrieval's own ClipClient, unchanged, against the service on a real socket; and image_url fetching."""

import http.server
import importlib.util
import time
from pathlib import Path

import pytest

from web_helpers import assert_error, free_port, http_server, serving

from tests.photos import make_photo_tree
from web import ServeConfig, create_app, fetch

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
            self._redirect("file:///etc/passwd")
        elif self.path == "/trickle.jpg":  # a header line every 0.5 s, for 30 s: no read ever times out
            self.send_response(200)
            for i in range(60):
                self.send_header(f"X-Line-{i}", "x")
                self.flush_headers()
                time.sleep(0.5)
            self.end_headers()
        elif self.path.startswith("/hop/"):  # 0.4 s a hop, then the next: each hop well within the limit
            hops = int(self.path.rsplit("/", 1)[1])
            time.sleep(0.4)
            self._redirect(f"/hop/{hops - 1}" if hops > 1 else "/photo.jpg")
        else:
            self._send(404, b"missing")

    def _redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

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
    with http_server(_Photos) as url:
        yield url


@pytest.fixture(scope="module")
def url_client(make_app, photo_paths):
    limit = len(photo_paths[1].read_bytes()) * 10
    # The test servers are on 127.0.0.1, which a server refuses to reach unless allowed to.
    app = make_app(allow_image_url=True, image_url_max_bytes=limit, image_url_timeout=1.0,
                   image_url_allow_private=True)
    return app.test_client()


def knn(client, url):
    body = {"image_url": url, "modality": "image", "num_images": 3, "indice_name": "photos-index"}
    return client.post("/knn-service", json=body)


def test_image_url_when_enabled(url_client, photo_host, photo_paths, photo_root, ids_by_path):
    first = knn(url_client, f"{photo_host}/photo.jpg").get_json()[0]
    assert first["id"] == ids_by_path[photo_paths[1].relative_to(photo_root).as_posix()]
    assert first["similarity"] == pytest.approx(1.0, abs=1e-4)


def test_image_url_follows_redirects_within_the_deadline(url_client, photo_host):
    assert knn(url_client, f"{photo_host}/hop/2").status_code == 200  # 0.8 s in all


@pytest.mark.parametrize("path, status, code", [
    ("/big.jpg", 413, "image_too_large"),
    ("/missing.jpg", 400, "image_url_failed"),
    ("/to-file", 400, "image_url_failed"),
    ("/slow.jpg", 400, "image_url_failed"),
    ("/trickle.jpg", 400, "image_url_failed"),  # headers that never end: held for 30 s before
    ("/hop/3", 400, "image_url_failed"),  # 1.2 s of redirects, each within the limit: one deadline for all
])
def test_image_url_limits(url_client, photo_host, path, status, code):
    started = time.monotonic()
    assert_error(knn(url_client, f"{photo_host}{path}"), status, code)
    assert time.monotonic() - started < 2  # the 1 s limit holds for the whole fetch


@pytest.fixture(scope="module")
def public_only_client(make_app):
    return make_app(allow_image_url=True, image_url_timeout=2.0).test_client()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "10.0.0.1", "192.168.1.1", "169.254.169.254",
                                  "100.64.0.1", "0.0.0.0", "[::ffff:127.0.0.1]", "[fe80::1]", "224.0.0.1",
                                  "240.0.0.1", "2130706433"])
def test_image_url_refuses_addresses_inside_by_default(public_only_client, photo_host, host):
    port = photo_host.rsplit(":", 1)[1]
    answer = assert_error(knn(public_only_client, f"http://{host}:{port}/photo.jpg"), 400, "image_url_failed")
    assert answer["message"] == fetch.FAILED


def test_image_url_checks_every_redirect(public_only_client, photo_host, monkeypatch):
    checked = []
    monkeypatch.setattr(fetch, "is_public", lambda ip: checked.append(ip) or len(checked) == 1)  # the first hop only
    assert_error(knn(public_only_client, f"{photo_host}/hop/1"), 400, "image_url_failed")
    assert checked == ["127.0.0.1", "127.0.0.1"]
    assert knn(public_only_client, f"{photo_host}/photo.jpg").status_code == 400  # and the same check at once


def test_image_url_failures_all_say_the_same(url_client, photo_host):
    closed_port = free_port()  # nothing listens there
    answers = [knn(url_client, url).get_json() for url in (
        f"http://127.0.0.1:{closed_port}/photo.jpg", f"{photo_host}/missing.jpg", f"{photo_host}/to-file",
        f"{photo_host}/slow.jpg", "http://no-such-host.invalid/x.jpg")]
    assert answers == [{"error": {"code": "image_url_failed", "message": fetch.FAILED}}] * len(answers)


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
