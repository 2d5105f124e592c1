"""Secure defaults of web/security.py and the app factory.

Covered elsewhere: localhost by default and ``debug=False`` from the CLI
(test_web_config), the token on every API route (test_web_auth), CORS only
when configured and image_url fetching off by default (test_web_clip_compat),
the page's CSP (test_web_page), hostile input (test_web_hostile).
"""

import hmac

import pytest

from web import security
from web_helpers import assert_error

TOKEN = "c0rrect-horse-battery"


@pytest.fixture(scope="module")
def locked(make_app):
    return make_app(token=TOKEN).test_client()


def test_token_is_compared_in_constant_time(locked, monkeypatch):
    calls, compare = [], hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    assert locked.get("/api/stats", headers={"Authorization": "Bearer wrong-token-value"}).status_code == 401
    assert locked.get("/api/stats", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert calls == [(b"wrong-token-value", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


@pytest.mark.parametrize("headers, query", [
    ({}, f"token={TOKEN}"),  # never from the URL, where logs and Referer headers would keep it
    ({}, f"access_token={TOKEN}"),
    ({"Authorization": f"Bearer {TOKEN.upper()}"}, ""),
    ({"Authorization": f"Bearer {TOKEN}x"}, ""),
    ({"Authorization": f"Bearer {TOKEN}\x00"}, ""),
    ({"Authorization": f"Bearer {TOKEN} {TOKEN}"}, ""),
    ({"Authorization": f"Basic {TOKEN}"}, ""),
    ({"Authorization": TOKEN}, ""),
    ({"X-Token": TOKEN}, ""),
    ({"Authorization": "Bearer " + "x" * 50_000}, ""),
    ({"Authorization": "Bearer \u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"}, ""),
])
def test_near_miss_tokens_are_refused(locked, headers, query):
    assert_error(locked.get(f"/api/stats?{query}", headers=headers), 401, "unauthorized")


def test_flask_debug_in_the_environment_does_not_turn_debug_on(make_app, monkeypatch):
    monkeypatch.setenv("FLASK_DEBUG", "1")
    app = make_app()
    assert app.debug is False

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret detail")

    error = assert_error(app.test_client().get("/boom"), 500, "internal_error")
    assert "secret" not in error["message"]


@pytest.mark.parametrize("url", ["/", "/static/app.js", "/api/search?q=a", "/api/images/1", "/api/thumbnails/1",
                                 "/nope", "/api/images/99999", "/healthz", "/knn-service"])
def test_every_response_has_the_security_headers(client, url):
    with client.get(url) as response:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"] == security.CSP
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "Access-Control-Allow-Origin" not in response.headers  # CORS off by default


def test_a_declared_body_over_the_limit_is_refused_on_every_route(make_app):
    client = make_app(max_upload_bytes=2048).test_client()
    for method, url in (("POST", "/api/search"), ("POST", "/knn-service"), ("GET", "/healthz"),
                        ("GET", "/api/images/1"), ("POST", "/nope")):
        response = client.open(url, method=method, data=b"x" * 4096, content_type="application/json")
        assert_error(response, 413, "payload_too_large")


def test_a_chunked_body_needs_a_length(client):
    response = client.post("/api/search", data=b'{"text": "a"}', content_type="application/json",
                           headers={"Transfer-Encoding": "chunked"})
    assert_error(response, 411, "length_required")
