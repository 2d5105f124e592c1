"""Browsing: the whole library, or its filtered part, newest first, a page at a time.

Pages are found by keyset pagination over the metadata's index on
``(time_key, id)``: a page starts right after the last row of the one before,
``(time_key, id) < (its time, its id)``, so a deep page costs what the first
one does (``OFFSET`` would read and skip every row before it). The cursor is
that position, plus the total of the first page: counting every matching row
is the slow part of a page at a million photos, and a bundle generation never
changes.
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass

from ..errors import InvalidArgumentError
from ..store.metadata import COLUMNS, ImageRecord
from .filters import Filters

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
SORT_MAX = 2_000  # matches of a filter sorted for a page; past this a page walks the time index (page_sql)
_TIME_KEY = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


@dataclass
class BrowsePage:
    records: list  # ImageRecord, newest first: time_key, then id, descending
    next_cursor: str | None  # None on the last page
    total: int  # photos that match the filters, on all pages


def browse(metadata, filters=None, limit=DEFAULT_LIMIT, cursor=None, count=None):
    """A :class:`BrowsePage` of ``metadata`` (a ``MetadataReader``) after ``cursor`` (None: the first page).

    ``count``: how many photos ``metadata`` holds, where the caller knows
    (``Bundle.count``): the first page of the unfiltered library then counts nothing.
    """
    filters = filters or Filters()
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgumentError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    where, params = filters.sql()
    if cursor is None and where is None and count is not None:
        total = count
    elif cursor is None:
        (total,) = metadata.json_rows(f"SELECT json_array(count(*)) FROM images{_where([where])}", *params)
    else:
        last_time, last_id, total = decode_cursor(cursor)
        params = [*params, last_time, last_id]
    if total == 0:  # nothing matches: no page to look for (a walk would read every row)
        return BrowsePage([], None, 0)
    rows = metadata.json_rows(
        f"SELECT json_group_array(json_array({COLUMNS})) FROM ({page_sql(filters, total, cursor is not None)})",
        *params, limit + 1)  # one more: is there a next page?
    records = sorted((ImageRecord(*row) for row in rows), key=lambda r: (r.time_key, r.id), reverse=True)
    more = len(records) > limit
    records = records[:limit]
    next_cursor = encode_cursor(records[-1].time_key, records[-1].id, total) if more else None
    return BrowsePage(records, next_cursor, total)


def page_sql(filters, total, after_cursor):
    """The SQL of a page: its parameters are the filter's, then the cursor's time and id, then the limit.

    SQLite would serve a filter on an indexed column (camera, file type,
    folder) from that column's index and sort all its matches for each page:
    fine for a few hundred, seconds for most of a million. Past ``SORT_MAX``
    matches a page walks the time index instead, newest first, and skips the
    rows that do not match: then at least one row in ``count / SORT_MAX``
    matches, so a page reads a bounded number of rows either way (walking
    is about ten times cheaper a row than sorting: ``benchmarks/RESULTS.md``,
    "Filters and browsing").
    """
    where, _ = filters.sql()
    conditions = [where, "(time_key, id) < (?, ?)" if after_cursor else None]
    walk = " INDEXED BY images_time" if where and total > SORT_MAX else ""
    return f"SELECT {COLUMNS} FROM images{walk}{_where(conditions)} ORDER BY time_key DESC, id DESC LIMIT ?"


def encode_cursor(time_key, image_id, total):
    raw = json.dumps([time_key, int(image_id), int(total)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor):
    """``(time_key, id, total)`` of a cursor made by :func:`encode_cursor`; InvalidArgumentError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        time_key, image_id, total = json.loads(raw)
        valid = (_TIME_KEY.fullmatch(time_key) and all(
            type(n) is int and 0 <= n < 2**63 for n in (image_id, total)))  # noqa: E721 (no bools)
    except (binascii.Error, ValueError, TypeError):  # not base64, not JSON, not three values, not a string
        valid = False
    if not valid:
        raise InvalidArgumentError("cursor is not one this server gave out; "
                                   "start again without a cursor and follow next_cursor")
    return time_key, image_id, total


def _where(conditions):
    conditions = [c for c in conditions if c]
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""
