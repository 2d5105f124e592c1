"""/api/openapi.json describes every route the app has, and its references resolve.

Its schemas come from the request models (``web.schema``), with the served index's dimension and
name filled in; test_web_client generates a typed client from it, test_web_fuzz fuzzes the server with it.
"""

from web.schema.responses import BrowseResponse, FacetsResponse, Photo, SearchResponse, Stats


def test_document_lists_every_route_and_method(app, client):
    doc = client.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "page.index"):
            continue
        path = rule.rule.replace("<int:image_id>", "{id}")
        served |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served


def test_every_reference_resolves(client):
    doc = client.get("/api/openapi.json").get_json()

    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = list(refs(doc))
    assert found
    for ref in found:
        target = doc
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]


def test_documented_result_fields_match_a_real_result(client):
    doc = client.get("/api/openapi.json").get_json()
    result = client.get("/api/search?q=a&k=1").get_json()["results"][0]
    assert set(doc["components"]["schemas"]["Result"]["properties"]) - set(result) == {"duplicates"}
    collapsed = client.get("/api/search?q=a&k=1&collapse=true").get_json()["results"][0]
    assert set(doc["components"]["schemas"]["Result"]["properties"]) == set(collapsed)
    browsed = client.get("/api/browse?limit=1").get_json()["results"][0]
    assert set(doc["components"]["schemas"]["Photo"]["properties"]) - set(browsed) == {"score"}
    assert set(doc["components"]["schemas"]["SearchResponse"]["properties"]) == {
        "results", "total", "took_ms", "model", "weak_below", "strong_total"}


def test_a_real_answer_is_valid_for_the_response_models(client):
    SearchResponse.model_validate(client.get("/api/search?q=a&k=3").get_json())
    Stats.model_validate(client.get("/api/stats").get_json())
    SearchResponse.model_validate(client.post("/api/search", json={"text": "a", "collapse": True}).get_json())
    BrowseResponse.model_validate(client.get("/api/browse?collapse=1").get_json())
    FacetsResponse.model_validate(client.get("/api/facets").get_json())
    Photo.model_validate(client.get("/api/photos/1").get_json())


def test_the_served_index_is_in_the_schemas(client, bundle):
    schemas = client.get("/api/openapi.json").get_json()["components"]["schemas"]
    embedding = schemas["SearchRequest"]["properties"]["embedding"]["anyOf"][0]
    assert embedding["minItems"] == embedding["maxItems"] == bundle.dim
    knn = schemas["KnnRequest"]["properties"]
    assert knn["embedding_input"]["anyOf"][0]["maxItems"] == bundle.dim
    assert knn["indice_name"]["enum"] == ["photos-index"]
    assert schemas["MetadataRequest"]["properties"]["indice_name"]["anyOf"][0]["enum"] == ["photos-index"]


def test_request_schemas_are_plain_objects_that_generators_type(client):
    """No oneOf of bare required lists (a generator makes that an untyped Any): optional fields, and the
    exactly-one rule in the description."""
    schemas = client.get("/api/openapi.json").get_json()["components"]["schemas"]
    for name in ("SearchRequest", "Term", "UploadRequest", "KnnRequest", "MetadataRequest"):
        assert schemas[name]["type"] == "object" and "oneOf" not in schemas[name], name
        assert schemas[name]["additionalProperties"] is False
    assert "exactly one of text, image, embedding, id or queries" in schemas["SearchRequest"]["description"]
    assert "exactly one of text, image, embedding or id" in schemas["Term"]["description"]


def test_security_is_declared_only_with_a_token(client, make_app):
    assert client.get("/api/openapi.json").get_json()["security"] == []
    locked = make_app(token="0123456789abcdef").test_client()
    doc = locked.get("/api/openapi.json", headers={"Authorization": "Bearer 0123456789abcdef"}).get_json()
    assert doc["security"] == [{"bearer": []}]
