"""/api/openapi.json describes every route the app has, and its references resolve."""


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
    assert set(doc["components"]["schemas"]["Result"]["properties"]) == set(result)
    assert set(doc["components"]["schemas"]["SearchResponse"]["properties"]) == {"results", "total", "took_ms",
                                                                                  "model"}


def test_security_is_declared_only_with_a_token(client, make_app):
    assert client.get("/api/openapi.json").get_json()["security"] == []
    locked = make_app(token="0123456789abcdef").test_client()
    doc = locked.get("/api/openapi.json", headers={"Authorization": "Bearer 0123456789abcdef"}).get_json()
    assert doc["security"] == [{"bearer": []}]
