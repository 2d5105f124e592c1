"""Per-image metadata in SQLite, one database file per bundle generation.

A generation's database never changes after it is written, so readers open it
read-only and immutable: no locks, no journal, safe across processes.
"""

import json
import sqlite3
import threading
from dataclasses import astuple, dataclass, fields

SCHEMA = """
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,   -- relative to the photo root, '/' separated
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    taken_at TEXT,               -- ISO 8601 from EXIF, when present
    camera TEXT
);
CREATE INDEX images_sha256 ON images (sha256);
"""


@dataclass
class ImageRecord:
    id: int
    path: str
    size: int
    mtime_ns: int
    sha256: str
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    camera: str | None = None


COLUMNS = ", ".join(f.name for f in fields(ImageRecord))


def write_metadata(path, records):
    """Write ``records`` to a new database at ``path`` (which must not exist)."""
    con = sqlite3.connect(path)
    try:
        con.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SCHEMA)
        placeholders = ", ".join("?" * len(fields(ImageRecord)))
        con.executemany(f"INSERT INTO images ({COLUMNS}) VALUES ({placeholders})", map(astuple, records))
        con.commit()
    finally:
        con.close()


class MetadataReader:
    """Read-only access, one connection per thread."""

    def __init__(self, path):
        self.uri = f"file:{path}?mode=ro&immutable=1"
        self._local = threading.local()
        self._conn()  # fail now, not on the first query

    def _conn(self):
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = sqlite3.connect(self.uri, uri=True, check_same_thread=False)
        return con

    def all(self):
        rows = self._conn().execute(f"SELECT {COLUMNS} FROM images ORDER BY id")
        return [ImageRecord(*row) for row in rows]

    def hashes(self):
        """The set of every image's sha256 (far cheaper than ``all`` when only the hashes are wanted)."""
        return {row[0] for row in self._conn().execute("SELECT sha256 FROM images")}

    def get_many(self, ids):
        """Records for ``ids`` in one round trip, as a dict keyed by id."""
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        rows = self._one_json_value(
            f"SELECT json_group_array(json_array({COLUMNS})) FROM images "
            "WHERE id IN (SELECT value FROM json_each(?))", f"[{','.join(map(str, ids))}]")
        return {row[0]: ImageRecord(*row) for row in rows}

    def ids_under(self, prefix):
        """Ids of images whose path starts with ``prefix`` (a folder), in order."""
        prefix = prefix.strip("/")
        if not prefix:
            return None
        # '0' follows '/' in ASCII: every path in the folder sorts between the two
        ids = self._one_json_value("SELECT json_group_array(id) FROM images WHERE path >= ? AND path < ?",
                                   prefix + "/", prefix + "0")
        return sorted(ids)

    def _one_json_value(self, sql, *params):
        """The single JSON value that ``sql`` selects, decoded.

        Queries of the service return many rows as one value: Python's
        sqlite3 lets go of the GIL for every row it steps, and under load
        each row then waits for the GIL again (``benchmarks/RESULTS.md``,
        "Smaller measurements").
        """
        (value,) = self._conn().execute(sql, params).fetchone()
        return json.loads(value)
