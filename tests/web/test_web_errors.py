"""Every bad request gets a 4xx in the one error shape, and the server keeps serving."""

import base64
import io

import pytest
from PIL import Image

from web_helpers import assert_error

DIM = 32
B64_TEXT = base64.b64encode(b"hello, not an image").decode()

JSON_CASES = [
    ({}, 400, "no_query"),
    ({"k": 3}, 400, "no_query"),
    ({"text": "a", "id": 1}, 400, "several_queries"),
    ({"text": "a", "queries": [{"text": "b"}]}, 400, "several_queries"),
    ({"text": 5}, 400, "invalid_argument"),
    ({"text": "   "}, 400, "invalid_argument"),
    ({"text": "a" * 301}, 400, "invalid_argument"),
    ({"text": "a", "extra": 1}, 400, "unknown_field"),
    ({"id": "3"}, 400, "invalid_argument"),
    ({"id": True}, 400, "invalid_argument"),
    ({"id": 2.0}, 400, "invalid_argument"),
    ({"id": -1}, 400, "invalid_argument"),
    ({"id": 2 ** 64}, 400, "invalid_argument"),
    ({"id": 99999}, 404, "unknown_id"),
    ({"embedding": [0.1] * (DIM - 1)}, 400, "invalid_argument"),
    ({"embedding": [0.1] * (DIM + 1)}, 400, "invalid_argument"),
    ({"embedding": [0.0] * DIM}, 400, "invalid_argument"),
    ({"embedding": "0.1, 0.2"}, 400, "invalid_argument"),
    ({"embedding": [0.1] * (DIM - 1) + ["x"]}, 400, "invalid_argument"),
    ({"embedding": [0.1] * (DIM - 1) + [None]}, 400, "invalid_argument"),
    ({"embedding": [0.1] * (DIM - 1) + [1e20]}, 400, "invalid_argument"),  # overflows float32 once squared
    ({"embedding": [3e38] * DIM}, 400, "invalid_argument"),
    ({"image": "!!not base64!!"}, 400, "invalid_argument"),
    ({"image": "data:image/png,rawbytes"}, 400, "invalid_argument"),
    ({"image": B64_TEXT}, 400, "invalid_image"),
    ({"image": 12}, 400, "invalid_argument"),
    ({"queries": []}, 400, "invalid_argument"),
    ({"queries": {"text": "a"}}, 400, "invalid_argument"),
    ({"queries": [1]}, 400, "invalid_argument"),
    ({"queries": [{}]}, 400, "no_query"),
    ({"queries": [{"text": "a", "id": 1}]}, 400, "several_queries"),
    ({"queries": [{"text": "a", "colour": "red"}]}, 400, "unknown_field"),
    ({"queries": [{"text": "a", "weight": "2"}]}, 400, "invalid_argument"),
    ({"queries": [{"text": "a", "weight": 1e6}]}, 400, "invalid_argument"),
    ({"queries": [{"text": "a"}, {"text": "a", "weight": -1}]}, 400, "invalid_argument"),  # cancel out
    ({"queries": [{"text": "a"}] * 17}, 400, "invalid_argument"),
    ({"queries": [{"id": 99999}]}, 404, "unknown_id"),
    ({"text": "a", "k": 0}, 400, "invalid_argument"),
    ({"text": "a", "k": 1001}, 400, "invalid_argument"),
    ({"text": "a", "k": 1.5}, 400, "invalid_argument"),
    ({"text": "a", "k": "5"}, 400, "invalid_argument"),
    ({"text": "a", "offset": -1}, 400, "invalid_argument"),
    ({"text": "a", "offset": 10_001}, 400, "invalid_argument"),
    ({"text": "a", "min_score": 1.5}, 400, "invalid_argument"),
    ({"text": "a", "min_score": "0.5"}, 400, "invalid_argument"),
    ({"text": "a", "path_prefix": 5}, 400, "invalid_argument"),
]


