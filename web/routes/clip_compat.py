"""clip-retrieval's knn service protocol: ``/knn-service``, ``/metadata``, ``/indices-list``.

The requests are validated by ``web.schema.clip`` (what ``ClipClient`` and
their front end send); the answers are in their shape.
"""

from flask import Blueprint, jsonify

from search.query.terms import QueryKind, QueryTerm

from ..errors import ApiError
from ..fetch import fetch_image
from ..query_images import decoded
from ..schema import parse
from ..schema.clip import KnnRequest, MetadataRequest
from ..service import current_service
from .media import id_url

bp = Blueprint("clip", __name__)

KINDS = {"text": QueryKind.TEXT, "image": QueryKind.IMAGE, "embedding_input": QueryKind.EMBEDDING}


@bp.post("/knn-service")
def knn_service():
    knn = parse.from_json(KnnRequest)
    service = current_service()
    page, _ = service.search(decoded([_query_term(knn, service)], service), k=knn.num_result_ids or knn.num_images,
                             deduplicate=bool(knn.deduplicate))
    results, url = [], _image_url()
    for i, r in enumerate(page.results):
        item = _metadata(r.id, r.path, url) if i < knn.num_images else {}  # past num_images: id and similarity
        item.update(id=r.id, similarity=r.score)
        results.append(item)
    return jsonify(results)


@bp.post("/metadata")
def metadata():
    ids = parse.from_json(MetadataRequest).ids
    if not ids:
        return jsonify([])
    records = current_service().bundle.metadata.get_many(ids)
    unknown = [i for i in ids if i not in records]
    if unknown:
        raise ApiError(404, "unknown_id", f"unknown image id {unknown[0]}")
    url = _image_url()
    return jsonify([{"id": i, "metadata": _metadata(i, records[i].path, url)} for i in ids])


@bp.get("/indices-list")
def indices_list():
    return jsonify([current_service().config.index_name])


def _image_url():
    # Absolute: clip-retrieval's front end shows the images from another origin. The configured public
    # URL when there is one; else the request's Host header, which a client chooses (see the README).
    public = current_service().config.public_url
    if public is None:
        return id_url("media.image", _external=True)
    base, path = public.rstrip("/"), id_url("media.image")
    return lambda image_id: base + path(image_id)


def _metadata(image_id, path, url):
    # clip-retrieval's columns: a relative image_path (never the server's absolute one) and a url
    return {"image_path": path, "url": url(image_id)}


def _query_term(knn, service):
    name, value = knn.query()
    if name != "image_url":
        return QueryTerm(KINDS[name], value)
    config = service.config
    if not config.allow_image_url:
        raise ApiError(403, "image_url_disabled",
                       "image_url queries are off on this server; start it with --allow-image-url to enable them")
    with service.metrics.stage("fetch", "image_url"):
        data = fetch_image(value, config.image_url_max_bytes, config.image_url_timeout,
                           allow_private=config.image_url_allow_private)
    return QueryTerm(QueryKind.IMAGE, data)
