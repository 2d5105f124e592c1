"""The metadata database on its own."""

import pytest

from search.store.metadata import ImageRecord, MetadataReader, write_metadata

RECORDS = [
    ImageRecord(1, "plain.jpg", 10, 1, "a" * 64, 64, 48, "2024-05-01T10:00:00", "Canon"),
    ImageRecord(2, 'quotes "and" \\ back\\slash/\u00e9t\u00e9 \U0001f305.jpg', 11, 2**63 - 1, "b" * 64),
    ImageRecord(7, "tab\there/new\nline.jpg", 0, -5, "c" * 64, None, 9, None, "x" * 300),
]


@pytest.fixture
def reader(tmp_path):
    write_metadata(str(tmp_path / "metadata.sqlite"), RECORDS)
    return MetadataReader(str(tmp_path / "metadata.sqlite"))


def test_get_many_returns_the_stored_records_exactly(reader):
    """One JSON value per call: escapes, non-ASCII text, NULLs and 64-bit integers come back as written."""
    assert reader.get_many([7, 1, 2, 1]) == {r.id: r for r in RECORDS}
    assert reader.get_many([2]) == {2: RECORDS[1]}
    assert reader.get_many([]) == {}
    assert reader.get_many([3, 4]) == {}
    assert reader.all() == RECORDS


def test_ids_under_a_folder_in_order(tmp_path):
    records = [ImageRecord(i, path, 1, 1, "d" * 64)
               for i, path in [(9, "a/z.jpg"), (3, "a/b/c.jpg"), (5, "a0.jpg"), (4, "ab/x.jpg"), (1, "a/a.jpg")]]
    write_metadata(str(tmp_path / "m.sqlite"), records)
    reader = MetadataReader(str(tmp_path / "m.sqlite"))
    assert reader.ids_under("a") == reader.ids_under("/a/") == [1, 3, 9]
    assert reader.ids_under("a/b") == [3]
    assert reader.ids_under("nowhere") == []
    assert reader.ids_under("") is None
