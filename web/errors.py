"""One JSON error shape for every failure: ``{"error": {"code": str, "message": str}}``.

The library's typed errors carry their HTTP status; Werkzeug's (404, 405, 413)
are mapped by status; anything else is a bug, logged and answered with a 500
that leaks no detail.
"""

import logging

from flask import jsonify
from werkzeug.exceptions import HTTPException

from search.errors import SearchError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    413: "payload_too_large", 415: "unsupported_media_type", 429: "too_many_requests",
}


class ApiError(Exception):
    """An error of the web layer itself (a bad field, a missing token)."""

    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(message, code="invalid_argument"):
    return ApiError(400, code, message)


def error_response(status, code, message, headers=None):
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def init_app(app):
    @app.errorhandler(ApiError)
    def api_error(e):
        return error_response(e.status, e.code, e.message, e.headers)

    @app.errorhandler(SearchError)
    def search_error(e):
        if e.status >= 500:
            log.error("search library error: %s", e)
        return error_response(e.status, e.code, str(e))

    @app.errorhandler(HTTPException)
    def http_error(e):
        if e.code is not None and e.code < 400:  # a routing redirect, not an error
            return e
        code = _HTTP_CODES.get(e.code, "http_error")
        message = e.description or e.name
        if e.code == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"the request body is larger than the limit of {limit} bytes"
        headers = {"Allow": ", ".join(e.valid_methods)} if getattr(e, "valid_methods", None) else None
        return error_response(e.code or 500, code, message, headers)

    @app.errorhandler(Exception)
    def internal_error(e):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error; the server log has the details")
