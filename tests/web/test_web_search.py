"""/api/search: the three request forms, the options and the response shape."""

import pytest

RESULT_FIELDS = {"id", "path", "score", "width", "height", "taken_at", "image_url", "thumbnail_url", "name", "folder",
                 "time", "camera", "size", "file_type", "thumbnail_url_2x", "preview_url", "download_url"}


def test_response_shape(client, bundle):
    body = client.get("/api/search?q=a+photo").get_json()
    assert set(body) == {"results", "total", "took_ms", "model", "weak_below", "strong_total"}
    assert len(body["results"]) == 24  # the default k
    assert body["total"] == bundle.count
    assert body["model"] == bundle.fingerprint.name
    assert body["took_ms"] > 0
    for r in body["results"]:
        assert set(r) == RESULT_FIELDS
        assert r["image_url"] == f"/api/images/{r['id']}"
        assert r["thumbnail_url"] == f"/api/thumbnails/{r['id']}"
        assert r["thumbnail_url_2x"] == f"/api/thumbnails/{r['id']}?scale=2"
        assert r["preview_url"] == f"/api/previews/{r['id']}"
        assert r["download_url"] == f"/api/images/{r['id']}?download=1"
        record = bundle.record(r["id"])
        assert (r["name"], r["folder"]) == tuple(reversed(record.path.rpartition("/")[::2]))
        assert (r["time"], r["size"], r["file_type"], r["camera"]) == (record.time_key, record.size,
                                                                         record.file_type, record.camera)
        assert -1 <= r["score"] <= 1
        assert (r["width"], r["height"]) == (96, 72)
        assert r["path"] == bundle.record(r["id"]).path
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)  # best first


def test_pages_concatenate_to_one_long_page(client):
    whole = client.post("/api/search", json={"text": "mountains", "k": 30}).get_json()["results"]
    pages = []
    for offset in range(0, 30, 7):
        pages += client.post("/api/search", json={"text": "mountains", "k": 7, "offset": offset}).get_json()["results"]
    assert [r["id"] for r in pages[:30]] == [r["id"] for r in whole]


def test_offset_past_the_end_is_an_empty_page(client, bundle):
    body = client.get(f"/api/search?q=x&offset={bundle.count + 5}").get_json()
    assert body["results"] == [] and body["total"] == bundle.count


def test_min_score_cuts_off_and_counts(client):
    everything = client.post("/api/search", json={"text": "a cat", "k": 100}).get_json()["results"]
    cut = everything[len(everything) // 2]["score"]
    body = client.post("/api/search", json={"text": "a cat", "k": 100, "min_score": cut}).get_json()
    assert body["results"] and all(r["score"] >= cut for r in body["results"])
    assert body["total"] == sum(r["score"] >= cut for r in everything)


@pytest.mark.parametrize("prefix", ["album1", "/album1/", "album1/"])
def test_path_prefix_keeps_one_folder(client, bundle, prefix):
    body = client.post("/api/search", json={"text": "trees", "k": 100, "path_prefix": prefix}).get_json()
    expected = [r for r in bundle.metadata.all() if r.path.startswith("album1/")]
    assert body["total"] == len(expected) == len(body["results"])
    assert all(r["path"].startswith("album1/") for r in body["results"])


def test_empty_path_prefix_means_everything(client, bundle):
    body = client.post("/api/search", json={"text": "trees", "path_prefix": ""}).get_json()
    assert body["total"] == bundle.count


def test_get_takes_options_as_strings(client):
    body = client.get("/api/search?q=dogs&k=5&offset=2&min_score=-1&path_prefix=album0").get_json()
    assert len(body["results"]) == 5
    assert all(r["path"].startswith("album0/") for r in body["results"])


def test_multipart_takes_options(client, photo_paths):
    with photo_paths[0].open("rb") as f:
        body = client.post("/api/search", data={"image": (f, "q.jpg"), "k": "4", "offset": "1"}).get_json()
    assert len(body["results"]) == 4


def test_null_fields_count_as_absent(client):
    body = client.post("/api/search", json={"text": "a", "image": None, "id": None, "k": None}).get_json()
    assert len(body["results"]) == 24


def test_queries_weight_defaults_to_one(client):
    single = client.post("/api/search", json={"text": "boats", "k": 5}).get_json()["results"]
    combined = client.post("/api/search", json={"queries": [{"text": "boats"}], "k": 5}).get_json()["results"]
    assert [r["id"] for r in single] == [r["id"] for r in combined]


def test_json_is_parsed_without_a_json_content_type(client):
    response = client.post("/api/search", data='{"text": "a lake"}', content_type="text/plain")
    assert response.status_code == 200


def test_healthz_and_stats(client, bundle):
    assert client.get("/healthz").get_json() == {"status": "ok", "count": bundle.count}
    stats = client.get("/api/stats").get_json()
    assert stats["count"] == bundle.count and stats["dim"] == bundle.dim
    assert stats["model"] == "tiny-test" and stats["pretrained"] == "tiny.pt"  # no server paths
    assert stats["index_type"] == "Flat" and stats["updated_at"] == bundle.manifest.updated_at
    assert stats["index_name"] == "photos-index"
