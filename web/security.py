"""Request guards and response headers: body size, the optional bearer token, security headers, CORS.

With a token set, every route but the page, its static files and ``/healthz``
needs ``Authorization: Bearer TOKEN``. The page cannot put a header on an
``<img>`` request, so the same token is also accepted from the
``photosearch_token`` cookie that the page sets after asking for it. CORS
headers go only on the clip-retrieval routes, and only with ``cors_origin`` set.
"""

import hmac
import urllib.parse

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import ApiError

TOKEN_COOKIE = "photosearch_token"
PUBLIC_ENDPOINTS = {"page.index", "static", "api.healthz"}
CORS_ENDPOINTS = {"clip.knn_service", "clip.metadata", "clip.indices_list"}

# No inline script or style anywhere: the page loads its own files only.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def init_app(app, token=None, cors_origin=None):
    expected = token.encode() if token else None

    @app.before_request
    def refuse_oversized_body():
        # Flask enforces MAX_CONTENT_LENGTH only when a route reads the body; a larger declared
        # Content-Length is refused at once on every route, before a byte of the body is read.
        limit = app.config["MAX_CONTENT_LENGTH"]
        if limit is not None and (request.content_length or 0) > limit:
            raise RequestEntityTooLarge()
        # A chunked body has no size to check up front, and Werkzeug cuts it at the limit
        # instead of refusing it: bodies must come with a Content-Length.
        if request.content_length is None and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            raise ApiError(411, "length_required", "send the request body with a Content-Length header; "
                                                   "chunked request bodies are not accepted")

    @app.before_request
    def check_token():
        if expected is None or request.endpoint in PUBLIC_ENDPOINTS or request.method == "OPTIONS":
            return None
        given = _presented_token()
        if given is None or not hmac.compare_digest(given.encode(), expected):
            raise ApiError(401, "unauthorized",
                           "this server needs a token: send the header 'Authorization: Bearer TOKEN'"
                           if given is None else "the token is not valid",
                           headers={"WWW-Authenticate": 'Bearer realm="photosearch"'})
        return None

    @app.after_request
    def add_headers(response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = CSP
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        if cors_origin and request.endpoint in CORS_ENDPOINTS:
            response.headers["Access-Control-Allow-Origin"] = cors_origin
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
            response.headers["Vary"] = "Origin"
        return response


def _presented_token():
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    cookie = request.cookies.get(TOKEN_COOKIE)
    return urllib.parse.unquote(cookie) if cookie else None  # the page percent-encodes it
