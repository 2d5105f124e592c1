"""The OpenAPI 3.1 description of the service, served at ``/api/openapi.json``.

As strict as the server: the index's dimension and name, exactly one query
per request, no unknown fields. The fuzzing test (tests/web/test_web_fuzz.py)
generates requests from this document and checks the answers against it.
"""

from flask import Blueprint, jsonify

from search.store.bundle import MAX_K

from .fields import MAX_EMBEDDING_VALUE, MAX_ID
from .queries import DEFAULT_K, MAX_API_K, MAX_TERMS, MAX_TEXT, MAX_WEIGHT, TERM_KINDS
from .service import current_service

bp = Blueprint("openapi", __name__)

ERROR = {"description": "bad input, in the one error shape", "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
UNAUTHORIZED = {"401": ERROR}  # every route but /healthz, when the server has a token


def _json(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


ID = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": r"\S"}
OPTIONS = {
    "k": {"type": "integer", "minimum": 1, "maximum": MAX_API_K, "default": DEFAULT_K},
    "offset": {"type": "integer", "minimum": 0, "maximum": MAX_K, "default": 0},
    "min_score": {"type": "number", "minimum": -1, "maximum": 1},
    "path_prefix": {"type": "string", "maxLength": 1024,
                    "description": "only images under this folder of the photo root"},
}


def _terms(dim):
    return {
        "text": TEXT,
        "image": {"type": "string", "description": "base64, bare or as a data: URL"},
        "embedding": {"type": "array", "minItems": dim, "maxItems": dim, "items": {
            "type": "number", "minimum": -MAX_EMBEDDING_VALUE, "maximum": MAX_EMBEDDING_VALUE},
                      "description": "a vector of the index's dimension, not all zero"},
        "id": {**ID, "description": "more like this indexed image (which is left out)"},
    }


def _exactly_one(names):
    return [{"required": [name]} for name in names]


def schemas(dim, index_name):
    terms = _terms(dim)
    # clip-retrieval's unused query fields are null, or "" for the strings
    knn_query = {"text": {"type": ["string", "null"], "maxLength": MAX_TEXT},
                 "image": {"type": ["string", "null"], "description": "base64"},
                 "image_url": {"type": ["string", "null"], "maxLength": 4096,
                               "description": "fetched by the server only when started with --allow-image-url"},
                 "embedding_input": {**terms["embedding"], "type": ["array", "null"]}}
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
        "Term": {"type": "object", "additionalProperties": False, "oneOf": _exactly_one(TERM_KINDS),
                 "description": "exactly one of text, image, embedding, id; and a weight", "properties": {
                     **terms, "weight": {"type": "number", "minimum": -MAX_WEIGHT, "maximum": MAX_WEIGHT,
                                         "default": 1}}},
        "SearchRequest": {
            "type": "object", "additionalProperties": False, "oneOf": _exactly_one(TERM_KINDS + ("queries",)),
            "properties": {**terms, "queries": {
                "type": "array", "minItems": 1, "maxItems": MAX_TERMS, "items": _ref("Term"),
                "description": "weighted sum of normalised term vectors; negative weights subtract"}, **OPTIONS}},
        "UploadRequest": {"type": "object", "additionalProperties": False, "required": ["image"], "properties": {
            "image": {"type": "string", "format": "binary"}, **OPTIONS}},
        "Result": {"type": "object", "properties": {
            "id": {"type": "integer"}, "path": {"type": "string"},
            "score": {"type": "number", "description": "cosine"},
            "width": {"type": ["integer", "null"]}, "height": {"type": ["integer", "null"]},
            "taken_at": {"type": ["string", "null"]}, "image_url": {"type": "string"},
            "thumbnail_url": {"type": "string"}}},
        "SearchResponse": {"type": "object", "required": ["results", "total", "took_ms", "model"], "properties": {
            "results": {"type": "array", "items": _ref("Result"), "description": "best first"},
            "total": {"type": "integer"}, "took_ms": {"type": "number"}, "model": {"type": "string"}}},
        "KnnRequest": {
            "type": "object", "description": "clip-retrieval's knn-service request; the first query field given "
                                             "is used", "additionalProperties": False,
            "required": ["modality", "num_images", "indice_name"], "properties": {
                **knn_query, "modality": {"enum": ["image"]}, "indice_name": {"enum": [index_name]},
                "num_images": {"type": "integer", "minimum": 1, "maximum": MAX_K},
                "num_result_ids": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_K},
                "deduplicate": {"type": ["boolean", "null"]},
                "use_mclip": {"type": ["boolean", "null"], "description": "ignored"},
                "use_safety_model": {"type": ["boolean", "null"], "description": "ignored"},
                "use_violence_detector": {"type": ["boolean", "null"], "description": "ignored"},
                "aesthetic_score": {"type": ["integer", "string", "null"], "description": "ignored"},
                "aesthetic_weight": {"type": ["number", "string", "null"], "description": "ignored"}}},
        "MetadataRequest": {"type": "object", "additionalProperties": False, "required": ["ids"], "properties": {
            "ids": {"type": "array", "maxItems": MAX_K, "items": ID},
            "indice_name": {"enum": [index_name, None], "description": "required when ids is not empty"}}},
    }


