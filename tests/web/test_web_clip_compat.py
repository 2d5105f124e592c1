"""clip-retrieval's knn-service protocol: what ClipClient and their front end send, answered in their shape."""

import json

import numpy as np
import pytest

from search.query import ranking
from web_helpers import assert_error, b64, brute_force_ids

INDEX = "photos-index"


def client_body(**inputs):
    """Byte for byte what ClipClient 2.45 posts: all 14 fields, unused inputs null, no content type."""
    body = {"text": None, "image": None, "image_url": None, "embedding_input": None}
    body.update(inputs)
    body.update({
        "deduplicate": True, "use_safety_model": True, "use_violence_detector": True, "indice_name": INDEX,
        "use_mclip": False, "aesthetic_score": 9, "aesthetic_weight": 0.5, "modality": "image",
        "num_images": 40, "num_result_ids": 40,
    })
    return json.dumps(body)


def front_end_body(**overrides):
    """What their web front end posts: string aesthetics, 3000 result ids, text/plain."""
    body = {"text": "a dog", "image": None, "image_url": None, "embedding_input": None, "modality": "image",
            "num_images": 40, "indice_name": INDEX, "num_result_ids": 3000, "use_mclip": False,
            "deduplicate": True, "use_safety_model": True, "use_violence_detector": True,
            "aesthetic_score": "", "aesthetic_weight": "0.5"}
    body.update(overrides)
    return json.dumps(body)


def post(client, url, raw):
    return client.post(url, data=raw, content_type="text/plain;charset=UTF-8")


def expected_after_dedup(bundle, query, k):
    ids, scores = brute_force_ids(bundle, query, k)
    keep = ranking.deduplicate(np.asarray(bundle.vectors[bundle.rows_of(ids)], dtype=np.float32))
    return [ids[i] for i in keep], scores[keep]


def test_client_text_query_has_their_shape_and_our_ranking(client, bundle, encoder):
    response = client.post("/knn-service", data=client_body(text="a dog on a beach"))
    assert response.status_code == 200
    results = response.get_json()
    ids, scores = expected_after_dedup(bundle, encoder.encode_texts(["a dog on a beach"])[0], 40)
    assert [r["id"] for r in results] == ids  # deduplicate=True drops near-duplicates, as theirs does
    np.testing.assert_allclose([r["similarity"] for r in results], scores, atol=1e-5)
    for r in results:
        assert set(r) == {"id", "similarity", "image_path", "url"}
        assert r["image_path"] == bundle.record(r["id"]).path
        assert r["url"] == f"http://localhost/api/images/{r['id']}"


def test_client_image_query_finds_the_image_first(client, photo_paths, photo_root, ids_by_path):
    results = client.post("/knn-service", data=client_body(image=b64(photo_paths[10]))).get_json()
    assert results[0]["id"] == ids_by_path[photo_paths[10].relative_to(photo_root).as_posix()]
    assert results[0]["similarity"] == pytest.approx(1.0, abs=1e-4)


def test_client_embedding_query(client, bundle):
    vector = bundle.vectors[bundle.rows_of([12])[0]].tolist()
    results = client.post("/knn-service", data=client_body(embedding_input=vector)).get_json()
    assert results[0]["id"] == 12 and results[0]["similarity"] == pytest.approx(1.0, abs=1e-5)


def test_without_deduplicate_every_result_id_comes_back(client, bundle):
    raw = front_end_body(deduplicate=False)
    results = post(client, "/knn-service", raw).get_json()
    assert len(results) == bundle.count  # 3000 asked, all there are
    assert [set(r) for r in results[:40]] == [{"id", "similarity", "image_path", "url"}] * min(40, bundle.count)


def test_metadata_only_for_the_first_num_images(client):
    results = post(client, "/knn-service", front_end_body(num_images=3, deduplicate=False)).get_json()
    assert all("image_path" in r for r in results[:3])
    assert all(set(r) == {"id", "similarity"} for r in results[3:]) and len(results) > 3


@pytest.mark.parametrize("overrides", [
    {"aesthetic_score": "9", "aesthetic_weight": "0.5"}, {"aesthetic_score": 5, "aesthetic_weight": 1},
    {"aesthetic_score": None, "aesthetic_weight": None}, {"use_mclip": True, "use_safety_model": False},
])
def test_front_end_variants_are_accepted_and_options_ignored(client, overrides):
    plain = post(client, "/knn-service", front_end_body()).get_json()
    assert post(client, "/knn-service", front_end_body(**overrides)).get_json() == plain


def test_empty_text_is_no_query(client):
    assert_error(post(client, "/knn-service", front_end_body(text="")), 400, "no_query")


def test_first_present_input_is_the_query(client, bundle):
    vector = bundle.vectors[bundle.rows_of([3])[0]].tolist()
    by_text = post(client, "/knn-service", front_end_body(text="a boat")).get_json()
    both = post(client, "/knn-service", front_end_body(text="a boat", embedding_input=vector)).get_json()
    assert both == by_text
    only_vector = post(client, "/knn-service", front_end_body(text="", embedding_input=vector)).get_json()
    assert only_vector[0]["id"] == 3


