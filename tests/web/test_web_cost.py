"""Every request has a bounded cost: long texts, bomb images and large deduplicated pages are refused or
capped before the expensive part (tokenising, decoding, comparing) runs."""

import json

import pytest

from web.schema.types import MAX_TEXT
from web_helpers import assert_error

KNN = {"modality": "image", "num_images": 5, "indice_name": "photos-index"}


@pytest.fixture
def tokenised(app, monkeypatch):
    """The texts that reached the service's text encoder."""
    seen = []
    texts = app.extensions["photosearch"].texts
    encode = texts._encode
    monkeypatch.setattr(texts, "_encode", lambda batch: seen.extend(batch) or encode(batch))
    return seen


def test_a_text_over_the_limit_is_refused_before_tokenising(client, tokenised):
    word = "qz" * (MAX_TEXT // 2) + "x"  # one made-up word: byte-pair encoding costs its length squared
    assert len(word) == MAX_TEXT + 1
    for response in (client.get("/api/search", query_string={"q": word}),
                     client.post("/api/search", json={"text": word}),
                     client.post("/api/search", json={"queries": [{"text": word, "weight": 1}]}),
                     client.post("/knn-service", data=json.dumps({**KNN, "text": word}))):
        assert_error(response, 400, "invalid_argument")
        assert "300" in response.get_json()["error"]["message"]
    assert tokenised == []
    assert client.get("/api/search", query_string={"q": word[:MAX_TEXT]}).status_code == 200
    assert tokenised == [word[:MAX_TEXT]]
