"""A damaged or vanished bundle never crashes the server nor turns a request into a 500.

The service answers from the last good generation it opened (its files stay
open), says so in ``/healthz`` (``degraded``, and a 503 ``unavailable`` when
the open generation itself cannot answer), and a wrong manifest is one
``error:`` line at start-up.
"""

import json
import os
import shutil
import urllib.error
import urllib.request

import pytest

from search.store.bundle import Bundle
from search.store.manifest import MANIFEST, generation_dir_name, read_manifest, write_manifest
from web import service as service_module
from web.cli import main as serve_main
from web_helpers import assert_error, serving

WRONG_MANIFESTS = {  # the audit's cases: valid JSON, not a manifest
    "only-a-version": {"format_version": 1},
    "a-list": [],
    "generation-as-text": {"generation": "1"},
    "empty-model": {"model": {}},
}


def _wrong(index, name):
    """The manifest of ``index`` made wrong as the case ``name`` says (the keys given replace the real ones)."""
    case = WRONG_MANIFESTS[name]
    if isinstance(case, dict) and len(case) == 1 and "format_version" not in case:
        case = {**json.loads((index / MANIFEST).read_text()), **case}
    return json.dumps(case)


@pytest.mark.parametrize("name", WRONG_MANIFESTS)
def test_a_wrong_manifest_at_start_is_one_error_line(own_bundle, capsys, name):
    _, index, _ = own_bundle()
    (index / MANIFEST).write_text(_wrong(index, name))
    assert serve_main(["serve", "--index", str(index), "--device", "cpu"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1, err
    assert "manifest" in err and "Traceback" not in err


@pytest.fixture
def served(own_bundle, monkeypatch):
    """A copy of a few photos, indexed, served with reloads checked on every request and retried at once."""
    monkeypatch.setattr(service_module, "RETRY_SECONDS", 0)
    root, index, make = own_bundle()
    app = make(reload_interval=0.0)
    return index, app


def _answers_from(client, bundle):
    """Every kind of request answers from ``bundle`` (the generation opened before)."""
    records = bundle.metadata.all()
    assert client.get("/api/search?q=a&k=50").get_json()["total"] == len(records)
    assert client.post("/api/search", json={"id": records[1].id, "k": 50}).get_json()["total"] == len(records) - 1
    for route in ("images", "thumbnails"):
        with client.get(f"/api/{route}/{records[2].id}") as response:
            assert response.status_code == 200
    answer = client.post("/metadata", json={"ids": [records[0].id], "indice_name": "photoindex"})
    assert answer.status_code == 200 and answer.get_json()[0]["metadata"]["image_path"] == records[0].path


@pytest.mark.parametrize("name", WRONG_MANIFESTS)
def test_a_wrong_manifest_under_a_running_server_keeps_the_open_generation(served, name):
    index, app = served
    client = app.test_client()
    bundle = app.extensions["photosearch"].bundle
    good = (index / MANIFEST).read_text()
    (index / MANIFEST).write_text(_wrong(index, name))
    health = client.get("/healthz")
    assert health.status_code == 200 and health.get_json()["status"] == "degraded"
    assert "not a" in health.get_json()["reason"] and "manifest" in health.get_json()["reason"]
    _answers_from(client, bundle)
    (index / MANIFEST).write_text(good)
    assert client.get("/healthz").get_json() == {"status": "ok", "count": bundle.count}


def test_a_truncated_open_vectors_file_is_a_503_never_a_crash(own_bundle):
    """Read with pread, a vectors file truncated under the server is an error, not SIGBUS."""
    _, index, make = own_bundle()
    app = make(vectors="file")
    client = app.test_client()
    bundle = app.extensions["photosearch"].bundle
    generation = index / bundle.manifest.generation_dir
    os.truncate(generation / "vectors.npy", 200)
    assert_error(client.post("/api/search", json={"id": int(bundle.ids[0])}), 503, "bundle_error")
    assert client.get("/api/search?q=a").status_code in (200, 503)  # the index itself is in memory
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["status"] == "unavailable"
    assert "truncated" in health.get_json()["reason"] or "bytes where its header says" in health.get_json()["reason"]


def _get(url):
    """``(status, parsed JSON or raw bytes)`` of a GET, also for error statuses."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            status, body, kind = response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as e:
        status, body, kind = e.code, e.read(), e.headers.get_content_type()
    return status, json.loads(body) if kind == "application/json" else body


def _post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


@pytest.mark.timeout(300)
def test_a_real_server_survives_a_truncated_moved_and_garbage_bundle(served, tmp_path):
    index, app = served
    bundle = app.extensions["photosearch"].bundle
    records = bundle.metadata.all()
    good_manifest = read_manifest(index)
    aside = tmp_path / "aside"

    def truncated_new_generation():  # a rebuild whose vectors file lost its end (a full disk, cp over it)
        new = good_manifest.generation + 1
        shutil.copytree(index / good_manifest.generation_dir, index / generation_dir_name(new))
        os.truncate(index / generation_dir_name(new) / "vectors.npy", 300)
        manifest = read_manifest(index)
        manifest.generation = new
        write_manifest(index, manifest)

    def undo_truncated():
        shutil.rmtree(index / generation_dir_name(good_manifest.generation + 1))
        write_manifest(index, good_manifest)

    def garbage():  # the bundle folder replaced by one of garbage, named alike
        os.rename(index, aside)
        (index / good_manifest.generation_dir).mkdir(parents=True)
        (index / MANIFEST).write_bytes(b"\x00\xffgarbage" * 100)
        for name in ("vectors.npy", "ids.npy", "index.faiss", "metadata.sqlite"):
            (index / good_manifest.generation_dir / name).write_bytes(os.urandom(1000))

    def undo_garbage():
        shutil.rmtree(index)
        os.rename(aside, index)

    damages = [
        ("truncated", truncated_new_generation, undo_truncated, "shorter|bytes where its header says|inconsistent"),
        ("moved away", lambda: os.rename(index, aside), lambda: os.rename(aside, index), "no index bundle"),
        ("garbage", garbage, undo_garbage, "cannot read|not a"),
    ]
    with serving(app) as url:
        for name, damage, undo, reason in damages:
            damage()
            statuses = []
            for _ in range(2):  # the first request notices, the second is served as usual
                status, health = _get(f"{url}/healthz")
                assert status == 200 and health["status"] == "degraded", (name, health)
                assert any(word in health["reason"] for word in reason.split("|")), (name, health)
                assert str(index) not in health["reason"]  # a route without a token names no server path
                status, page = _get(f"{url}/api/search?q=a&k=50")
                assert status == 200 and page["total"] == len(records), name
                status, page = _post(f"{url}/api/search", {"id": records[1].id, "k": 50})
                assert status == 200 and page["total"] == len(records) - 1, name
                for record in records:
                    for route in ("images", "thumbnails"):
                        status, _ = _get(f"{url}/api/{route}/{record.id}")
                        statuses.append(status)
                status, items = _post(f"{url}/metadata", {"ids": [r.id for r in records], "indice_name": "photoindex"})
                assert status == 200 and len(items) == len(records)
            assert set(statuses) == {200}, (name, statuses)
            undo()
            status, health = _get(f"{url}/healthz")
            assert (status, health) == (200, {"status": "ok", "count": len(records)}), name


def test_an_index_of_another_model_is_not_served_nor_opened_again(served, monkeypatch):
    index, app = served
    client = app.test_client()
    bundle = app.extensions["photosearch"].bundle
    opened, bundle_open = [], Bundle.open
    monkeypatch.setattr(service_module.Bundle, "open", lambda *a, **k: opened.append(a) or bundle_open(*a, **k))
    manifest = read_manifest(index)
    manifest.model = {**manifest.model, "name": "another-model"}
    write_manifest(index, manifest)
    for _ in range(3):
        health = client.get("/healthz").get_json()
        assert health["status"] == "degraded" and "another-model" in health["reason"]
        _answers_from(client, bundle)
    assert len(opened) == 1  # the manifest is not opened again until it changes
