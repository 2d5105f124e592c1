"""Per-image metadata in SQLite, one database file per bundle generation.

A generation's database never changes after it is written, so readers open it
read-only and immutable: no locks, no journal, safe across processes.

Format 2 adds the file's identity at indexing (device, inode, ctime: serving
checks that the file is still the one indexed) and three columns derived from
the others, each indexed, for browsing and filters: ``folder``, ``file_type``
and ``time_key`` (capture time, else the file's mtime). A format-1 database
(written before) is upgraded into a temporary copy when it is opened.
"""

import json
import os
import queue
import sqlite3
import tempfile
from contextlib import contextmanager
from dataclasses import astuple, dataclass, fields
from datetime import datetime, timezone

from ..errors import BundleError

FORMAT = 2
WAIT_SECONDS = 30  # for a pooled connection, when no new one can be opened
INDEX_CACHE_KIB = 262_144  # page cache of a bulk load: building an index sorts in it
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
    camera TEXT,
    dev INTEGER,                 -- st_dev, st_ino and st_ctime_ns of the file when indexed
    ino INTEGER,
    ctime_ns INTEGER,
    folder TEXT NOT NULL,        -- derived: the path's folder, '' at the root
    file_type TEXT NOT NULL,     -- derived: 'jpeg', 'png', 'heic'... from the extension
    time_key TEXT NOT NULL       -- derived: taken_at, else the mtime in UTC, 'YYYY-MM-DDTHH:MM:SS'
);
CREATE INDEX images_sha256 ON images (sha256);
CREATE INDEX images_time ON images (time_key, id);
CREATE INDEX images_folder ON images (folder);
CREATE INDEX images_camera ON images (camera);
CREATE INDEX images_file_type ON images (file_type);
"""
# Extensions that name the same format, as shown and filtered on.
_FILE_TYPES = {"jpg": "jpeg", "jpe": "jpeg", "tif": "tiff"}


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
    dev: int | None = None  # None in bundles of format 1
    ino: int | None = None
    ctime_ns: int | None = None

    @property
    def folder(self):
        return folder_of(self.path)

    @property
    def file_type(self):
        return file_type_of(self.path)

    @property
    def time_key(self):
        return time_key_of(self.taken_at, self.mtime_ns)


def folder_of(path):
    return path.rpartition("/")[0]


def file_type_of(path):
    ext = path.rpartition(".")[2].lower() if "." in path.rpartition("/")[2] else ""
    return _FILE_TYPES.get(ext, ext)


def time_key_of(taken_at, mtime_ns):
    """When a photo was taken, as far as the bundle knows: EXIF's time, else the file's mtime (UTC)."""
    if taken_at:
        return taken_at[:19]
    return datetime.fromtimestamp(mtime_ns / 1e9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


FIELDS = [f.name for f in fields(ImageRecord)]
COLUMNS = ", ".join(FIELDS)
DERIVED = ("folder", "file_type", "time_key")
_INSERT = f"INSERT INTO images ({COLUMNS}, {', '.join(DERIVED)}) VALUES ({', '.join('?' * (len(FIELDS) + 3))})"


def _row(fields):
    """A row of :data:`FIELDS` values with its derived columns."""
    return fields + (folder_of(fields[1]), file_type_of(fields[1]), time_key_of(fields[7], fields[3]))


def write_metadata(path, records):
    """Write ``records`` (ImageRecord) to a new database at ``path`` (which must not exist)."""
    load_metadata(path, map(astuple, records))


def load_metadata(path, rows):
    """Bulk-load ``rows`` (tuples of :data:`FIELDS` values, by id) into a new database at ``path``.

    One transaction, no journal and no fsync (the file is new: a crash
    leaves a temporary generation that the next build clears; the commit
    fsyncs it), and the indexes built after the rows are in: several times
    faster than keeping five indexes up to date row by row
    (``benchmarks/RESULTS.md``, "Scale").
    """
    con = sqlite3.connect(path)
    try:
        table, _, indexes = SCHEMA.partition(";\n")
        con.executescript(f"PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA locking_mode=EXCLUSIVE; "
                          f"PRAGMA cache_size=-{INDEX_CACHE_KIB}; {table};")
        con.executemany(_INSERT, map(_row, rows))
        con.executescript(f"{indexes} PRAGMA user_version={FORMAT};")
        con.commit()
    finally:
        con.close()


class MetadataReader:
    """Read-only access through a pool of connections, shared by threads.

    The first connection is opened here and kept, so the generation stays
    readable when its folder is moved away or deleted under a running server:
    a new connection that cannot be opened waits for a pooled one instead.
    A database that cannot be read is a :class:`BundleError`.
    """

    def __init__(self, path):
        self._upgraded = None
        if _format(path) < FORMAT:
            path = self._upgraded = _upgrade(path)
        self.path = path
        self.uri = f"file:{path}?mode=ro&immutable=1"
        self._idle = queue.SimpleQueue()
        self._idle.put(self._open())  # fail now, not on the first query

    def _open(self):
        con = sqlite3.connect(self.uri, uri=True, check_same_thread=False)
        try:
            con.execute("SELECT id FROM images LIMIT 1").fetchall()  # opens the file now
        except BaseException:
            con.close()
            raise
        return con

    @contextmanager
    def _conn(self):
        """A connection of the pool for the time of one query; a new one while all are busy."""
        try:
            con = self._idle.get_nowait()
        except queue.Empty:
            try:
                con = self._open()
            except sqlite3.Error:  # the file is gone: wait for a connection opened before
                try:
                    con = self._idle.get(timeout=WAIT_SECONDS)
                except queue.Empty:
                    raise BundleError(f"the metadata database {self.path} can no longer be opened") from None
        try:
            yield con
        except sqlite3.DatabaseError as e:  # overwritten in place, damaged: the request is a 503, not a 500
            raise BundleError(f"the metadata database {self.path} cannot be read: {e}") from e
        finally:
            self._idle.put(con)

    def close(self):
        """Remove the upgraded copy of a format-1 database, if one was made."""
        if self._upgraded:
            try:
                os.unlink(self._upgraded)
            except OSError:
                pass
            self._upgraded = None

    def __del__(self):
        self.close()

    def all(self):
        with self._conn() as con:
            return [ImageRecord(*row) for row in con.execute(f"SELECT {COLUMNS} FROM images ORDER BY id")]

    def hashes(self):
        """The set of every image's sha256 (far cheaper than ``all`` when only the hashes are wanted)."""
        with self._conn() as con:
            return {row[0] for row in con.execute("SELECT sha256 FROM images")}

    def count(self):
        with self._conn() as con:
            return con.execute("SELECT count(*) FROM images").fetchone()[0]

    def get_many(self, ids):
        """Records for ``ids`` in one round trip, as a dict keyed by id."""
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        rows = self.json_rows(
            f"SELECT json_group_array(json_array({COLUMNS})) FROM images "
            "WHERE id IN (SELECT value FROM json_each(?))", f"[{','.join(map(str, ids))}]")
        return {row[0]: ImageRecord(*row) for row in rows}

    def ids_under(self, prefix):
        """Ids of images whose path starts with ``prefix`` (a folder), in order."""
        where, params = under_folder(prefix)
        if where is None:
            return None
        return sorted(self.json_rows(f"SELECT json_group_array(id) FROM images WHERE {where}", *params))

    def json_rows(self, sql, *params):
        """The single JSON value that ``sql`` selects, decoded.

        Queries of the service return many rows as one value: Python's
        sqlite3 lets go of the GIL for every row it steps, and under load
        each row then waits for the GIL again (``benchmarks/RESULTS.md``,
        "Smaller measurements").
        """
        with self._conn() as con:
            (value,) = con.execute(sql, params).fetchone()
        return json.loads(value)


def under_folder(prefix):
    """``(sql, params)`` matching the paths inside folder ``prefix``; ``(None, ())`` for the whole tree."""
    prefix = prefix.strip("/")
    if not prefix:
        return None, ()
    # '0' follows '/' in ASCII: every path in the folder sorts between the two
    return "path >= ? AND path < ?", (prefix + "/", prefix + "0")


def _format(path):
    con = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        return con.execute("PRAGMA user_version").fetchone()[0] or 1
    finally:
        con.close()


def _upgrade(path):
    """A temporary format-2 copy of the format-1 database at ``path`` (the bundle itself stays as it is)."""
    fd, copy = tempfile.mkstemp(prefix="photosearch-metadata-", suffix=".sqlite")
    os.close(fd)
    os.unlink(copy)
    old = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        names = FIELDS[:FIELDS.index("camera") + 1]
        rows = old.execute(f"SELECT {', '.join(names)} FROM images ORDER BY id")
        write_metadata(copy, (ImageRecord(*row) for row in rows))
    finally:
        old.close()
    return copy
