"""/metrics: Prometheus text with request latency by route and query latency by stage."""

from prometheus_client.parser import text_string_to_metric_families


def samples(client):
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    families = {f.name: f for f in text_string_to_metric_families(response.get_data(as_text=True))}
    return families


def count(family, **labels):
    return sum(s.value for s in family.samples
               if s.name.endswith("_count") and all(s.labels.get(k) == v for k, v in labels.items()))


def test_request_and_stage_histograms(make_app, photo_paths):
    client = make_app().test_client()  # a fresh registry
    client.get("/api/search?q=a+cat")
    client.post("/api/search", json={"id": 3})
    with photo_paths[0].open("rb") as f:
        client.post("/api/search", data={"image": (f, "q.jpg")})
    client.post("/api/search", json={"queries": [{"text": "a"}, {"text": "b", "weight": -1}]})
    client.post("/api/search", data="{bad")
    families = samples(client)
    requests = families["photosearch_http_request_duration_seconds"]
    assert count(requests, endpoint="api.search", method="GET", status="200") == 1
    assert count(requests, endpoint="api.search", method="POST", status="200") == 3
    assert count(requests, endpoint="api.search", method="POST", status="400") == 1
    stages = families["photosearch_query_stage_duration_seconds"]
    for kind in ("text", "id", "image", "combined"):
        assert count(stages, stage="embed", kind=kind) == 1
        assert count(stages, stage="search", kind=kind) == 1


def test_deduplicate_stage_and_index_size(make_app, bundle):
    client = make_app().test_client()
    client.post("/knn-service", json={"text": "x", "modality": "image", "num_images": 10,
                                      "indice_name": "photos-index", "deduplicate": True})
    families = samples(client)
    assert count(families["photosearch_query_stage_duration_seconds"], stage="deduplicate") == 1
    assert families["photosearch_index_images"].samples[0].value == bundle.count


def test_unknown_paths_share_one_label(make_app):
    client = make_app().test_client()
    for i in range(5):
        client.get(f"/no/such/page/{i}")
    requests = samples(client)["photosearch_http_request_duration_seconds"]
    assert count(requests, endpoint="unmatched", status="404") == 5
