"""The serve setting ``duplicate_threshold``: what collapse folds into one tile and what /api/duplicates groups."""

import time


def tiles(client, **args):
    body = client.get("/api/browse", query_string={"limit": 500, "collapse": "true", **args}).get_json()
    return body["results"], body["total"]


def test_collapse_follows_the_setting(make_app, bundle):
    loose, strict = make_app(duplicate_threshold=0.5).test_client(), make_app(duplicate_threshold=1.0).test_client()
    strict_tiles, total = tiles(strict)
    loose_tiles, _ = tiles(loose)
    assert len(strict_tiles) == total == bundle.count  # the generated photos are all distinct
    assert len(loose_tiles) < len(strict_tiles)  # a random model puts different photos above 0.5
    shown = [r["id"] for r in loose_tiles] + [d["id"] for r in loose_tiles for d in r["duplicates"]]
    assert sorted(shown) == sorted(r["id"] for r in strict_tiles)  # folded, none lost


def test_duplicates_default_to_the_setting_and_a_query_overrides_it(make_app):
    client = make_app(duplicate_threshold=0.99).test_client()
    for query, expected in (("", 0.99), ("?threshold=0.97", 0.97)):
        deadline = time.monotonic() + 60
        while (response := client.get(f"/api/duplicates{query}")).status_code == 202:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert response.status_code == 200 and response.get_json()["threshold"] == expected