def test_metadata_route(client, bundle):
    answer = post(client, "/metadata", json.dumps({"ids": [5, 2, 9], "indice_name": INDEX})).get_json()
    assert [a["id"] for a in answer] == [5, 2, 9]
    assert answer[0]["metadata"] == {"image_path": bundle.record(5).path, "url": "http://localhost/api/images/5"}
    assert post(client, "/metadata", json.dumps({"ids": [], "indice_name": INDEX})).get_json() == []


def test_indices_list(client):
    assert client.get("/indices-list").get_json() == [INDEX]


@pytest.mark.parametrize("body, status, code", [
    ({"text": "a", "num_images": 5, "indice_name": INDEX}, 400, "missing_field"),
    ({"text": "a", "modality": "image", "indice_name": INDEX}, 400, "missing_field"),
    ({"text": "a", "modality": "image", "num_images": 5}, 400, "missing_field"),
    ({"text": "a", "modality": None, "num_images": 5, "indice_name": INDEX}, 400, "missing_field"),
    ({"text": "a", "modality": "image", "num_images": 5, "indice_name": INDEX, "colour": 1}, 400, "unknown_field"),
    ({"text": "a", "modality": "image", "num_images": 5, "indice_name": "laion5B"}, 400, "unknown_index"),
    ({"text": "a", "modality": "text", "num_images": 5, "indice_name": INDEX}, 400, "invalid_argument"),
    ({"text": "a", "modality": "image", "num_images": 0, "indice_name": INDEX}, 400, "invalid_argument"),
    ({"text": "a", "modality": "image", "num_images": "5", "indice_name": INDEX}, 400, "invalid_argument"),
    ({"text": "a", "modality": "image", "num_images": 5, "num_result_ids": 10_001, "indice_name": INDEX},
     400, "invalid_argument"),
    ({"text": "a", "modality": "image", "num_images": 5, "indice_name": INDEX, "deduplicate": "yes"},
     400, "invalid_argument"),
    ({"text": "a", "modality": "image", "num_images": 5, "indice_name": INDEX, "aesthetic_score": "high"},
     400, "invalid_argument"),
    ({"text": "a", "modality": "image", "num_images": 5, "indice_name": INDEX, "aesthetic_score": 10},
     400, "invalid_argument"),
    ({"text": "a", "modality": "image", "num_images": 5, "indice_name": INDEX, "aesthetic_weight": "x"},
     400, "invalid_argument"),
    ({"modality": "image", "num_images": 5, "indice_name": INDEX}, 400, "no_query"),
    ({"embedding_input": [1.0, 2.0], "modality": "image", "num_images": 5, "indice_name": INDEX},
     400, "invalid_argument"),
    ({"image": "@@@", "modality": "image", "num_images": 5, "indice_name": INDEX}, 400, "invalid_argument"),
    ({"image_url": "http://127.0.0.1:9/x.jpg", "modality": "image", "num_images": 5, "indice_name": INDEX},
     403, "image_url_disabled"),
    # every query field given is checked, not only the first, which is the query
    ({"text": "a", "image_url": "x" * 5000, "modality": "image", "num_images": 5, "indice_name": INDEX},
     400, "invalid_argument"),
    ({"text": "a", "embedding_input": "", "modality": "image", "num_images": 5, "indice_name": INDEX},
     400, "invalid_argument"),
    ({"embedding_input": [1e30] * 32, "modality": "image", "num_images": 5, "indice_name": INDEX},
     400, "invalid_argument"),
])
def test_knn_service_errors(client, body, status, code):
    assert_error(post(client, "/knn-service", json.dumps(body)), status, code)


@pytest.mark.parametrize("body, status, code", [
    ({"ids": [1]}, 400, "missing_field"),
    ({"ids": "1,2", "indice_name": INDEX}, 400, "invalid_argument"),
    ({"indice_name": INDEX}, 400, "invalid_argument"),
    ({"ids": [1, "2"], "indice_name": INDEX}, 400, "invalid_argument"),
    ({"ids": [1, 99999], "indice_name": INDEX}, 404, "unknown_id"),
    ({"ids": [1], "indice_name": "other"}, 400, "unknown_index"),
    ({"ids": [], "indice_name": "other"}, 400, "unknown_index"),
    ({"ids": [1], "indice_name": INDEX, "columns": ["url"]}, 400, "unknown_field"),
])
def test_metadata_errors(client, body, status, code):
    assert_error(post(client, "/metadata", json.dumps(body)), status, code)


def test_cors_only_when_configured_and_only_on_their_routes(client, make_app):
    assert "Access-Control-Allow-Origin" not in client.get("/indices-list").headers
    cors = make_app(cors_origin="https://front.example").test_client()
    assert cors.get("/indices-list").headers["Access-Control-Allow-Origin"] == "https://front.example"
    preflight = cors.options("/knn-service", headers={"Origin": "https://front.example",
                                                      "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://front.example"
    assert "Access-Control-Allow-Origin" not in cors.get("/api/stats").headers


def test_an_empty_indice_name_is_the_index_served(client):
    # Their front end sends its first query before its list of indices arrives, with indice_name "".
    named = post(client, "/knn-service", front_end_body()).get_json()
    assert post(client, "/knn-service", front_end_body(indice_name="")).get_json() == named
    ids = [r["id"] for r in named[:3]]
    assert post(client, "/metadata", json.dumps({"ids": ids, "indice_name": ""})).get_json() == \
        post(client, "/metadata", json.dumps({"ids": ids, "indice_name": INDEX})).get_json()
