"""Filters on every query kind against brute force, browsing, facets, photos, previews and collapse, over HTTP.

The library (``library.py``) has nested folders, two cameras, dates in EXIF
or only in the mtime, PNG/WebP/JPEG/TIFF/HEIC and planted copies. Every
filtered answer is compared with exact search, in numpy, over the bundle's
vectors restricted to the rows that match in Python.
"""

import io
from datetime import date, timedelta

import numpy as np
import pytest
from PIL import Image

from indexer import BuildConfig, build
from search.query.searcher import Searcher
from search.store.metadata import time_key_of
from web import ServeConfig, create_app
from web_helpers import assert_error

from library import CAMERA_NAMES, LARGE, make_library


@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_config_file, tiny_checkpoint):
    root = tmp_path_factory.mktemp("library")
    cameras = make_library(root)
    index = tmp_path_factory.mktemp("library-bundle") / "library"
    build(BuildConfig(photos=str(root), index=str(index), model=tiny_config_file.stem,
                      model_config=str(tiny_config_file), pretrained=str(tiny_checkpoint), workers=0))
    return index, cameras, root


@pytest.fixture(scope="module")
def searcher(library):
    return Searcher.open(str(library[0]), device="cpu")


@pytest.fixture(scope="module")
def records(searcher):
    return searcher.bundle.metadata.all()


@pytest.fixture(scope="module")
def client(library, searcher):
    app = create_app(ServeConfig(index=str(library[0]), photos=str(library[2]), device="cpu", warmup=False),
                     searcher=searcher)  # the bundle is outside its photo folder
    return app.test_client()


def matches(record, f):
    """A filter's meaning, in Python over one record (query-string values: one of each)."""
    key = time_key_of(record.taken_at, record.mtime_ns)
    before = f.get("taken_before")
    if before and len(before) == 10:
        before = (date.fromisoformat(before) + timedelta(days=1)).isoformat()
        before_ok = key < before
    else:
        before_ok = before is None or key <= before
    prefix = f.get("path_prefix")
    return (before_ok and (prefix is None or record.path.startswith(prefix + "/"))
            and key >= f.get("taken_after", "")
            and f.get("camera", record.camera) == record.camera
            and f.get("file_type", record.file_type) == record.file_type)


def exact(searcher, records, query, f, k, exclude=()):
    """Ids and scores of the ``k`` best matching rows by brute force (ties by lower id)."""
    bundle = searcher.bundle
    keep = [r.id for r in records if matches(r, f) and r.id not in exclude]
    vectors = np.asarray(bundle.vectors[bundle.rows_of(keep)], dtype=np.float64)
    scores = vectors @ np.asarray(query, dtype=np.float64)
    order = np.lexsort((keep, -scores))[:k]
    return [keep[i] for i in order], scores[order], len(keep)


FILTERS = [
    {"path_prefix": "2023"},
    {"path_prefix": "2023/summer"},
    {"camera": "Canon EOS R5"},
    {"file_type": "png"},
    {"taken_after": "2023-06-01"},
    {"taken_before": "2023-03-02"},
    {"taken_after": "2022-05-01T00:00:00", "taken_before": "2023-12-31T23:59:59"},
    {"path_prefix": "2023", "camera": "Apple iPhone 13", "taken_after": "2022-02-01"},  # 3 photos
    {"file_type": "jpeg", "taken_before": "2024-06-30", "path_prefix": "2024"},
]


def query_kinds(searcher, records):
    """``(request fields, query vector, excluded ids)`` of a text, an id and an embedding query."""
    first = records[5].id
    text = searcher.encoder.encode_texts(["a red boat"])[0]
    embedding = np.random.default_rng(0).normal(size=searcher.bundle.dim)
    return [({"text": "a red boat"}, text, ()),
            ({"id": first}, searcher.bundle.vector(first), (first,)),
            ({"embedding": embedding.tolist()}, embedding / np.linalg.norm(embedding), ())]


@pytest.mark.parametrize("f", FILTERS, ids=lambda f: "&".join(f"{k}={v}" for k, v in f.items()))
def test_filtered_search_equals_exact_search_over_the_matching_rows(client, searcher, records, f):
    assert 0 < sum(matches(r, f) for r in records) < len(records)
    for fields, query, exclude in query_kinds(searcher, records):
        for k in (3, 50):
            body = client.post("/api/search", json={**fields, **f, "k": k}).get_json()
            ids, scores, total = exact(searcher, records, query, f, k, exclude)
            assert [r["id"] for r in body["results"]] == ids, fields
            np.testing.assert_allclose([r["score"] for r in body["results"]], scores, atol=1e-5)
            assert body["total"] == total and len(body["results"]) == min(k, total)  # k when k match
    text = client.get("/api/search", query_string={"q": "a red boat", "k": 50, **f}).get_json()
    assert [r["id"] for r in text["results"]] == exact(searcher, records, query_kinds(searcher, records)[0][1], f,
                                                       50)[0]


