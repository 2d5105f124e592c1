"""The JSON API: ``/api/search``, ``/api/stats`` and ``/healthz`` (browsing is in ``browse``).

Routes only validate (``web.schema``), call the service and shape the answer;
the ranking itself is the library's.
"""

import posixpath

from flask import Blueprint, jsonify, request

from search.encoding.weights import LOCAL_DIR

from ..query_images import decoded
from ..schema import parse
from ..schema.search import SearchRequest, TextQuery, UploadRequest
from ..service import current_service
from .results import Shaper

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
    page, took_ms = service.search(decoded(query.terms(), service), relevance=True, **query.search_options())
    return jsonify({
        "results": Shaper().page(service.bundle, [r.record for r in page.results],
                                 {r.id: r.score for r in page.results}, collapse=query.collapse),
        "total": page.total,
        "took_ms": took_ms,
        "model": public_model_name(service.model_name),
        "weak_below": page.weak_below,
        "strong_total": page.strong_total,
    })


@bp.get("/api/stats")
def stats():
    service = current_service()
    manifest = service.bundle.manifest
    fingerprint = service.searcher.encoder.fingerprint
    return jsonify({
        "count": service.bundle.count,
        "model": public_model_name(fingerprint.name),
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


def public_model_name(name):
    """The model's name as users see it: a local model folder's own name, not its path on the server."""
    if name.startswith(LOCAL_DIR):
        return LOCAL_DIR + posixpath.basename(name[len(LOCAL_DIR):].replace("\\", "/").rstrip("/"))
    return name


def _display_weights(pretrained):
    # A local checkpoint's folder says nothing useful and reveals the server's layout.
    if pretrained and "/" in pretrained:
        return pretrained.rsplit("/", 1)[1]
    return pretrained
