"""The optional bearer token: every API route needs it when set; the page, static files and /healthz do not."""

import pytest

from web_helpers import assert_error

TOKEN = "s3cret;token=%41"
PROTECTED = [
    ("GET", "/api/search?q=a"), ("POST", "/api/search"), ("GET", "/api/images/1"), ("GET", "/api/thumbnails/1"),
    ("GET", "/api/stats"), ("GET", "/api/openapi.json"), ("GET", "/metrics"), ("POST", "/knn-service"),
    ("POST", "/metadata"), ("GET", "/indices-list"), ("GET", "/api/duplicates"), ("GET", "/api/browse"),
    ("GET", "/api/facets"), ("GET", "/api/photos/1"), ("GET", "/api/previews/1"),
]
PUBLIC = [("GET", "/"), ("GET", "/static/app.js"), ("GET", "/healthz")]


@pytest.fixture(scope="module")
def locked(make_app):
    return make_app(token=TOKEN).test_client()


def test_every_route_is_listed_as_protected_or_public(app):
    listed = {url.split("?")[0] for _, url in PROTECTED + PUBLIC}
    routes = {rule.rule.replace("<int:image_id>", "1").replace("<path:filename>", "app.js")
              for rule in app.url_map.iter_rules()}
    assert routes == listed


@pytest.mark.parametrize("method, url", PROTECTED)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic abc"},
                                     {"Authorization": f"bearer {TOKEN[:-1]}"}])
def test_401_without_the_right_token(locked, method, url, headers):
    response = locked.open(url, method=method, headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method, url", PROTECTED)
def test_header_token_opens_every_route(locked, method, url):
    header = {"Authorization": f"Bearer {TOKEN}"}
    with locked.open(url, method=method, headers=header, json={"text": "a"} if method == "POST" else None) as r:
        assert r.status_code != 401


def test_cookie_token_from_the_page_opens_images(make_app):
    client = make_app(token=TOKEN).test_client()
    client.set_cookie("photosearch_token", "s3cret%3Btoken%3D%2541")  # as the page's encodeURIComponent writes it
    with client.get("/api/thumbnails/1") as response:
        assert response.status_code == 200
    assert client.get("/api/search?q=a").status_code == 200


@pytest.mark.parametrize("method, url", PUBLIC)
def test_public_routes_need_no_token(locked, method, url):
    with locked.open(url, method=method) as response:
        assert response.status_code == 200


def test_no_token_configured_means_open(client):
    assert client.get("/api/stats").status_code == 200