def test_camera_and_file_type_take_lists_in_json(client, searcher, records):
    f = {"camera": list(CAMERA_NAMES), "file_type": ["jpeg", "png"]}
    body = client.post("/api/search", json={"text": "x", "k": 100, **f}).get_json()
    expected = {r.id for r in records if r.camera is not None and r.file_type == "jpeg"}
    assert {r["id"] for r in body["results"]} == expected and body["total"] == len(expected)


BAD_FILTERS = [
    ({"taken_after": "June 2024"}, "taken_after: must be an ISO date"),
    ({"taken_before": "2024-13-01"}, "taken_before: must be an ISO date"),
    ({"taken_after": "2024-06-02", "taken_before": "2024-06-01"}, "later than taken_before"),
    ({"camera": ""}, "camera"),
    ({"file_type": ""}, "file_type"),
    ({"path_prefix": "x" * 1025}, "path_prefix"),
    ({"collapse": "maybe"}, "collapse"),
]


@pytest.mark.parametrize("f, message", BAD_FILTERS, ids=[m for _, m in BAD_FILTERS])
@pytest.mark.parametrize("route, base", [("/api/search", {"q": "a"}), ("/api/browse", {"limit": 5})])
def test_every_bad_filter_value_is_a_400_that_says_what_is_wrong(client, route, base, f, message):
    error = assert_error(client.get(route, query_string={**base, **f}), 400, "invalid_argument")
    assert message in error["message"]


@pytest.mark.parametrize("f, message", [
    ({"camera": [""]}, "camera"), ({"file_type": ["jpeg", 3]}, "file_type"), ({"camera": ["x"] * 65}, "camera"),
    ({"taken_after": 20240601}, "taken_after"), ({"collapse": "true"}, "collapse"),
] + BAD_FILTERS[:3])
def test_bad_filters_in_json_are_400s(client, f, message):
    error = assert_error(client.post("/api/search", json={"text": "a", **f}), 400, "invalid_argument")
    assert message in error["message"]


