"""The page at /: served with a strict CSP, no inline script or style, nothing from other origins."""

import re
from html.parser import HTMLParser
from pathlib import Path

import web

STATIC = Path(web.__file__).parent / "static"


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.script_text += data.strip()


def test_page_headers(client):
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_page_has_no_inline_script_style_or_handlers(client):
    parser = _Tags()
    parser.feed(client.get("/").get_data(as_text=True))
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert scripts and all(a.get("src", "").startswith("/static/") for a in scripts)
    assert parser.script_text == ""
    assert not [tag for tag, _ in parser.tags if tag == "style"]
    for tag, attrs in parser.tags:
        assert "style" not in attrs, tag
        assert not [a for a in attrs if a.startswith("on")], tag


def test_page_names_the_index(client, bundle):
    html = client.get("/").get_data(as_text=True)
    assert f"{bundle.count} photos" in html and "tiny-test" in html


def test_static_files_have_their_types(client):
    for name, mimetype in (("app.js", "text/javascript"), ("api.js", "text/javascript"), ("style.css", "text/css"),
                           ("vendor/photoswipe/photoswipe.esm.min.js", "text/javascript"),
                           ("vendor/justified-layout/justified-layout.min.js", "text/javascript"),
                           ("vendor/photoswipe/photoswipe.css", "text/css")):
        with client.get(f"/static/{name}") as response:
            assert response.status_code == 200 and response.mimetype == mimetype, name


def test_page_loads_every_script_and_style_it_names(client):
    parser = _Tags()
    parser.feed(client.get("/").get_data(as_text=True))
    named = [a["src"] for t, a in parser.tags if t == "script"] + [a["href"] for t, a in parser.tags if t == "link"]
    for url in named:
        with client.get(url) as response:
            assert response.status_code == 200, url


def test_static_files_load_nothing_from_elsewhere():
    for path in STATIC.rglob("*"):
        if not path.is_file() or path.name == "LICENSE":
            continue
        text = path.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, never fetched
        if "vendor" in path.parts:
            text = re.sub(r"/\*!.*?\*/", "", text, flags=re.DOTALL)  # the libraries' banners name their home pages
        else:
            assert "eval(" not in text and "innerHTML" not in text, path.name  # results are text, never markup
        assert not re.search(r"https?://", text), path.name


def test_vendored_libraries_keep_their_licences():
    for library in (STATIC / "vendor").iterdir():
        assert "Permission is hereby granted" in (library / "LICENSE").read_text(), library.name
