"""clip-retrieval's own web front end (the static build in their wheel), in Chromium, against this service.

Their front end sends its first query before its list of indices has
arrived, with ``indice_name: ""``; the service answers it from its one index.
Both servers listen on 127.0.0.1; the front end reaches ours by CORS.
"""

import functools
import http.server
import importlib.util
import os
from pathlib import Path

import pytest

from web_helpers import http_server, serving

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]


@pytest.fixture(scope="module")
def front_end():
    """Their front end's static build, served from 127.0.0.1: yields its base URL."""
    spec = importlib.util.find_spec("clip_retrieval")
    build = spec and Path(spec.submodule_search_locations[0]).parent / "front" / "build"
    if not build or not (build / "index.html").exists():
        pytest.skip("clip-retrieval's front end is not installed: pip install --no-deps clip-retrieval==2.45.0")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    with http_server(functools.partial(Quiet, directory=str(build))) as url:
        yield url


def test_their_front_end_searches_this_service(front_end, make_app):
    app = make_app(cors_origin=front_end)
    with serving(app) as api, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            queries = []
            page.on("requestfinished", lambda r: r.url.endswith("/knn-service") and queries.append(r))
            page.goto(f"{front_end}/?back={api}&query=a%20dog")
            first = page.locator(f'img[src^="{api}/api/images/"]').first  # their results, from our service
            first.wait_for(state="attached")
            assert queries, "no query reached the service"
            sent = queries[0].post_data_json
            assert sent["indice_name"] == "" and sent["text"] == "a dog"  # asked before the index list came
            assert queries[0].response().status == 200
        finally:
            browser.close()
