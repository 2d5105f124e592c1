"""Browsing by keyset pages and the facets, over generated metadata with many equal times.

Pages followed through their cursors must give exactly the order of a full
sort (time, then id, descending), filtered or not; the SQL of a page must walk
the ``(time_key, id)`` index rather than sort or skip rows.
"""

import base64
import sqlite3

import pytest

from search.errors import InvalidArgumentError
from search.query import browse as browse_module
from search.query.browse import browse, decode_cursor, encode_cursor, page_sql
from search.query.facets import facets
from search.query.filters import Filters
from search.store.metadata import ImageRecord, MetadataReader, write_metadata

N = 2000
FOLDERS = ("a", "a/b", "a/b/c", "d", "")


def record(n):
    folder = FOLDERS[n % 5]
    name = f"p{n:05d}.{('jpg', 'png')[n % 2]}"
    taken = None if n % 4 == 0 else f"2024-0{1 + n % 9}-01T00:00:00"  # many photos share a time
    return ImageRecord(n * 2 + 1, f"{folder}/{name}" if folder else name, 10 + n, (1_600_000_000 + n % 7) * 10**9,
                       f"{n:064x}", 4, 3, taken, ("Canon", "Nikon", None)[n % 3])


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    path = tmp_path_factory.mktemp("browse") / "metadata.sqlite"
    write_metadata(str(path), [record(n) for n in range(N)])
    return MetadataReader(str(path))


def newest_first(records):
    return [r.id for r in sorted(records, key=lambda r: (r.time_key, r.id), reverse=True)]


def walk(metadata, filters, limit):
    ids, cursor, totals = [], None, set()
    while True:
        page = browse(metadata, filters, limit, cursor)
        ids += [r.id for r in page.records]
        totals.add(page.total)
        assert len(page.records) == limit or page.next_cursor is None
        if page.next_cursor is None:
            return ids, totals
        cursor = page.next_cursor


@pytest.mark.parametrize("filters", [None, Filters(path_prefix="a/b"), Filters(camera="Nikon", file_type="png"),
                                     Filters(taken_after="2024-03-01", taken_before="2024-05-01")], ids=repr)
@pytest.mark.parametrize("limit", [1, 37, 500])
@pytest.mark.parametrize("sort_max", [0, browse_module.SORT_MAX])  # pages walk the time index, or sort the matches
def test_pages_through_the_cursor_give_the_full_order(metadata, filters, limit, sort_max, monkeypatch):
    if limit == 1 and filters is None:
        pytest.skip("2,000 pages: the other limits cover it")
    monkeypatch.setattr(browse_module, "SORT_MAX", sort_max)
    records = metadata.all()
    expected = newest_first([r for r in records if filters is None or r.id in set(filters.matching_ids(metadata))])
    ids, totals = walk(metadata, filters, limit)
    assert ids == expected and totals == {len(expected)}


@pytest.mark.parametrize("filters", [Filters(), Filters(taken_after="2024-03-01"), Filters(camera="Nikon"),
                                     Filters(path_prefix="a", file_type="png")], ids=repr)
@pytest.mark.parametrize("after_cursor", [False, True])
def test_a_page_of_many_matches_walks_the_time_index_without_sorting_or_skipping(metadata, filters, after_cursor):
    con = sqlite3.connect(metadata.uri, uri=True)
    params = [*filters.sql()[1], *(("2024-05-01T00:00:00", 100) if after_cursor else ()), 10]
    sql = page_sql(filters, browse_module.SORT_MAX + 1, after_cursor)
    plan = " ".join(str(row) for row in con.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "images_time" in plan and "TEMP B-TREE" not in plan, plan
    assert "OFFSET" not in sql.upper()


@pytest.mark.parametrize("cursor", ["", "abc", encode_cursor("2024-01-01", 1, 2), "WzEsMiwzXQ",
                                    encode_cursor("2024-01-01T00:00:00", 1, 2)[:-2], "é",
                                    base64.urlsafe_b64encode(b'["2024-01-01T00:00:00",true,2]').decode(),
                                    encode_cursor("2024-01-01T00:00:00", -1, 2)])
def test_bad_cursors_are_refused(metadata, cursor):
    with pytest.raises(InvalidArgumentError, match="cursor is not one this server gave out"):
        browse(metadata, cursor=cursor)


def test_a_known_count_spares_counting_the_unfiltered_library(metadata):
    assert browse(metadata, limit=3, count=N).total == N == browse(metadata, limit=3).total
    assert browse(metadata, Filters(path_prefix="d"), limit=3, count=N).total == N // 5  # filtered: counted


def test_no_match_is_an_empty_last_page(metadata):
    page = browse(metadata, Filters(camera="Leica"), limit=3)
    assert (page.records, page.next_cursor, page.total) == ([], None, 0)


def test_cursor_round_trip_and_limits(metadata):
    assert decode_cursor(encode_cursor("2024-01-01T00:00:00", 7, 9)) == ("2024-01-01T00:00:00", 7, 9)
    for limit in (0, 501, True, "5"):
        with pytest.raises(InvalidArgumentError, match="limit must be an integer from 1 to 500"):
            browse(metadata, limit=limit)


def test_facets_count_sub_folders_and_values(metadata):
    records = metadata.all()
    found = facets(metadata).to_dict()
    assert found["folders"] == [{"path": f, "count": sum(r.path.startswith(f + "/") for r in records)}
                                for f in ("a", "a/b", "a/b/c", "d")]
    assert found["folders"][0]["count"] == 3 * N // 5
    assert found["cameras"] == [{"name": "Canon", "count": 667}, {"name": "Nikon", "count": 667}]
    assert found["file_types"] == [{"name": "jpeg", "count": N // 2}, {"name": "png", "count": N // 2}]
    keys = sorted(r.time_key for r in records)
    assert found["time_range"] == {"first": keys[0], "last": keys[-1]}
