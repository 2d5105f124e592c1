"""The JSON API: ``/api/search``, ``/api/stats`` and ``/healthz``.

Routes only validate (``web.schema``), call the service and shape the answer;
the ranking itself is the library's.
"""

from flask import Blueprint, jsonify, request

from ..schema import parse
from ..schema.search import SearchRequest, TextQuery, UploadRequest
from ..service import current_service
from .media import id_url

bp = Blueprint("api", __name__)


@bp.route("/api/search", methods=["GET", "POST"])
def search():
    if request.method == "GET":
        query = parse.from_query_string(TextQuery, request.args)
    elif request.mimetype == "multipart/form-data":
        query = parse.from_form(UploadRequest, request.form, request.files)
    else:
        query = parse.from_json(SearchRequest)
    service = current_service()
    page, took_ms = service.search(query.terms(), **query.search_options())
    urls = id_url("media.image"), id_url("media.thumbnail")
    return jsonify({
        "results": [result_json(r, *urls) for r in page.results],
        "total": page.total,
        "took_ms": took_ms,
        "model": service.model_name,
    })


def result_json(result, image_url, thumbnail_url):
    """One result in the documented shape (``web.schema.responses.Result``)."""
    return {
        "id": result.id,
        "path": result.path,
        "score": result.score,
        "width": result.width,
        "height": result.height,
        "taken_at": result.taken_at,
        "image_url": image_url(result.id),
        "thumbnail_url": thumbnail_url(result.id),
    }


@bp.get("/api/stats")
def stats():
    service = current_service()
    manifest = service.bundle.manifest
    fingerprint = service.searcher.encoder.fingerprint
    return jsonify({
        "count": service.bundle.count,
        "model": fingerprint.name,
        "pretrained": _display_weights(fingerprint.pretrained),
        "dim": service.bundle.dim,
        "index_type": manifest.index_type,
        "metric": manifest.metric,
        "generation": manifest.generation,
        "created_at": manifest.created_at,
        "updated_at": manifest.updated_at,
        "index_name": service.config.index_name,
    })


@bp.get("/healthz")
def healthz():
    # Answered only once the model is loaded and warmed up: create_app does both first.
    service = current_service()
    status, reason = service.health()
    body = {"status": status, "count": service.bundle.count}
    if reason:
        body["reason"] = reason
    return jsonify(body), 503 if status == "unavailable" else 200


def _display_weights(pretrained):
    # A local checkpoint's folder says nothing useful and reveals the server's layout.
    if pretrained and "/" in pretrained:
        return pretrained.rsplit("/", 1)[1]
    return pretrained
