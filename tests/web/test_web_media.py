"""Originals and thumbnails: by id only, right content types, cached thumbnails, clear 404s."""

import io
import os
import shutil
from dataclasses import replace

import pytest
from flask import url_for
from PIL import Image

from web.routes import media
from web_helpers import assert_error


@pytest.mark.parametrize("suffix, mimetype", [(".jpg", "image/jpeg"), (".png", "image/png"), (".webp", "image/webp")])
def test_original_has_its_content_type_and_bytes(client, photo_paths, photo_root, ids_by_path, suffix, mimetype):
    path = next(p for p in photo_paths if p.suffix == suffix)
    with client.get(f"/api/images/{ids_by_path[path.relative_to(photo_root).as_posix()]}") as response:
        assert response.status_code == 200
        assert response.mimetype == mimetype
        assert response.data == path.read_bytes()
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_original_answers_304_to_its_etag(client):
    with client.get("/api/images/3") as first:
        etag = first.headers["ETag"]
    with client.get("/api/images/3", headers={"If-None-Match": etag}) as again:
        assert again.status_code == 304


def test_thumbnail_is_a_small_jpeg_cached_in_the_bundle(client, bundle):
    cache = os.path.join(bundle.path, media.THUMBNAIL_DIR)
    shutil.rmtree(cache, ignore_errors=True)
    response = client.get("/api/thumbnails/4")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    image = Image.open(io.BytesIO(response.data))
    assert image.format == "JPEG" and max(image.size) <= 256
    record = bundle.record(4)
    cached = os.path.join(cache, "256", f"4-{record.sha256[:16]}.jpg")
    assert os.path.isfile(cached)
    assert [n for n in os.listdir(os.path.dirname(cached)) if ".tmp" in n] == []
    os.utime(cached, (1, 1))  # served from the cache: the file is not rewritten
    with client.get("/api/thumbnails/4") as again:  # a file response now, which must be closed
        assert again.data == response.data
    assert os.stat(cached).st_mtime == 1
    with client.get("/api/thumbnails/4", headers={"If-None-Match": response.headers["ETag"]}) as again:
        assert again.status_code == 304


def test_thumbnail_size_is_configurable(make_app):
    data = make_app(thumbnail_size=32).test_client().get("/api/thumbnails/5").data
    assert max(Image.open(io.BytesIO(data)).size) == 32


def test_thumbnail_served_when_the_cache_cannot_be_written(client, bundle, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    cache = os.path.join(bundle.path, media.THUMBNAIL_DIR)
    shutil.rmtree(cache, ignore_errors=True)
    monkeypatch.setattr(media.os, "mkdir", refuse)  # as on a read-only bundle (root ignores chmod)
    response = client.get("/api/thumbnails/6")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert not os.path.exists(cache)


@pytest.fixture
def moved_root(app, bundle, photo_root, tmp_path, monkeypatch):
    """The bundle's photo root pointed at a copy that tests may damage (and which the service serves)."""
    copy = tmp_path / "photos"
    shutil.copytree(photo_root, copy)
    monkeypatch.setattr(bundle.manifest, "root", str(copy))
    monkeypatch.setattr(app.extensions["photosearch"], "photos", os.path.realpath(copy))
    shutil.rmtree(os.path.join(bundle.path, media.THUMBNAIL_DIR), ignore_errors=True)
    return copy


def test_deleted_file_is_a_clear_404(client, bundle, moved_root):
    (moved_root / bundle.record(7).path).unlink()
    for url in ("/api/images/7", "/api/thumbnails/7"):
        error = assert_error(client.get(url), 404, "image_unavailable")
        assert "indexer" in error["message"]


def test_damaged_file_thumbnail_is_a_clear_404(client, bundle, moved_root):
    (moved_root / bundle.record(8).path).write_bytes(b"no longer an image")
    assert_error(client.get("/api/thumbnails/8"), 404, "image_unavailable")


def test_a_record_pointing_outside_the_photos_is_refused(client, bundle, monkeypatch):
    record = bundle.record(9)
    record.path = "../../etc/passwd"
    monkeypatch.setattr(bundle, "record", lambda image_id: record)
    assert_error(client.get("/api/images/9"), 404, "image_unavailable")


@pytest.mark.parametrize("root", ["", "/photos9081726354123"])  # a root that holds the id placeholder
def test_result_urls_are_url_for(client, root):
    """Responses build each route once and fill in the ids; the URLs are url_for's."""
    with client.application.test_request_context("/api/search", base_url=f"http://10.0.0.7:5000{root}"):
        for endpoint, options in [("media.image", {}), ("media.thumbnail", {}), ("media.image", {"_external": True})]:
            url = media.id_url(endpoint, **options)
            for image_id in (0, 7, 2**62):
                assert url(image_id) == url_for(endpoint, image_id=image_id, **options)


def test_original_is_inline_with_its_file_name_and_download_makes_it_an_attachment(client, bundle):
    name = bundle.record(3).path.rpartition("/")[2]
    with client.get("/api/images/3") as response:
        assert response.headers["Content-Disposition"] == f"inline; filename={name}"
    with client.get("/api/images/3?download=1") as response:
        assert response.status_code == 200
        assert response.headers["Content-Disposition"] == f"attachment; filename={name}"


@pytest.mark.parametrize("value", ["0", "true", "", "yes", "2"])
def test_download_takes_only_1(client, value):
    assert_error(client.get(f"/api/images/3?download={value}"), 400, "invalid_argument")
    assert_error(client.get("/api/images/3?download=1&download=1"), 400, "invalid_argument")


def test_file_names_that_are_not_plain_ascii_are_named_per_rfc_6266(own_bundle, photo_paths):
    names = {"été/Photo d'été 1.jpg": photo_paths[0], 'q/a"b;c.png': photo_paths[1], "t/tab\there.webp": photo_paths[2],
             "s/東京.jpg": photo_paths[3]}
    _, _, make = own_bundle(files=names)
    client = make().test_client()
    expected = {
        "été/Photo d'été 1.jpg": "inline; filename=\"Photo d'ete 1.jpg\"; filename*=UTF-8''Photo%20d%27%C3%A9t%C3%A9%201.jpg",
        'q/a"b;c.png': 'inline; filename="a\\"b;c.png"',
        "t/tab\there.webp": "inline; filename=tab_here.webp",  # no control character reaches a header
        "s/東京.jpg": "inline; filename=.jpg; filename*=UTF-8''%E6%9D%B1%E4%BA%AC.jpg",
    }
    for record in client.application.extensions["photosearch"].bundle.metadata.all():
        with client.get(f"/api/images/{record.id}") as response:
            assert response.status_code == 200
            assert response.headers["Content-Disposition"] == expected[record.path], record.path


def test_records_without_identity_keep_the_size_and_mtime_rule(client, bundle, moved_root, monkeypatch):
    """Bundles written before identities were recorded (metadata format 1) cannot tell a copy from the file."""
    record = bundle.record(10)  # its copy in moved_root has the same size and mtime, not the same inode
    assert_error(client.get("/api/images/10"), 404, "image_unavailable")
    monkeypatch.setattr(bundle, "record", lambda image_id: replace(record, dev=None, ino=None, ctime_ns=None))
    with client.get("/api/images/10") as response:
        assert response.status_code == 200 and response.data == (moved_root / record.path).read_bytes()
