"""Hostile files: polyglot and bomb uploads, and files planted among the photos after the build.

Uploads are images or nothing: a file that is also a ZIP, HTML or SVG is
decoded as an image or refused, and nothing of it is echoed back. Bombs are
refused from their header, before any pixel buffer exists. Only the files
recorded in the bundle, unchanged since, are ever served.
"""

import base64
import io
import os
import shutil
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from search.query.searcher import Searcher
from search.store import writer
from search.store.bundle import Bundle
from search.store.manifest import Manifest
from search.store.metadata import ImageRecord
from web import ServeConfig, create_app
from web_helpers import assert_error


def _png(size=(40, 30), mode="RGB"):
    out = io.BytesIO()
    Image.new(mode, size, "red" if mode == "RGB" else 1).save(out, "PNG")
    return out.getvalue()


def _zip(name="evil.html", text=b"<script>alert(1)</script>"):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(name, text)
    return out.getvalue()


SCRIPT = b"<html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
POLYGLOTS = {  # name: (bytes, filename, content type, status)
    "png-then-zip": (_png() + _zip(), "photo.png", "image/png", 200),  # a PNG to Pillow, a ZIP to unzip
    "gif-magic-html": (b"GIF89a" + SCRIPT, "photo.gif", "image/gif", 400),
    "jpeg-magic-zip": (b"\xff\xd8\xff\xe0" + _zip(), "photo.jpg", "image/jpeg", 400),
    "svg-as-jpg": (SVG, "photo.jpg", "image/jpeg", 400),
    "html-as-png": (SCRIPT, "photo.png", "image/png", 400),
    "zip-as-jpg": (_zip(), "photo.jpg", "image/jpeg", 400),
    "png-magic-only": (b"\x89PNG\r\n\x1a\n", "photo.png", "image/png", 400),
    "script-filename": (_png(), "<script>alert(1)</script>.png", "text/html", 200),
}


@pytest.mark.parametrize("name", POLYGLOTS)
def test_polyglot_uploads_are_images_or_nothing(client, name):
    data, filename, content_type, status = POLYGLOTS[name]
    if name == "png-then-zip":
        assert zipfile.is_zipfile(io.BytesIO(data)) and Image.open(io.BytesIO(data)).format == "PNG"
    for response in (client.post("/api/search", data={"image": (io.BytesIO(data), filename, content_type)}),
                     client.post("/api/search", json={"image": base64.b64encode(data).decode()})):
        assert response.status_code == status, response.get_data(as_text=True)
        assert response.mimetype == "application/json"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert b"<script" not in response.data and b"<svg" not in response.data  # nothing of it is echoed
        if status == 400:
            assert_error(response, 400, "invalid_image")
    assert client.get("/healthz").status_code == 200


def _jpeg_claiming(width, height):
    """A small valid JPEG whose frame header claims ``width`` x ``height``."""
    out = io.BytesIO()
    Image.new("RGB", (16, 16), "blue").save(out, "JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def _gif_claiming(width, height):
    out = io.BytesIO()
    Image.new("P", (8, 8)).save(out, "GIF")
    data = bytearray(out.getvalue())
    data[6:10] = width.to_bytes(2, "little") + height.to_bytes(2, "little")  # the logical screen
    return bytes(data)


def _png_with_text_bomb():
    """A tiny PNG with a zTXt chunk that inflates to 200 MB."""
    png = _png((8, 8))
    payload = b"Comment\x00\x00" + zlib.compress(b"\x00" * 200_000_000, 9)
    chunk = len(payload).to_bytes(4, "big") + b"zTXt" + payload
    chunk += zlib.crc32(b"zTXt" + payload).to_bytes(4, "big")
    return png[:33] + chunk + png[33:]  # after the 8-byte signature and the IHDR chunk


BOMBS = {  # name: (bytes, status, code)
    "png-200mp": (_png((20_000, 10_000), mode="1"), 413, "image_too_large"),
    "jpeg-header-4gp": (_jpeg_claiming(65_500, 65_500), 413, "image_too_large"),
    "gif-screen-4gp": (_gif_claiming(65_535, 65_535), 413, "image_too_large"),
    "png-ztxt-200mb": (_png_with_text_bomb(), 400, "invalid_image"),
}


@pytest.mark.parametrize("name", BOMBS)
def test_bombs_are_refused_before_they_are_decoded(client, monkeypatch, name):
    data, status, code = BOMBS[name]
    assert len(data) < 300_000  # small on the wire
    decoded = []
    load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or load(self))
    started = time.monotonic()
    for response in (client.post("/api/search", data={"image": (io.BytesIO(data), "bomb.img")}),
                     client.post("/api/search", json={"image": base64.b64encode(data).decode()})):
        assert_error(response, status, code)
    assert decoded == []  # refused from the header alone: no pixel buffer was ever allocated
    assert time.monotonic() - started < 5
    assert client.get("/healthz").status_code == 200


def test_a_normal_upload_is_decoded(client, monkeypatch, photo_paths):
    # The spy above sees decoding when there is some: this is what the bomb test's empty list rules out.
    decoded = []
    load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or load(self))
    with photo_paths[0].open("rb") as f:
        assert client.post("/api/search", data={"image": (f, "ok.jpg")}).status_code == 200
    assert decoded


# --- only the files recorded in the bundle are served ---------------------------------------------------

