"""The OpenAPI 3.1 description of the service, served at ``/api/openapi.json``.

Its schemas are generated from the same pydantic models that validate the
requests (``web.schema``), with this server's index dimension and name filled
in. It is shaped for client generators (tests/web/test_web_client.py builds
a typed client from it with openapi-python-client) and for the fuzzing test
(tests/web/test_web_fuzz.py), which generates requests from it.
"""

from flask import Blueprint, jsonify
from pydantic import TypeAdapter
from pydantic.json_schema import models_json_schema

from ..schema.clip import KnnRequest, MetadataRequest
from ..schema.duplicates import DuplicatesQuery, DuplicatesResponse
from ..schema.browse import BrowseQuery
from ..schema.responses import (BrowseResponse, Error, FacetsResponse, Health, KnnResult, MetadataItem, Photo, Result,
                                SearchResponse, Stats)
from ..schema.search import SearchRequest, Term, TextQuery, UploadRequest
from ..schema.types import ImageId, ServedSchema
from ..service import current_service

bp = Blueprint("openapi", __name__)

REF = "#/components/schemas/{model}"
MODELS = (SearchRequest, Term, UploadRequest, KnnRequest, MetadataRequest,
          Error, Photo, Result, SearchResponse, BrowseResponse, FacetsResponse, Stats, Health, KnnResult, MetadataItem,
          DuplicatesResponse)


def _ref(model):
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _array_of(model):
    return _json({"type": "array", "items": _ref(model)})


ERROR = _json(_ref(Error), "bad input, in the one error shape")
SCALE = {"name": "scale", "in": "query", "required": False, "description": "2: twice the size, for srcset",
         "schema": {"type": "integer", "enum": [1, 2], "default": 1}}
UNAUTHORIZED = {"401": ERROR}  # every route but /healthz, when the server has a token


def schemas(generator):
    _, definitions = models_json_schema([(model, "validation") for model in MODELS], ref_template=REF,
                                        schema_generator=generator)
    return definitions["$defs"]


def query_parameters(model, generator):
    """One query-string parameter per field of ``model``."""
    schema = model.model_json_schema(ref_template=REF, schema_generator=generator)
    return [{"name": name, "in": "query", "required": name in schema.get("required", ()), "schema": field}
            for name, field in schema["properties"].items()]


def paths(generator):
    search_ok = _json(_ref(SearchResponse))
    id_param = [{"name": "id", "in": "path", "required": True, "schema": TypeAdapter(ImageId).json_schema()}]
    errors = {"400": ERROR, **UNAUTHORIZED, "403": ERROR, "404": ERROR, "413": ERROR}
    by_id = {"400": ERROR, **UNAUTHORIZED, "404": ERROR}
    return {
        "/api/search": {
            "get": {"operationId": "search_by_text", "summary": "Search by text",
                    "parameters": query_parameters(TextQuery, generator), "responses": {"200": search_ok, **errors}},
            "post": {"operationId": "search", "summary": "Search by text, image, embedding, id or a weighted "
                                                         "combination; or by an uploaded image", "requestBody": {
                # The body is needed (without one the answer is a 400 invalid_json), but openapi-python-client
                # 0.29 writes a client that fails at import for a required body of two content types
                # (openapi-generators/openapi-python-client#1451): until that is fixed, it is not "required".
                "required": False, "content": {"application/json": {"schema": _ref(SearchRequest)},
                                              "multipart/form-data": {"schema": _ref(UploadRequest)}}},
                "responses": {"200": search_ok, **errors}}},
        "/api/images/{id}": {"get": {"operationId": "get_image", "summary": "The original file",
                                     "parameters": id_param, "responses": {
                                         "200": {"description": "the image, with its content type"}, **by_id}}},
        "/api/thumbnails/{id}": {"get": {"operationId": "get_thumbnail", "summary": "A small JPEG",
                                         "parameters": [*id_param, SCALE], "responses": {
                                             "200": {"description": "image/jpeg"}, **by_id}}},
        "/api/previews/{id}": {"get": {"operationId": "get_preview", "summary": "A screen-sized JPEG (longest "
                                                                                "side at most 2048 px)",
                                       "parameters": id_param, "responses": {
                                           "200": {"description": "image/jpeg"}, **by_id}}},
        "/api/photos/{id}": {"get": {"operationId": "get_photo", "summary": "One photo's details",
                                     "parameters": id_param, "responses": {"200": _json(_ref(Photo)), **by_id}}},
        "/api/browse": {"get": {"operationId": "browse", "summary": "The library, newest first, a page at a time",
                                "parameters": query_parameters(BrowseQuery, generator), "responses": {
                                    "200": _json(_ref(BrowseResponse)), "400": ERROR, **UNAUTHORIZED}}},
        "/api/facets": {"get": {"operationId": "get_facets", "summary": "Folders, cameras, file types and time "
                                                                        "range, with counts", "responses": {
            "200": _json(_ref(FacetsResponse)), **UNAUTHORIZED}}},
        "/api/duplicates": {"get": {"operationId": "get_duplicates", "summary": "Groups of duplicate photos",
                                    "parameters": query_parameters(DuplicatesQuery, generator), "responses": {
                                        "200": _json(_ref(DuplicatesResponse)),
                                        "202": _json(_ref(DuplicatesResponse), "still being found: ask again"),
                                        "400": ERROR, **UNAUTHORIZED}}},
        "/api/stats": {"get": {"operationId": "get_stats", "summary": "The index and model", "responses": {
            "200": _json(_ref(Stats)), **UNAUTHORIZED}}},
        "/api/openapi.json": {"get": {"operationId": "get_openapi", "summary": "This document", "responses": {
            "200": _json({"type": "object"}), **UNAUTHORIZED}}},
        "/healthz": {"get": {"operationId": "get_health", "summary": "Liveness; needs no token", "responses": {
            "200": _json(_ref(Health), "ok, or degraded with its reason"),
            "503": _json(_ref(Health), "unavailable: nothing servable is left")}}},
        "/metrics": {"get": {"operationId": "get_metrics", "summary": "Prometheus metrics", "responses": {
            "200": {"description": "text"}, **UNAUTHORIZED}}},
        "/knn-service": {"post": {"operationId": "knn_service", "summary": "clip-retrieval knn search",
                                  "requestBody": {"required": True, "content": {
                                      "application/json": {"schema": _ref(KnnRequest)}}},
                                  "responses": {"200": _array_of(KnnResult), **errors}}},
        "/metadata": {"post": {"operationId": "metadata", "summary": "clip-retrieval metadata of ids",
                               "requestBody": {"required": True, "content": {
                                   "application/json": {"schema": _ref(MetadataRequest)}}},
                               "responses": {"200": _array_of(MetadataItem), **by_id, "413": ERROR}}},
        "/indices-list": {"get": {"operationId": "indices_list", "summary": "clip-retrieval index names",
                                  "responses": {"200": _json({"type": "array", "items": {"type": "string"}}),
                                                **UNAUTHORIZED}}},
    }


def document(version="0.1.0"):
    service = current_service()
    generator = ServedSchema.of(service.bundle.dim, service.config.index_name)
    return {
        "openapi": "3.1.0",
        "info": {"title": "photosearch", "version": version,
                 "description": "Search a photo collection by text, image, embedding or example."},
        "components": {"schemas": schemas(generator),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}] if service.config.token else [],
        "paths": paths(generator),
    }


@bp.get("/api/openapi.json")
def openapi_json():
    return jsonify(document())
