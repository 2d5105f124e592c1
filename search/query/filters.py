"""Which images a query or a browse may return, decided from their metadata before ranking.

A filter becomes one SQL condition over the metadata's indexed columns; a
search ranks only the ids it selects (see ``Searcher``), so a filtered query
still fills its page when that many images match.
"""

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import numpy as np

from ..errors import InvalidArgumentError
from ..store.metadata import under_folder

MAX_VALUES = 64  # cameras or file types in one filter


@dataclass(frozen=True)
class Filters:
    """Conditions on an image's metadata; an image must meet all that are set.

    - ``path_prefix``: a folder of the photo tree (``"2024/holidays"``); its
      images, at any depth, match.
    - ``taken_after`` / ``taken_before``: ISO dates or date-times, both
      inclusive (a bare date in ``taken_before`` includes that whole day),
      compared with the capture time, or the file's mtime where EXIF has none.
    - ``camera``, ``file_type``: one value or a list of them (any matches);
      file types as the bundle names them (``jpeg``, ``png``, ``heic``...).
    """

    path_prefix: str | None = None
    taken_after: str | None = None
    taken_before: str | None = None
    camera: tuple | None = None
    file_type: tuple | None = None

    def __post_init__(self):
        if self.path_prefix is not None and not isinstance(self.path_prefix, str):
            raise InvalidArgumentError("path_prefix must be a string")
        after, before = (self._time(name) for name in ("taken_after", "taken_before"))
        if after is not None and before is not None and (after[1] >= before[1] if before[0] == "<" else
                                                         after[1] > before[1]):
            raise InvalidArgumentError(f"taken_after ({self.taken_after}) is later than taken_before "
                                       f"({self.taken_before}): no photo could match")
        object.__setattr__(self, "camera", _values("camera", self.camera))
        types = _values("file_type", self.file_type)
        object.__setattr__(self, "file_type", types and tuple(v.lower() for v in types))

    @classmethod
    def of(cls, filters=None, path_prefix=None):
        """``filters`` with the shorthand ``path_prefix`` keyword of the search calls folded in."""
        filters = filters or cls()
        if path_prefix is None:
            return filters
        if filters.path_prefix is not None:
            raise InvalidArgumentError("give path_prefix once: as a keyword or in the filters, not both")
        return replace(filters, path_prefix=path_prefix)

    @property
    def active(self):
        return self.sql()[0] is not None

    def sql(self):
        """``(condition, params)`` for ``WHERE``; ``(None, [])`` when nothing is filtered."""
        parts, params = [], []
        if self.path_prefix is not None:
            where, values = under_folder(self.path_prefix)
            if where is not None:
                parts.append(where)
                params += values
        for name in ("taken_after", "taken_before"):
            bound = self._time(name)
            if bound is not None:
                parts.append(f"time_key {bound[0]} ?")
                params.append(bound[1])
        for column in ("camera", "file_type"):
            values = getattr(self, column)
            if values:
                parts.append(f"{column} IN ({', '.join('?' * len(values))})")
                params += list(values)
        return (" AND ".join(parts) if parts else None), params

    def _time(self, name):
        """``(operator, time key)`` of a time bound, or None: both bounds are inclusive, and a bare date
        in ``taken_before`` includes that whole day (the bound is then the next day, exclusive)."""
        value = getattr(self, name)
        if value is None:
            return None
        when = parse_time(name, value)
        if name == "taken_after":
            return ">=", when.isoformat()
        if isinstance(when, datetime):
            return "<=", when.isoformat()
        return "<", (when + timedelta(days=1)).isoformat()

    def matching_ids(self, metadata):
        """Sorted ids (int64) of the images that match, or ``None`` when nothing is filtered."""
        where, params = self.sql()
        if where is None:
            return None
        ids = metadata.json_rows(f"SELECT json_group_array(id) FROM images WHERE {where}", *params)
        return np.sort(np.asarray(ids, dtype=np.int64))


def parse_time(name, value):
    """A ``date`` for ``YYYY-MM-DD``, a ``datetime`` (to the second, no zone) for a date-time."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be an ISO date such as 2024-06-30, not {type(value).__name__}")
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        return datetime.fromisoformat(value).replace(tzinfo=None, microsecond=0)
    except ValueError:
        raise InvalidArgumentError(
            f"{name} must be an ISO date or date-time such as 2024-06-30 or 2024-06-30T18:00, got {value!r}") from None


def _values(name, value):
    if value is None:
        return None
    values = (value,) if isinstance(value, str) else value
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) and v for v in values):
        raise InvalidArgumentError(f"{name} must be a non-empty string or a list of them")
    if len(values) > MAX_VALUES:
        raise InvalidArgumentError(f"{name} lists {len(values)} values; at most {MAX_VALUES} are allowed")
    return tuple(values) or None
