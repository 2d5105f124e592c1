"""Hostile requests: traversal in ids, header abuse, wrong content types, slow, cut and oversized bodies.

The raw-socket cases run against a real server on 127.0.0.1 (Werkzeug's, and
gunicorn's in the slow run), because a test client never sends what a hostile
client can: unnormalised paths, lying Content-Lengths, bodies that stop. After
every case the server must still answer ``/healthz``. Hostile files (polyglot
and bomb uploads, files planted among the photos) are in test_web_hostile_files.
"""

import json
import shutil
import threading
import time

import flask
import pytest

from web_helpers import assert_error, assert_error_shape, gunicorn_server, raw_request

GiB = 1 << 30


@pytest.fixture(scope="module", params=["werkzeug", pytest.param("gunicorn", marks=pytest.mark.slow)])
def server(request, live_server, bundle_dir):
    if request.param == "werkzeug":
        yield live_server
    else:
        if shutil.which("gunicorn") is None:
            pytest.skip("gunicorn is not installed (pip install .[serve])")
        with gunicorn_server(bundle_dir, PHOTOSEARCH_WARMUP="false") as url:
            yield url


def assert_alive(url):
    status, _, body = raw_request(url, b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert status == 200 and b'"ok"' in body


def assert_refused(answer, statuses=(400, 404)):
    status, headers, body = answer
    assert status in statuses, (status, body[:300])
    assert_error_shape(headers.get_content_type(), json.loads(body))
    assert b"root:" not in body and b"\xff\xd8" not in body  # no /etc/passwd, no JPEG


# --- traversal and hostile ids --------------------------------------------------------------------

HOSTILE_IDS = ["..", "../../../../etc/passwd", "..%2f..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
               "%2e%2e", "/etc/passwd", "%2fetc%2fpasswd", "1%00", "%00", "1%00.jpg", "1/../../../../etc/passwd",
               "1%2f..%2f..%2fetc%2fpasswd", "-1", "-0", "99999999", str(2 ** 63), str(10 ** 40), "1e3", "0x1",
               "1.0", "%20", "1;rm", "C:%5cWindows%5cwin.ini", "~root"]


@pytest.mark.parametrize("route", ["images", "thumbnails"])
@pytest.mark.parametrize("image_id", HOSTILE_IDS)
def test_hostile_ids_in_the_path(server, route, image_id):
    request = f"GET /api/{route}/{image_id} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
    assert_refused(raw_request(server, request))
    assert_alive(server)


@pytest.mark.parametrize("path", ["/static/../../../../etc/passwd", "/static/..%2f..%2f..%2fetc%2fpasswd",
                                  "/static/%2e%2e/%2e%2e/app.py", "/static//etc/passwd", "/static/app.js%00.png",
                                  "/static/..%5c..%5capp.py", "/../../etc/passwd", "/api/../../etc/passwd"])
def test_traversal_out_of_the_static_folder(server, path):
    assert_refused(raw_request(server, f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()))
    assert_alive(server)


JSON_IDS = ["../../etc/passwd", "/etc/passwd", "1\u0000", "%2e%2e", -1, 2 ** 63, 2 ** 64, 1e308, 99999, True,
            [1], {"$gt": 0}, "1"]


@pytest.mark.parametrize("value", JSON_IDS, ids=[repr(v)[:20] for v in JSON_IDS])
def test_hostile_ids_in_json(client, value):
    for url, body in (("/api/search", {"id": value}), ("/api/search", {"queries": [{"id": value}]}),
                      ("/metadata", {"ids": [value], "indice_name": "photos-index"})):
        response = client.post(url, json=body)
        assert response.status_code in (400, 404), (url, body)
        assert_error(response, response.status_code)
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("prefix", ["..", "../..", "/etc", "..%2f", "album0/../..", "\u0000", "album0/\u0000"])
def test_path_prefix_never_reaches_outside(client, prefix, bundle):
    response = client.get("/api/search", query_string={"q": "a", "k": 100, "path_prefix": prefix})
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        recorded = {r.path for r in bundle.metadata.all()}
        assert {r["path"] for r in response.get_json()["results"]} <= recorded


# --- header abuse -----------------------------------------------------------------------------------

def _get(path, *headers):
    lines = [f"GET {path} HTTP/1.1", "Host: t", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("request_bytes", [
    _get("/api/search?q=a", "X-Big: " + "a" * 70_000),
    _get("/api/search?q=a", *[f"X-H{i}: v" for i in range(300)]),
    _get("/api/search?q=" + "a" * 70_000),
    _get("/api/search?q=a", "Authorization: Bearer " + "b" * 60_000),
    _get("/api/search?q=a", "Cookie: photosearch_token=" + "%" * 8_000),
    _get("/api/search?q=a", "Content-Length: -5"),
    _get("/api/search?q=a", "Content-Length: abc"),
    _get("/api/search?q=a", "Content-Length: 3", "Content-Length: 5"),
    _get("/api/search?q=a", "Host: other", "Host: another"),
    b"GET /api/search?q=a HTTP/1.1\r\nHost: t\r\nX-Nul: a\x00b\r\nConnection: close\r\n\r\n",
    b"GET /api/search?q=a HTTP/1.1\r\nHost: t\r\nX-Bad\r\nConnection: close\r\n\r\n",
    b"GET /api/search?q=%ff%fe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: t\r\n\r\n",
], ids=["70kB-header", "300-headers", "70kB-url", "60kB-token", "bad-cookie", "negative-length", "text-length",
        "two-lengths", "two-hosts", "nul-in-header", "header-without-colon", "bad-utf8-query", "garbage",
        "http-9.9"])
def test_header_abuse_is_refused_or_ignored(server, request_bytes):
    answer = raw_request(server, request_bytes)
    # The HTTP server itself refuses what it cannot parse (its own 4xx page, or a hang-up); what
    # reaches the app is answered normally or with a 4xx in the one shape.
    if answer is not None:
        status, headers, body = answer
        assert status < 500 or status == 505, (status, body[:300])
        if status >= 400 and headers.get_content_type() == "application/json":
            assert_error_shape("application/json", json.loads(body))
    assert_alive(server)


@pytest.mark.parametrize("content_type, data, status", [
    ("multipart/form-data", b'{"text": "a"}', 400),  # no boundary
    ("multipart/form-data; boundary=xyz", b'{"text": "a"}', 400),
    ("multipart/form-data; boundary=xyz",
     b"--xyz\r\nContent-Disposition: form-data; name=image; filename=a.jpg\r\n\r\nunterminated", 400),
    ("application/json", b"--xyz\r\nContent-Disposition: form-data; name=image\r\n\r\nx\r\n--xyz--", 400),
    ("application/x-www-form-urlencoded", b"text=a", 400),
    ("application/json; charset=utf-32", b'{"text": "a"}', 200),  # the body decides, as in clip-retrieval
    ("text/plain", b'{"text": "a"}', 200),
    ("image/png", b'{"text": "a"}', 200),
    ("", b'{"text": "a"}', 200),
])
def test_wrong_content_types(client, content_type, data, status):
    response = client.post("/api/search", data=data, headers={"Content-Type": content_type} if content_type else {})
    assert response.status_code == status, response.get_data(as_text=True)
    if status >= 400:
        assert_error(response, status)


def test_upload_files_of_a_broken_multipart_body_are_closed(client, monkeypatch):
    opened, make = [], flask.Request._get_file_stream  # Werkzeug itself drops them unclosed

    def spy(self, *args, **kwargs):
        opened.append(make(self, *args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(flask.Request, "_get_file_stream", spy)
    body = b"--xyz\r\nContent-Disposition: form-data; name=image; filename=a.jpg\r\n\r\n" + b"x" * 600_000
    response = client.post("/api/search", data=body, content_type="multipart/form-data; boundary=xyz")
    assert_error(response, 400)
    assert opened and all(f.closed for f in opened)


# --- slow, truncated and oversized bodies -------------------------------------------------------------

def _post(path, length, content_type="application/json"):
    return (f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n\r\n").encode()


@pytest.mark.parametrize("path, content_type", [
    ("/api/search", "application/json"), ("/api/search", "multipart/form-data; boundary=x"),
    ("/knn-service", "application/json"), ("/metadata", "application/json"), ("/healthz", "text/plain"),
    ("/api/images/1", "application/json"),
])
def test_a_1gb_content_length_is_refused_before_the_body_is_read(server, path, content_type):
    started = time.monotonic()
    answer = raw_request(server, _post(path, GiB, content_type) + b'{"text": "a')
    assert time.monotonic() - started < 5  # answered at once, not after waiting for (or reading) a gigabyte
    status, headers, body = answer
    assert status == 413
    assert_error_shape(headers.get_content_type(), json.loads(body), "payload_too_large")
    assert_alive(server)


def test_a_body_cut_short_is_not_a_500(server):
    answer = raw_request(server, _post("/api/search", 1000) + b'{"text": "a', close_write=True)
    if answer is not None:  # a 400 if it could still answer; hanging up is fine too
        status, headers, body = answer
        assert status == 400
        assert_error_shape(headers.get_content_type(), json.loads(body))
    assert_alive(server)


def test_a_slow_body_does_not_hold_up_other_clients(server):
    body = b'{"text": "a slow client", "k": 2}'
    slow = [(_post("/api/search", len(body)), 0.1)] + [(body[i:i + 1], 0.1) for i in range(len(body))]
    answers = []
    thread = threading.Thread(target=lambda: answers.append(raw_request(server, slow, timeout=30)))
    thread.start()
    try:
        time.sleep(0.3)  # the slow client is mid-body now, for about 3 more seconds
        started = time.monotonic()
        assert_alive(server)
        assert time.monotonic() - started < 2.0  # not held up until the slow body is in
    finally:
        thread.join(30)
    status, _, answer = answers[0]
    assert status == 200 and len(json.loads(answer)["results"]) == 2


def test_a_chunked_body_is_refused_for_want_of_a_length(server):
    # Werkzeug would cut a chunked body at the size limit rather than refuse it: none is accepted.
    head = (b"POST /api/search HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    chunk = b"a" * 1024
    status, headers, body = raw_request(server, head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk))
    assert status == 411
    assert_error_shape(headers.get_content_type(), json.loads(body), "length_required")
    assert_alive(server)
