"""GET /api/duplicates: found in the background once per generation and threshold, then paged."""

import threading
import time

import pytest

from search.quality.duplicates import find_duplicates
from web.routes import duplicates as route


def wait_ready(client, url, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = client.get(url)
        if response.status_code != 202:
            return response
        time.sleep(0.02)
    raise AssertionError(f"{url} still computing after {seconds} s")


def test_first_request_starts_the_work_and_later_ones_get_the_groups(make_app, bundle, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(route, "find_duplicates", lambda *a: release.wait(10) and find_duplicates(*a))
    client = make_app().test_client()
    first = client.get("/api/duplicates?threshold=0.98")
    assert first.status_code == 202 and first.json["status"] == "computing" and first.json["photos"] == bundle.count
    release.set()
    answer = wait_ready(client, "/api/duplicates?threshold=0.98&limit=2&offset=1")
    assert answer.status_code == 200 and answer.json["status"] == "ready"
    expected = find_duplicates(bundle, 0.98)
    assert answer.json["total_groups"] == len(expected.groups) >= 3  # random weights join generated photos at 0.98
    assert [g["paths"] for g in answer.json["groups"]] == [[r.path for r in g.records] for g in expected.groups[1:3]]
    item = answer.json["groups"][0]["files"][0]
    assert item["thumbnail_url"] == f"/api/thumbnails/{item['id']}"


def test_the_default_threshold_and_bad_queries(client):
    answer = wait_ready(client, "/api/duplicates")
    assert answer.status_code == 200 and answer.json["threshold"] == pytest.approx(0.95)
    for bad in ("threshold=0.1", "threshold=x", "limit=0", "limit=501", "offset=-1", "colour=red", "limit=1&limit=2"):
        response = client.get(f"/api/duplicates?{bad}")
        assert response.status_code == 400, bad
        assert set(response.json["error"]) == {"code", "message"}


def test_the_route_is_in_the_openapi_document(client):
    doc = client.get("/api/openapi.json").json
    operation = doc["paths"]["/api/duplicates"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"threshold", "limit", "offset"}
    assert "DuplicatesResponse" in doc["components"]["schemas"]
