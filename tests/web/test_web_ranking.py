"""Ranking over HTTP equals ranking computed directly with the encoder and the stored vectors."""

import numpy as np
import pytest

from web_helpers import b64, brute_force_ids

TOL = 1e-5


def assert_same_ranking(results, bundle, query, k):
    """Same scores position by position; ids may differ only among tied scores."""
    expected_ids, expected_scores = brute_force_ids(bundle, query, k)
    got_scores = np.array([r["score"] for r in results])
    assert len(results) == len(expected_ids)
    np.testing.assert_allclose(got_scores, expected_scores, atol=TOL)
    for r, i, s in zip(results, expected_ids, expected_scores):
        if r["id"] != i:  # only a tie may swap two results
            assert abs(float(bundle.vectors[bundle.rows_of([r["id"]])[0]] @ query) - s) < TOL


@pytest.mark.parametrize("text", ["a dog on a beach", "sunset", "red"])
def test_text_query_equals_brute_force(client, bundle, encoder, text):
    response = client.get("/api/search", query_string={"q": text, "k": 10})
    assert response.status_code == 200
    assert_same_ranking(response.get_json()["results"], bundle, encoder.encode_texts([text])[0], 10)


def test_post_text_equals_get(client):
    got = client.get("/api/search?q=a+red+car&k=7").get_json()["results"]
    posted = client.post("/api/search", json={"text": "a red car", "k": 7}).get_json()["results"]
    assert got == posted


def test_embedding_query_equals_brute_force(client, bundle):
    vector = np.random.default_rng(3).normal(size=bundle.dim)
    response = client.post("/api/search", json={"embedding": vector.tolist(), "k": 12})
    assert response.status_code == 200
    assert_same_ranking(response.get_json()["results"], bundle, vector / np.linalg.norm(vector), 12)


def test_every_image_found_first_by_upload(client, bundle, photo_paths, ids_by_path, photo_root):
    # Every format of the tree, as JSON base64, a data: URL and a multipart upload.
    for path in photo_paths[:3]:
        image_id = ids_by_path[path.relative_to(photo_root).as_posix()]
        mime = {".jpg": "jpeg", ".png": "png", ".webp": "webp"}[path.suffix]
        for body in ({"image": b64(path)}, {"image": f"data:image/{mime};base64,{b64(path)}"}):
            first = client.post("/api/search", json={**body, "k": 3}).get_json()["results"][0]
            assert first["id"] == image_id and first["score"] == pytest.approx(1.0, abs=1e-4)
        with path.open("rb") as f:
            response = client.post("/api/search", data={"image": (f, path.name), "k": "3"})
        first = response.get_json()["results"][0]
        assert first["id"] == image_id and first["score"] == pytest.approx(1.0, abs=1e-4)


def test_upload_equals_brute_force_with_encoder(client, bundle, encoder, photo_paths):
    query = encoder.embed_image(photo_paths[7].read_bytes())
    response = client.post("/api/search", json={"image": b64(photo_paths[7]), "k": 8})
    assert_same_ranking(response.get_json()["results"], bundle, query, 8)


def test_combined_query_equals_weighted_sum_by_hand(client, bundle, encoder, photo_paths):
    text = encoder.encode_texts(["beach", "people"])
    image = encoder.embed_image(photo_paths[4].read_bytes())
    stored = np.asarray(bundle.vectors[bundle.rows_of([9])[0]])
    by_hand = 2.0 * text[0] - 0.5 * text[1] + 1.0 * image + 0.75 * stored
    by_hand /= np.linalg.norm(by_hand)
    response = client.post("/api/search", json={"k": 15, "queries": [
        {"text": "beach", "weight": 2}, {"text": "people", "weight": -0.5},
        {"image": b64(photo_paths[4])}, {"id": 9, "weight": 0.75}]})
    assert response.status_code == 200
    # A combined query containing an id does not leave that image out: it is no "more like this".
    assert_same_ranking(response.get_json()["results"], bundle, by_hand, 15)


def test_more_like_this_leaves_the_image_out(client, bundle):
    results = client.post("/api/search", json={"id": 5, "k": 40}).get_json()
    assert 5 not in [r["id"] for r in results["results"]]
    assert results["total"] == bundle.count - 1
    query = np.asarray(bundle.vectors[bundle.rows_of([5])[0]])
    expected_ids, expected_scores = brute_force_ids(bundle, query, bundle.count)
    assert expected_ids[0] == 5  # itself, which "more like this" leaves out
    np.testing.assert_allclose([r["score"] for r in results["results"]], expected_scores[1:], atol=TOL)