@pytest.mark.parametrize("body, status, code", JSON_CASES, ids=[str(i) for i in range(len(JSON_CASES))])
def test_bad_json_fields(client, body, status, code):
    assert_error(client.post("/api/search", json=body), status, code)
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("raw", [
    b"{bad", b"", b"[1, 2]", b'"text"', b"null", b'{"text": "a"} trailing', b"\xff\xfe\x00garbage",
    b'{"embedding": [NaN]}', b'{"embedding": [Infinity]}', b'{"text": "a", "min_score": -Infinity}',
    b"[" * 100_000,
])
def test_malformed_json(client, raw):
    assert_error(client.post("/api/search", data=raw, content_type="application/json"), 400, "invalid_json")


@pytest.mark.parametrize("raw", [
    b'{"text": "a", "text": "b"}', b'{"queries": [{"text": "a", "weight": 1, "weight": 2}]}',
    b'{"text": "a", "k": 3, "k": 3}',
])
def test_a_repeated_json_key_is_a_400(client, raw):
    error = assert_error(client.post("/api/search", data=raw, content_type="application/json"), 400,
                         "invalid_argument")
    assert "more than once" in error["message"]


@pytest.mark.parametrize("body, words", [
    ({"text": "a", "k": 0}, "k: "), ({"queries": [{"text": "a", "weight": "2"}]}, "queries[0].weight: "),
    ({"embedding": [0.1] * (DIM - 1)}, f"dimension {DIM}"), ({"text": "  "}, "text: must not be blank"),
    ({"queries": [{"text": "a", "colour": "red"}]}, "allowed fields: embedding, id, image, text, weight"),
    ({"id": True}, "got True"),
])
def test_messages_name_the_field_and_the_problem(client, body, words):
    assert words in assert_error(client.post("/api/search", json=body), 400)["message"]


@pytest.mark.parametrize("url", ["/api/search", "/knn-service", "/metadata"])
@pytest.mark.parametrize("depth", [50, 900])  # parseable, but deep where a field is expected
def test_deeply_nested_values_are_a_400(client, url, depth):
    deep = b"[" * depth + b"]" * depth
    for raw in (b'{"queries": ' + deep + b"}", b'{"ids": ' + deep + b', "text": ' + deep + b"}"):
        response = client.post(url, data=raw, content_type="application/json")
        assert response.status_code == 400, response.get_data(as_text=True)
        assert_error(response, 400)


def test_overflowing_number_is_not_finite(client):
    raw = b'{"embedding": [' + b", ".join([b"0.1"] * (DIM - 1) + [b"1e400"]) + b"]}"
    assert_error(client.post("/api/search", data=raw, content_type="application/json"), 400, "invalid_argument")


@pytest.mark.parametrize("query, code", [
    ("", "no_query"), ("q=", "invalid_argument"), ("q=a&k=0", "invalid_argument"),
    ("q=a&k=abc", "invalid_argument"), ("q=a&k=2000", "invalid_argument"), ("q=a&offset=-3", "invalid_argument"),
    ("q=a&min_score=nan", "invalid_argument"), ("q=a&min_score=inf", "invalid_argument"),
    ("q=a&token=1", "unknown_field"), ("text=a", "unknown_field"), ("q=a&q=b", "invalid_argument"),
    ("q=a&k=1&k=2", "invalid_argument"),
])
def test_bad_query_strings(client, query, code):
    assert_error(client.get(f"/api/search?{query}"), 400, code)


def _png(size, mode="RGB"):
    out = io.BytesIO()
    Image.new(mode, size).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("data, status, code", [
    ({"k": "3"}, 400, "no_query"),
    ({"image": (io.BytesIO(b""), "empty.jpg")}, 400, "invalid_argument"),
    ({"image": (io.BytesIO(b"just text"), "notes.txt")}, 400, "invalid_image"),
    ({"image": (io.BytesIO(_png((40, 40))[:60]), "cut.png")}, 400, "invalid_image"),
    ({"image": (io.BytesIO(_png((40, 40))), "ok.png"), "k": "x"}, 400, "invalid_argument"),
    ({"image": (io.BytesIO(_png((40, 40))), "ok.png"), "text": "a"}, 400, "unknown_field"),
    ({"photo": (io.BytesIO(_png((40, 40))), "ok.png")}, 400, "unknown_field"),
    ({"image": (io.BytesIO(_png((40, 40))), "ok.png"), "k": ["1", "2"]}, 400, "invalid_argument"),
    ({"image": [(io.BytesIO(_png((40, 40))), "a.png"), (io.BytesIO(_png((40, 40))), "b.png")]}, 400,
     "invalid_argument"),
])
def test_bad_multipart_uploads(client, data, status, code):
    assert_error(client.post("/api/search", data=data, content_type="multipart/form-data"), status, code)


