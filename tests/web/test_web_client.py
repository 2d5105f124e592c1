"""A typed client generated from the served OpenAPI document works, as a developer would make and use one.

openapi-python-client (the ``dev`` extra) generates a package from
``/api/openapi.json`` of a live server on 127.0.0.1, failing on any warning
(a schema it could not type). The test imports every module of it, then
searches by text and by an uploaded image with it: the answers equal the
service's own, and a bad request comes back as the typed error model.
"""

import importlib
import io
import pkgutil
import shutil
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

from search.query.terms import QueryKind, QueryTerm
from web.service import current_service

pytestmark = pytest.mark.skipif(shutil.which("openapi-python-client") is None,
                                reason="needs openapi-python-client (pip install -e .[dev])")
PACKAGE = "photosearch_client"  # the generator's name for the document's title


@pytest.fixture(scope="module")
def generated(live_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("generated")
    document = folder / "openapi.json"
    with urllib.request.urlopen(f"{live_server}/api/openapi.json", timeout=30) as response:
        document.write_bytes(response.read())
    out = subprocess.run([shutil.which("openapi-python-client"), "generate", "--path", str(document),
                          "--output-path", str(folder / PACKAGE), "--meta", "none", "--fail-on-warning"],
                         capture_output=True, text=True, timeout=100, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def api(generated, live_server):
    """The generated client and the modules a caller uses."""
    modules = {m.name: importlib.import_module(m.name)
               for m in pkgutil.walk_packages(generated.__path__, PACKAGE + ".")}  # every module imports
    client = generated.Client(base_url=live_server, raise_on_unexpected_status=True, timeout=30)
    with client:
        yield client, modules


def service_answer(app, term, k):
    with app.app_context():
        page, _ = current_service().search([term], k=k)
    return [r.id for r in page.results], [r.score for r in page.results]


def assert_same_results(response, expected):
    ids, scores = expected
    assert [r.id for r in response.results] == ids
    np.testing.assert_allclose([r.score for r in response.results], scores, atol=1e-6)


def test_text_search(api, app):
    client, modules = api
    models, search = modules[f"{PACKAGE}.models"], modules[f"{PACKAGE}.api.default.search"]
    answer = search.sync(client=client, body=models.SearchRequest(text="a dog on a beach", k=7))
    assert isinstance(answer, models.SearchResponse), answer
    assert answer.model == "tiny-test" and len(answer.results) == 7
    assert_same_results(answer, service_answer(app, QueryTerm(QueryKind.TEXT, "a dog on a beach"), 7))
    by_text = modules[f"{PACKAGE}.api.default.search_by_text"].sync(client=client, q="a dog on a beach", k=7)
    assert [r.id for r in by_text.results] == [r.id for r in answer.results]


def test_upload_search(api, app, photo_paths):
    client, modules = api
    models, types = modules[f"{PACKAGE}.models"], modules[f"{PACKAGE}.types"]
    data = photo_paths[4].read_bytes()
    upload = models.UploadRequest(image=types.File(payload=io.BytesIO(data), file_name="query.jpg",
                                                   mime_type="image/jpeg"), k=5)
    answer = modules[f"{PACKAGE}.api.default.search"].sync(client=client, body=upload)
    assert isinstance(answer, models.SearchResponse), answer
    assert_same_results(answer, service_answer(app, QueryTerm(QueryKind.IMAGE, data), 5))
    assert answer.results[0].score == pytest.approx(1.0, abs=1e-4)  # the photo itself


def test_errors_come_back_typed(api):
    client, modules = api
    models = modules[f"{PACKAGE}.models"]
    answer = modules[f"{PACKAGE}.api.default.search"].sync(client=client,
                                                           body=models.SearchRequest(text="a", id=3))
    assert isinstance(answer, models.Error) and answer.error.code == "several_queries"