def paths():
    search_ok = _json(_ref("SearchResponse"))
    query_params = [{"name": "q", "in": "query", "required": True, "schema": TEXT}] + [
        {"name": name, "in": "query", "schema": schema} for name, schema in OPTIONS.items()]
    id_param = [{"name": "id", "in": "path", "required": True, "schema": ID}]
    errors = {"400": ERROR, **UNAUTHORIZED, "403": ERROR, "404": ERROR, "413": ERROR}
    by_id = {"400": ERROR, **UNAUTHORIZED, "404": ERROR}
    return {
        "/api/search": {
            "get": {"summary": "Search by text", "parameters": query_params, "responses": {"200": search_ok, **errors}},
            "post": {"summary": "Search by text, image, embedding, id or a weighted combination", "requestBody": {
                "required": True, "content": {"application/json": {"schema": _ref("SearchRequest")},
                                              "multipart/form-data": {"schema": _ref("UploadRequest")}}},
                "responses": {"200": search_ok, **errors}}},
        "/api/images/{id}": {"get": {"summary": "The original file", "parameters": id_param, "responses": {
            "200": {"description": "the image, with its content type"}, **by_id}}},
        "/api/thumbnails/{id}": {"get": {"summary": "A small JPEG", "parameters": id_param, "responses": {
            "200": {"description": "image/jpeg"}, **by_id}}},
        "/api/stats": {"get": {"summary": "The index and model", "responses": {
            "200": _json({"type": "object"}), **UNAUTHORIZED}}},
        "/api/openapi.json": {"get": {"summary": "This document", "responses": {
            "200": _json({"type": "object"}), **UNAUTHORIZED}}},
        "/healthz": {"get": {"summary": "Liveness; needs no token", "responses": {"200": _json({"type": "object"})}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
            "200": {"description": "text"}, **UNAUTHORIZED}}},
        "/knn-service": {"post": {"summary": "clip-retrieval knn search", "requestBody": {"required": True, "content": {
            "application/json": {"schema": _ref("KnnRequest")}}}, "responses": {
            "200": _json({"type": "array", "items": {"type": "object"}}), **errors}}},
        "/metadata": {"post": {"summary": "clip-retrieval metadata of ids", "requestBody": {"required": True, "content": {
            "application/json": {"schema": _ref("MetadataRequest")}}}, "responses": {
            "200": _json({"type": "array", "items": {"type": "object"}}), **by_id, "413": ERROR}}},
        "/indices-list": {"get": {"summary": "clip-retrieval index names", "responses": {
            "200": _json({"type": "array", "items": {"type": "string"}}), **UNAUTHORIZED}}},
    }


def document(version="0.1.0"):
    service = current_service()
    return {
        "openapi": "3.1.0",
        "info": {"title": "photosearch", "version": version,
                 "description": "Search a photo collection by text, image, embedding or example."},
        "components": {"schemas": schemas(service.bundle.dim, service.config.index_name),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}] if service.config.token else [],
        "paths": paths(),
    }


@bp.get("/api/openapi.json")
def openapi_json():
    return jsonify(document())