def test_a_nameless_multipart_part_is_an_unknown_field(client):
    # Werkzeug files a part without a name under None: it used to meet str names in a sort, a 500.
    body = (b"--b\r\nContent-Disposition: form-data\r\n\r\nnameless\r\n"
            b"--b\r\nContent-Disposition: form-data; name=\"colour\"\r\n\r\nred\r\n"
            b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n"
            + _png((40, 40)) + b"\r\n--b--\r\n")
    assert_error(client.post("/api/search", data=body, content_type="multipart/form-data; boundary=b"), 400,
                 "unknown_field")


def test_decompression_bomb_is_refused_before_decoding(client):
    bomb = _png((12_000, 10_000), mode="1")  # 120 MP, a few kB on the wire
    assert len(bomb) < 100_000
    assert_error(client.post("/api/search", data={"image": (io.BytesIO(bomb), "bomb.png")}), 413, "image_too_large")
    assert_error(client.post("/api/search", json={"image": base64.b64encode(bomb).decode()}), 413, "image_too_large")
    assert client.get("/api/search?q=still+serving").status_code == 200


def test_oversized_upload_is_413_with_the_configured_limit(make_app, photo_paths):
    client = make_app(max_upload_bytes=2048).test_client()
    big = b"x" * 4096
    error = assert_error(client.post("/api/search", data={"image": (io.BytesIO(big), "big.jpg")}), 413,
                         "payload_too_large")
    assert "2048" in error["message"]
    assert_error(client.post("/api/search", json={"image": base64.b64encode(big).decode()}), 413)
    with photo_paths[0].open("rb") as f:  # below the limit: served
        assert client.post("/api/search", data={"image": (f, "small.jpg")}).status_code == 200


@pytest.mark.parametrize("method, url, status, code", [
    ("GET", "/nope", 404, "not_found"),
    ("GET", "/api/images/99999", 404, "unknown_id"),
    ("GET", "/api/thumbnails/99999", 404, "unknown_id"),
    ("GET", "/api/images/abc", 404, "not_found"),
    ("GET", "/api/images/-1", 404, "not_found"),
    ("GET", f"/api/images/{2 ** 70}", 400, "invalid_argument"),
    ("DELETE", "/api/search", 405, "method_not_allowed"),
    ("POST", "/api/stats", 405, "method_not_allowed"),
    ("GET", "/knn-service", 405, "method_not_allowed"),
    ("PUT", "/metadata", 405, "method_not_allowed"),
    ("GET", "/static/../web/app.py", 404, "not_found"),
])
def test_bad_routes(client, method, url, status, code):
    assert_error(client.open(url, method=method), status, code)


def test_error_shape_on_every_route(app, client):
    """Every route, every method, a garbage body: any 4xx has the one shape, nothing is a 500."""
    seen = 0
    for rule in app.url_map.iter_rules():
        url = rule.rule.replace("<int:image_id>", "123456").replace("<path:filename>", "missing.js")
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            response = client.open(url, method=method, data=b"{garbage", content_type="application/json")
            assert response.status_code < 500, (method, url)
            if response.status_code >= 400:
                assert_error(response, response.status_code)
                seen += 1
    assert seen > 40


def test_unexpected_errors_are_500_in_the_shape_without_details(make_app):
    app = make_app()

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret detail")

    error = assert_error(app.test_client().get("/boom"), 500, "internal_error")
    assert "secret" not in error["message"]