@pytest.fixture
def planted(own_bundle, tmp_path):
    """Photos indexed in a folder of their own, with files planted after the build: new files, links, a swap.

    Returns a client of the app serving them, its bundle, the planted secret file and the id of the photo
    swapped for a link to it."""
    root, _, make = own_bundle()
    app = make()
    bundle = app.extensions["photosearch"].bundle
    secret = tmp_path / "secret.jpg"
    Image.new("RGB", (32, 32), "green").save(secret, "JPEG")
    (root / "album0" / "added.jpg").write_bytes(secret.read_bytes())
    (root / "album0" / "link.jpg").symlink_to(secret)
    (root / "passwd.png").symlink_to("/etc/passwd")
    swapped = bundle.metadata.all()[3]
    (root / swapped.path).unlink()
    (root / swapped.path).symlink_to(secret)  # an indexed name now points elsewhere
    return app.test_client(), bundle, secret, swapped.id


def test_files_planted_after_the_build_are_never_served(planted):
    client, bundle, secret, swapped_id = planted
    forbidden = {secret.read_bytes(), Path("/etc/passwd").read_bytes()}
    ids = [r.id for r in bundle.metadata.all()]
    served = 0
    for image_id in range(max(ids) + 20):
        for route in ("images", "thumbnails"):
            with client.get(f"/api/{route}/{image_id}") as response:
                if response.status_code == 200:
                    served += 1
                    assert response.data not in forbidden
                else:
                    assert_error(response, 404)
    assert served == 2 * (len(ids) - 1)  # every recorded photo but the swapped one
    for route in ("images", "thumbnails"):
        assert_error(client.get(f"/api/{route}/{swapped_id}"), 404, "image_unavailable")
    recorded = {r.path for r in bundle.metadata.all()}
    results = client.get("/api/search?q=green&k=1000").get_json()["results"]
    assert {r["path"] for r in results} <= recorded


def _decoy(path, record):
    """A text file at ``path`` with the size and mtime recorded for ``record``: what the indexer's
    "unchanged" test (size and mtime) cannot tell from the photo."""
    text = b"root:x:0:0:root:/root:/bin/bash\n" * (record.size // 32 + 1)
    path.write_bytes(text[:record.size])
    os.utime(path, ns=(record.mtime_ns, record.mtime_ns))
    return path


def test_a_photo_replaced_by_a_file_of_the_same_size_and_mtime_is_not_served(own_bundle, tmp_path):
    """The audit's case: a photo swapped for a symlink to a decoy with its size and mtime came back
    as image/png. The file is opened without following links and must keep its device and inode."""
    root, _, make = own_bundle()
    client = make().test_client()
    linked, copied, kept = client.application.extensions["photosearch"].bundle.metadata.all()[:3]
    decoy = _decoy(tmp_path / "passwd", linked)
    (root / linked.path).unlink()
    (root / linked.path).symlink_to(decoy)
    (root / copied.path).unlink()
    shutil.copy2(_decoy(tmp_path / "passwd2", copied), root / copied.path)  # a regular file, another inode
    for record in (linked, copied):
        st = os.stat(root / record.path)
        assert (st.st_size, st.st_mtime_ns) == (record.size, record.mtime_ns)  # "unchanged" to the indexer
        for route in ("images", "thumbnails"):
            assert_error(client.get(f"/api/{route}/{record.id}"), 404, "image_unavailable")
    with client.get(f"/api/images/{kept.id}") as response:
        assert response.status_code == 200 and response.data == (root / kept.path).read_bytes()


def test_a_folder_moved_out_of_the_photo_folder_behind_a_link_is_not_served(own_bundle, tmp_path):
    """The files keep their inode, size and mtime when their folder is moved; a symlink in its place
    now leads outside the photo folder. Served only with --follow-links."""
    root, _, make = own_bundle()
    app = make()
    records = app.extensions["photosearch"].bundle.metadata.all()
    (tmp_path / "elsewhere").mkdir()
    os.rename(root / "album1", tmp_path / "elsewhere" / "album1")
    (root / "album1").symlink_to(tmp_path / "elsewhere" / "album1")
    moved = [r for r in records if r.folder == "album1"]
    assert moved and len(moved) < len(records)
    for follow_links, client in ((False, app.test_client()), (True, make(follow_links=True).test_client())):
        for r in records:
            with client.get(f"/api/images/{r.id}") as response:
                if r.folder == "album1" and not follow_links:
                    assert_error(response, 404, "image_unavailable")
                else:
                    assert response.status_code == 200, (r.path, follow_links)


def test_a_bundle_cannot_name_files_outside_the_photo_folder(tmp_path, searcher):
    """The audit's crafted bundle: root "/" and a row "etc/passwd" with that file's identity."""
    fingerprint = searcher.encoder.fingerprint
    st = os.stat("/etc/passwd")
    record = ImageRecord(0, "etc/passwd", st.st_size, st.st_mtime_ns, "0" * 64, dev=st.st_dev, ino=st.st_ino,
                         ctime_ns=st.st_ctime_ns)
    index = tmp_path / "photos" / ".photoindex"
    writer.commit(str(index), Manifest(model=fingerprint.to_dict(), dim=fingerprint.dim, root="/"), [record],
                  np.eye(1, fingerprint.dim, dtype=np.float32))

    def client(**settings):
        served = Searcher(Bundle.open(str(index)), searcher.encoder)
        return create_app(ServeConfig(index=str(index), warmup=False, **settings), searcher=served).test_client()

    for settings in ({}, {"photos": str(tmp_path / "photos")}, {"photos": str(tmp_path)}):
        for route in ("images", "thumbnails"):
            error = assert_error(client(**settings).get(f"/api/{route}/0"), 404, "image_unavailable")
            assert "outside the photo folder" in error["message"]
    with client(photos="/").get("/api/images/0") as response:  # what the operator allows is served
        assert response.status_code == 200 and response.data == Path("/etc/passwd").read_bytes()
