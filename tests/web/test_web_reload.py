"""A running service picks up the generation that a rebuild commits, without reloading the model,
and clients querying it throughout a rebuild see no failure."""

import json
import shutil
import threading
import time
import urllib.request

from indexer import BuildConfig, build
from search.store.bundle import Bundle
from search.query.searcher import Searcher
from web import ServeConfig, create_app
from web_helpers import b64, serving


def serve(index, encoder, reload_interval=0.0):
    searcher = Searcher(Bundle.open(str(index)), encoder)
    return create_app(ServeConfig(index=str(index), warmup=False, reload_interval=reload_interval),
                      searcher=searcher)


def test_rebuilt_index_is_picked_up(tmp_path, photo_paths, tiny_config_file, tiny_checkpoint, searcher):
    photos, index = tmp_path / "photos", tmp_path / "index"
    photos.mkdir()
    config = BuildConfig(photos=str(photos), index=str(index), model=tiny_config_file.stem,
                         model_config=str(tiny_config_file), pretrained=str(tiny_checkpoint), workers=0)
    for path in photo_paths[:4]:
        shutil.copy(path, photos / path.name)
    build(config)
    app = serve(index, searcher.encoder)
    client = app.test_client()
    assert client.get("/api/stats").get_json()["count"] == 4

    for path in photo_paths[4:7]:
        shutil.copy(path, photos / path.name)
    build(config)
    stats = client.get("/api/stats").get_json()
    assert stats["count"] == 7 and stats["generation"] == 2
    assert client.get("/api/search?q=a&k=50").get_json()["total"] == 7
    assert app.extensions["photosearch"].searcher.encoder is searcher.encoder  # the model was not reloaded
    assert "photosearch_index_images 7.0" in client.get("/metrics").get_data(as_text=True)


def test_a_damaged_manifest_keeps_the_index_being_served(tmp_path, bundle_dir, bundle, searcher):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    app = serve(copy, searcher.encoder)
    served = app.extensions["photosearch"].searcher
    (copy / "manifest.json").write_text("{ not json")
    response = app.test_client().get("/api/search?q=a")
    assert response.status_code == 200 and response.get_json()["total"] == bundle.count
    assert app.extensions["photosearch"].searcher is served


CLIENTS = 4
MAX_REQUESTS = 3000  # per client: a bound on the loop, far above what the test needs


class Client(threading.Thread):
    """Queries the server in a loop, by text (GET and POST) and "more like this", until told to stop.

    Records the index size each answer implies, and every failure.
    """

    def __init__(self, url, example_id, stop, deadline):
        super().__init__(daemon=True)
        self.url, self.example_id, self.stop, self.deadline = url, example_id, stop, deadline
        self.counts = []  # (monotonic time, images in the index according to the answer)
        self.failures = []

    def run(self):
        for i in range(MAX_REQUESTS):
            if self.stop.is_set() or time.monotonic() > self.deadline:
                return
            try:
                self.counts.append((time.monotonic(), self.query(i % 3)))
            except Exception as e:  # noqa: BLE001 - any failure is what the test counts
                self.failures.append(repr(e))

    def query(self, kind):
        if kind == 0:
            return self.get("/api/search?q=a+photo&k=100")["total"]
        if kind == 1:
            return self.post({"text": "a photo", "k": 100})["total"]
        return self.post({"id": self.example_id, "k": 100})["total"] + 1  # the example itself is left out

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            assert response.status == 200
            return json.load(response)

    def post(self, body):
        request = urllib.request.Request(self.url + "/api/search", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            return json.load(response)


def test_clients_see_no_failure_during_a_rebuild_and_then_the_new_photos(
        tmp_path, photo_paths, photo_root, tiny_config_file, tiny_checkpoint, searcher):
    photos, index = tmp_path / "photos", tmp_path / "index"
    config = BuildConfig(photos=str(photos), index=str(index), model=tiny_config_file.stem,
                         model_config=str(tiny_config_file), pretrained=str(tiny_checkpoint), workers=0)
    old, new = photo_paths[:8], photo_paths[8:14]
    _copy(old, photo_root, photos)
    build(config)
    app = serve(index, searcher.encoder, reload_interval=0.2)
    example_id = app.extensions["photosearch"].bundle.metadata.all()[0].id
    stop = threading.Event()
    with serving(app) as url:
        clients = [Client(url, example_id, stop, time.monotonic() + 120) for _ in range(CLIENTS)]
        for client in clients:
            client.start()
        _wait(lambda: all(len(c.counts) >= 5 for c in clients), "the clients to get going")
        _copy(new, photo_root, photos)
        build_started = time.monotonic()
        build(config)
        build_ended = time.monotonic()
        _wait(lambda: all(c.counts and c.counts[-1][1] == len(old) + len(new) for c in clients),
              "every client to see the new index", timeout=10)
        stop.set()
        for client in clients:
            client.join(30)
        assert not any(c.is_alive() for c in clients)

        assert [f for c in clients for f in c.failures] == []
        during = sum(build_started <= t <= build_ended for c in clients for t, _ in c.counts)
        assert during > 0, "no query ran while the index was rebuilt"
        for client in clients:
            seen = [count for _, count in client.counts]
            assert set(seen) == {len(old), len(new) + len(old)}
            assert seen == sorted(seen), "a client saw the old index again after the new one"
        # The new photos are found by their own image, and served.
        target = new[0].relative_to(photo_root).as_posix()
        request = urllib.request.Request(url + "/api/search", data=json.dumps({"image": b64(new[0]), "k": 1}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            best = json.load(response)["results"][0]
        assert best["path"] == target
        with urllib.request.urlopen(url + best["image_url"], timeout=30) as response:
            assert response.read() == new[0].read_bytes()
    print(f"{sum(len(c.counts) for c in clients)} queries by {CLIENTS} clients, {during} during the rebuild, 0 failed")


def _wait(condition, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _copy(paths, root, to):
    for path in paths:
        target = to / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
