"""Shards of a distributed build: one Parquet file per group of files, named by what went in.

A group's name is a hash of the model chosen and of each file's path, size
and mtime, so the same group in a re-run (a killed driver, a lost node, the
same command again) has the same name, and a shard that exists and reads
back whole is not embedded again. A shard holds one row per file of its
group: the file's metadata, content hash and vector (none when the bundle
already knew the content; ``has_vector`` says which rows hold one, for a
reader that leaves the vectors where they are), or the reason it was skipped. Ids are not stored:
the driver gives them at commit, as a local build does.

Shards go anywhere pyarrow's filesystems reach (a local or shared folder,
``s3://``, ``gs://``). Each is written under a temporary name and moved into
place; Parquet page checksums and the group's key and row count in the file's
own metadata catch a damaged shard, which is then made again.
"""

import hashlib
import json
import secrets

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from search.encoding.fingerprint import ModelFingerprint

KEY = b"photosearch.key"
ROWS = b"photosearch.rows"
MODEL = b"photosearch.model"
COLUMNS = ("path", "size", "mtime_ns", "sha256", "width", "height", "taken_at", "camera", "reason", "vector")
HAS_VECTOR = "has_vector"  # whether the row's vector is there, readable without reading the vectors


def group_key(model, photos):
    """The shard name of ``photos`` (PhotoFile) embedded by ``model`` (a ModelChoice)."""
    h = hashlib.sha256(json.dumps([model.name, model.pretrained, model.config], sort_keys=True).encode())
    for p in photos:
        h.update(f"{p.rel}\0{p.size}\0{p.mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def group_files(photos, target):
    """``photos`` cut into groups of about ``target`` files, with boundaries set by the paths themselves
    (after a path whose hash is 0 mod ``target``, or at 4 x ``target``): a file added or removed
    changes the names of its own group only, so a re-run after a change reuses the other shards."""
    groups, group = [], []
    for p in photos:
        group.append(p)
        cut = int.from_bytes(hashlib.blake2b(p.rel.encode(), digest_size=8).digest(), "little") % target == 0
        if cut or len(group) >= 4 * target:
            groups.append(group)
            group = []
    if group:
        groups.append(group)
    return groups


class ShardStore:
    """The shards of one build at ``url`` (a folder path or a pyarrow filesystem URL)."""

    def __init__(self, url):
        self.url = url
        self.fs, self.root = pafs.FileSystem.from_uri(url) if "://" in url else (pafs.LocalFileSystem(), url)
        self.fs.create_dir(self.root, recursive=True)

    def path(self, key):
        return f"{self.root.rstrip('/')}/shard-{key}.parquet"

    def uri(self, key):
        """Where pyarrow reads the shard ``key`` from, in any process (a path, or a URL)."""
        scheme = self.url.split("://")[0] + "://" if "://" in self.url else ""
        return scheme + self.path(key)

    def read(self, key, rows=None, columns=None):
        """The shard ``key`` as a pyarrow Table (of ``columns``, default all), or None when it is missing or
        damaged (or, with ``rows``, does not hold that many rows)."""
        try:
            with self.fs.open_input_file(self.path(key)) as f:
                table = pq.read_table(f, columns=columns, page_checksum_verification=True)
        except (OSError, pa.ArrowException):  # missing, truncated, a page whose checksum fails
            return None
        meta = table.schema.metadata or {}
        if meta.get(KEY) != key.encode() or int(meta.get(ROWS, -1)) != table.num_rows or MODEL not in meta or \
                HAS_VECTOR not in table.schema.names:
            return None
        if rows is not None and table.num_rows != rows:
            return None
        return table

    @staticmethod
    def fingerprint(table):
        """The ModelFingerprint of the model that made the shard ``table``."""
        return ModelFingerprint.from_dict(json.loads(table.schema.metadata[MODEL]))

    def write(self, key, rows, fingerprint):
        """Write the shard ``key`` from ``rows`` (dicts with :data:`COLUMNS`; vector None or float32[dim]),
        made by the model of ``fingerprint``."""
        dim = fingerprint.dim
        vectors = [None if r["vector"] is None else np.asarray(r["vector"], np.float32).tolist() for r in rows]
        columns = {c: [r[c] for r in rows] for c in COLUMNS if c != "vector"}
        table = pa.table({**columns, HAS_VECTOR: [v is not None for v in vectors],
                          "vector": pa.array(vectors, pa.list_(pa.float32(), dim))})
        table = table.replace_schema_metadata({KEY: key.encode(), ROWS: str(len(rows)).encode(),
                                               MODEL: json.dumps(fingerprint.to_dict()).encode()})
        final = self.path(key)
        temporary = f"{final}.tmp-{secrets.token_hex(4)}"
        with self.fs.open_output_stream(temporary) as f:
            pq.write_table(table, f, write_page_checksum=True)
        self.fs.move(temporary, final)  # a rename on a filesystem; object stores commit on close anyway

    def keys(self):
        """Keys of the shards present (whole or not)."""
        found = self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        return sorted(i.base_name[6:-8] for i in found
                      if i.base_name.startswith("shard-") and i.base_name.endswith(".parquet"))

    def clear(self):
        self.fs.delete_dir_contents(self.root, missing_dir_ok=True)