def test_browse_pages_newest_first_through_the_cursor(client, records):
    order = sorted(records, key=lambda r: (r.time_key, r.id), reverse=True)
    seen, cursor, pages = [], None, 0
    while True:
        body = client.get("/api/browse", query_string={"limit": 7, **({"cursor": cursor} if cursor else {})}).json
        assert body["total"] == len(records) and "score" not in body["results"][0]
        seen += [r["id"] for r in body["results"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [r.id for r in order] and pages == -(-len(records) // 7)
    times = [r["time"] for r in client.get("/api/browse?limit=500").json["results"]]
    assert times == sorted(times, reverse=True)


@pytest.mark.parametrize("f", FILTERS, ids=lambda f: "&".join(f"{k}={v}" for k, v in f.items()))
def test_browse_filters(client, records, f):
    expected = [r.id for r in sorted(records, key=lambda r: (r.time_key, r.id), reverse=True) if matches(r, f)]
    first = client.get("/api/browse", query_string={"limit": 2, **f}).json
    rest = client.get("/api/browse", query_string={"limit": 500, "cursor": first["next_cursor"], **f}).json
    assert [r["id"] for r in first["results"] + rest["results"]] == expected
    assert first["total"] == rest["total"] == len(expected) and rest["next_cursor"] is None


@pytest.mark.parametrize("cursor", ["nonsense", "WzEsMiwzXQ", "eyJhIjoxfQ", "W251bGwsMSwyXQ", "%%%", "x" * 512])
def test_a_bad_cursor_is_a_400(client, cursor):
    error = assert_error(client.get("/api/browse", query_string={"cursor": cursor}), 400, "invalid_argument")
    assert "cursor" in error["message"]


@pytest.mark.parametrize("limit", ["0", "501", "ten"])
def test_a_bad_limit_is_a_400(client, limit):
    assert "limit" in assert_error(client.get(f"/api/browse?limit={limit}"), 400)["message"]


def test_facets_count_folders_with_sub_folders_cameras_types_and_times(client, records):
    body = client.get("/api/facets").json
    folders = {f["path"]: f["count"] for f in body["folders"]}
    assert [f["path"] for f in body["folders"]] == sorted(folders)
    assert folders == {folder: sum(r.path.startswith(folder + "/") for r in records)
                       for folder in ("2023", "2023/spring", "2023/summer", "2024", "big")}
    cameras = {c["name"]: c["count"] for c in body["cameras"]}
    assert cameras == {name: sum(r.camera == name for r in records) for name in CAMERA_NAMES}
    types = {t["name"]: t["count"] for t in body["file_types"]}
    assert types == {t: sum(r.file_type == t for r in records) for t in ("jpeg", "png", "webp", "tiff", "heic")}
    counts = [t["count"] for t in body["file_types"]]
    assert counts == sorted(counts, reverse=True)
    keys = sorted(r.time_key for r in records)
    assert body["time_range"] == {"first": keys[0], "last": keys[-1]}


def test_a_photo_by_id_and_an_unknown_one(client, records, library):
    record = next(r for r in records if r.path == "2023/spring/img0000.jpg")
    body = client.get(f"/api/photos/{record.id}").json
    assert body["name"] == "img0000.jpg" and body["folder"] == "2023/spring" and body["file_type"] == "jpeg"
    assert body["camera"] == library[1][record.path] == "Canon EOS R5"
    assert body["time"] == record.time_key == "2022-01-01T10:15:00" and "score" not in body
    assert body["download_url"] == f"/api/images/{record.id}?download=1"
    assert_error(client.get("/api/photos/999999"), 404, "unknown_id")
    assert_error(client.get(f"/api/photos/{2**63}"), 400)


@pytest.mark.parametrize("path", ["2023/spring/img0000.jpg", *LARGE])
def test_previews_are_jpegs_of_at_most_2048_pixels(client, records, path):
    record = next(r for r in records if r.path == path)
    for _ in range(2):  # made, then from the cache
        response = client.get(f"/api/previews/{record.id}")
        assert response.status_code == 200 and response.mimetype == "image/jpeg"
        img = Image.open(io.BytesIO(response.data))
        assert img.format == "JPEG"
        if path in LARGE:
            assert max(img.size) == 2048
        else:
            assert img.size == (record.width, record.height)
    assert_error(client.get("/api/previews/999999"), 404, "unknown_id")


def test_thumbnails_at_twice_the_size(client, records):
    record = next(r for r in records if r.path == "big/large.tif")
    sizes = {scale: Image.open(io.BytesIO(client.get(f"/api/thumbnails/{record.id}?scale={scale}").data)).size
             for scale in (1, 2)}
    assert sizes == {1: (256, 171), 2: (512, 341)}
    assert Image.open(io.BytesIO(client.get(f"/api/thumbnails/{record.id}").data)).size == sizes[1]
    for scale in ("3", "0", "1.5", "two"):
        assert "scale" in assert_error(client.get(f"/api/thumbnails/{record.id}?scale={scale}"), 400)["message"]


def copies(searcher, ids, threshold=0.95):
    """Groups of a page's ids by brute force: connected by equal sha256 or cosine >= threshold, page order."""
    bundle = searcher.bundle
    by_id = bundle.metadata.get_many(ids)
    vectors = np.asarray(bundle.vectors[bundle.rows_of(ids)], dtype=np.float64)
    linked = (vectors @ vectors.T >= threshold - 1e-6) | np.equal.outer(
        [by_id[i].sha256 for i in ids], [by_id[i].sha256 for i in ids])
    group = list(range(len(ids)))
    for _ in ids:  # propagate the lowest position along links until nothing changes
        group = [min(group[j] for j in np.nonzero(linked[i])[0]) for i in range(len(ids))]
    out = {}
    for i, g in enumerate(group):
        out.setdefault(g, []).append(ids[i])
    return list(out.values())


def test_collapse_gathers_copies_on_the_page(client, searcher, records):
    original = next(r for r in records if r.path == "2023/spring/img0000.jpg")
    plain = client.post("/api/search", json={"id": original.id, "k": 30}).json
    collapsed = client.post("/api/search", json={"id": original.id, "k": 30, "collapse": True}).json
    ids = [r["id"] for r in plain["results"]]
    groups = copies(searcher, ids)
    assert [[r["id"]] + [d["id"] for d in r["duplicates"]] for r in collapsed["results"]] == groups
    assert collapsed["total"] == plain["total"]
    exact_copy = next(r.id for r in records if r.path == "2024/img0000 copy.jpg")
    tile = collapsed["results"][0]
    assert tile["id"] == exact_copy and all("duplicates" not in d for d in tile["duplicates"])
    assert "duplicates" not in plain["results"][0]
    page = client.get("/api/browse?limit=40&collapse=true").json
    browsed = [r["id"] for r in client.get("/api/browse?limit=40").json["results"]]
    assert [[r["id"]] + [d["id"] for d in r["duplicates"]] for r in page["results"]] == copies(searcher, browsed)


def test_relevance_cut_is_reported(client):
    body = client.post("/api/search", json={"text": "a red boat", "k": 100}).json
    scores = [r["score"] for r in body["results"]]
    assert scores[0] >= body["weak_below"] >= scores[-1]
    assert body["strong_total"] == sum(s >= body["weak_below"] for s in scores) >= 1
    filtered = client.post("/api/search", json={"text": "a red boat", "k": 2, "path_prefix": "2024"}).json
    assert filtered["strong_total"] <= filtered["total"] < body["total"]
