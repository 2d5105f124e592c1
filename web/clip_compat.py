"""clip-retrieval's knn service protocol: ``/knn-service``, ``/metadata``, ``/indices-list``.

Takes exactly what clip-retrieval's ``ClipClient`` and front end send (14
fields, ``null`` for unused ones, aesthetic values as strings) and answers in
their shape. Unlike ``clip back``, a missing or unknown field is a 400, not a
500. Accepted and ignored, because this project has no such models:
``use_mclip``, ``use_safety_model``, ``use_violence_detector``,
``aesthetic_score`` and ``aesthetic_weight`` (they are still type-checked).
"""

from flask import Blueprint, jsonify

from search.store.bundle import MAX_K
from search.query.terms import QueryTerm

from . import fields
from .errors import ApiError, bad_request
from .fetch import fetch_image
from .media import id_url
from .service import current_service

bp = Blueprint("clip", __name__)

QUERY_FIELDS = ("text", "image", "image_url", "embedding_input")  # the first one present is the query
REQUIRED = ("modality", "num_images", "indice_name")
OPTIONAL = ("num_result_ids", "deduplicate", "use_mclip", "use_safety_model", "use_violence_detector",
            "aesthetic_score", "aesthetic_weight")
IGNORED_FLAGS = ("use_mclip", "use_safety_model", "use_violence_detector")


@bp.post("/knn-service")
def knn_service():
    service = current_service()
    body = fields.json_body()
    fields.only_known(body, QUERY_FIELDS + REQUIRED + OPTIONAL)
    missing = [name for name in REQUIRED if body.get(name) is None]
    if missing:
        raise ApiError(400, "missing_field", f"missing field {missing[0]!r}; clip-retrieval requests carry "
                                             f"{', '.join(REQUIRED)}")
    _check_index(body["indice_name"])
    modality = fields.string("modality", body["modality"], 20)
    if modality != "image":
        raise bad_request(f"modality {modality!r} searches captions, and this index has none; use modality 'image'")
    num_images = fields.integer("num_images", body["num_images"], 1, MAX_K)
    num_result_ids = num_images
    if body.get("num_result_ids") is not None:
        num_result_ids = fields.integer("num_result_ids", body["num_result_ids"], 1, MAX_K)
    deduplicate = body.get("deduplicate") is not None and fields.boolean("deduplicate", body["deduplicate"])
    _check_ignored(body)
    term = _query_term(body, service)
    page, _ = service.search([term], k=num_result_ids, deduplicate=deduplicate)
    results, url = [], _image_url()
    for i, r in enumerate(page.results):
        item = _metadata(r.id, r.path, url) if i < num_images else {}  # past num_images: id and similarity only
        item.update(id=r.id, similarity=r.score)
        results.append(item)
    return jsonify(results)


@bp.post("/metadata")
def metadata():
    body = fields.json_body()
    fields.only_known(body, ("ids", "indice_name"))
    ids = body.get("ids")
    if not isinstance(ids, list):
        raise bad_request("ids must be a list of image ids")
    if len(ids) > MAX_K:
        raise bad_request(f"ids has {len(ids)} entries; at most {MAX_K} are allowed")
    if body.get("indice_name") is not None:
        _check_index(body["indice_name"])
    if not ids:
        return jsonify([])
    if body.get("indice_name") is None:
        raise ApiError(400, "missing_field", "missing field 'indice_name'")
    ids = [fields.image_id(f"ids[{i}]", v) for i, v in enumerate(ids)]
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
    # absolute: clip-retrieval's front end shows the images from another origin
    return id_url("media.image", _external=True)


def _metadata(image_id, path, url):
    # clip-retrieval's columns: a relative image_path (never the server's absolute one) and a url
    return {"image_path": path, "url": url(image_id)}


def _check_index(name):
    name = fields.string("indice_name", name, 200)
    served = current_service().config.index_name
    if name != served:
        raise ApiError(400, "unknown_index", f"unknown indice_name {name!r}; available: {served}")


def _check_ignored(body):
    for name in IGNORED_FLAGS:
        if body.get(name) is not None:
            fields.boolean(name, body[name])
    # Their front end sends these as strings, "" meaning unset.
    score = body.get("aesthetic_score")
    if score is not None and score != "":
        fields.integer("aesthetic_score", score, 0, 9, from_text=True)
    weight = body.get("aesthetic_weight")
    if weight is not None and weight != "":
        fields.number("aesthetic_weight", weight, from_text=True)


def _query_term(body, service):
    # clip-retrieval sends "" for an unused text, image or image_url; every field given is checked,
    # though only the first one is the query.
    given = [name for name in QUERY_FIELDS if body.get(name) is not None
             and not (body[name] == "" and name != "embedding_input")]
    if not given:
        raise ApiError(400, "no_query", f"the request has no query; give one of: {', '.join(QUERY_FIELDS)}")
    values = {name: _checked(name, body[name], service.bundle.dim) for name in given}
    name, value = given[0], values[given[0]]
    if name != "image_url":
        return QueryTerm({"text": "text", "image": "image", "embedding_input": "embedding"}[name], value)
    if not service.config.allow_image_url:
        raise ApiError(403, "image_url_disabled",
                       "image_url queries are off on this server; start it with --allow-image-url to enable them")
    config = service.config
    with service.metrics.stage("fetch", "image_url"):
        data = fetch_image(value, config.image_url_max_bytes, config.image_url_timeout)
    return QueryTerm("image", data)


def _checked(name, value, dim):
    if name == "text":
        return fields.string("text", value, 1000)
    if name == "image":
        return fields.base64_image("image", value)
    if name == "embedding_input":
        return fields.embedding("embedding_input", value, dim)
    return fields.string("image_url", value, 4096)
