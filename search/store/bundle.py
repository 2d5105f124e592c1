"""Reading an index bundle: one generation's ids, vectors, index and metadata, and the shape of results.

A bundle folder holds ``manifest.json`` and the generation folder it names:
``vectors.npy`` and ``ids.npy`` (rows sorted by id), ``index.faiss`` and
``metadata.sqlite``. See ``search.store.writer`` for how generations are
committed, and ``search.query.searcher`` for how a bundle is searched.
"""

import os
import sqlite3
from dataclasses import dataclass, field, fields

import numpy as np

from ..encoding.fingerprint import ModelFingerprint
from ..errors import BundleError, SearchError, UnknownIdError
from ..index import ann
from .manifest import read_manifest
from .metadata import ImageRecord, MetadataReader
from .vectors import VectorFile, open_vectors

VECTORS_FILE = "vectors.npy"
IDS_FILE = "ids.npy"
METADATA_FILE = "metadata.sqlite"
MAX_K = 10_000


@dataclass
class Result:
    id: int
    path: str
    score: float
    width: int | None
    height: int | None
    taken_at: str | None
    camera: str | None
    size: int
    # the metadata row it came from, for callers that show more of it (the service's result objects)
    record: ImageRecord | None = field(default=None, repr=False, compare=False)

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "record"}


@dataclass
class SearchPage:
    results: list  # of Result, best first
    total: int  # how many images match the query's filters in all
    seconds: dict = field(default_factory=dict, compare=False)  # time of each stage of the query, by stage name
    weak_below: float | None = None  # with the relevance cut: results scoring less are weak matches
    strong_total: int | None = None  # with the relevance cut: matches scoring weak_below or more, on all pages


def load_ids(path, mapped=False):
    """The ids of a generation: an array, or (``mapped``, for an on-disk index) an :class:`IdRange` when they
    run first..first+n-1, else the file memory-mapped, so that opening a bundle holds no memory per image."""
    if not mapped:
        return np.load(path)
    ids = np.load(path, mmap_mode="r")
    first = dense_first(ids)
    return ids if first is None else IdRange(first, len(ids))


def dense_first(ids):
    """The first of ``ids`` (sorted and unique) when they run first..first+n-1, as a fresh build's do, else None."""
    return int(ids[0]) if len(ids) and int(ids[-1]) - int(ids[0]) == len(ids) - 1 else None


class IdRange:
    """The ids first..first+n-1 as a read-only array-like: ``len``, ``ids[i]``, ``ids[rows]``, ``np.asarray``."""

    dtype = np.dtype(np.int64)

    def __init__(self, first, count):
        self.first, self.count = first, count

    def __len__(self):
        return self.count

    @property
    def shape(self):
        return (self.count,)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return np.arange(*key.indices(self.count), dtype=np.int64) + self.first
        rows = np.asarray(key, dtype=np.int64)
        if np.any((rows < -self.count) | (rows >= self.count)):
            raise IndexError(f"a row is out of range for {self.count} ids")
        rows = np.where(rows < 0, rows + self.count, rows) + self.first
        return int(rows) if rows.ndim == 0 else rows

    def __array__(self, dtype=None, copy=None):
        return np.arange(self.first, self.first + self.count, dtype=dtype or np.int64)


class Bundle:
    """One generation of an index bundle, opened read-only."""

    def __init__(self, path, manifest, ids, vectors, index, metadata):
        self.path = path
        self.manifest = manifest
        self.ids = ids
        self._first_id = dense_first(ids)  # not None: a row is an offset from it
        self.vectors = vectors
        self.index = index
        self.metadata = metadata

    @classmethod
    def open(cls, path, use_gpu="auto", gpu_device="cuda", vectors="auto"):
        """Open the bundle at ``path`` read-only.

        ``use_gpu`` (True, False or ``"auto"``: when there is a GPU) and
        ``gpu_device`` choose where searches run; see ``ann.load_index``.
        ``vectors``: read the stored vectors into memory or from their file
        as rows are needed (``"auto"``: by their size; see ``search.store.vectors``).
        """
        path = os.path.abspath(path)
        # A writer may retire a generation between reading the manifest and
        # opening its files; the next manifest then names a newer one.
        vectors_mode = vectors
        for attempt in range(3):
            manifest = read_manifest(path)
            gen = os.path.join(path, manifest.generation_dir)
            try:
                ondisk = os.path.exists(os.path.join(gen, ann.ONDISK_LISTS))
                ids = load_ids(os.path.join(gen, IDS_FILE), mapped=ondisk)
                # an on-disk index is for collections past memory: its vectors are read as rows are needed
                vectors = open_vectors(os.path.join(gen, VECTORS_FILE),
                                       "file" if ondisk and vectors_mode == "auto" else vectors_mode)
                if len(ids) != manifest.count or vectors.shape != (manifest.count, manifest.dim):
                    raise BundleError(f"bundle {path} is inconsistent: manifest and vectors disagree; rebuild it")
                index = ann.load_index(os.path.join(gen, ann.INDEX_FILE), use_gpu=use_gpu,
                                       params=manifest.index_params.get("search"),
                                       stored=(ids, vectors), gpu_device=gpu_device)
                metadata = MetadataReader(os.path.join(gen, METADATA_FILE))
                if metadata.count() != manifest.count:
                    raise BundleError(f"bundle {path} is inconsistent: manifest and metadata disagree; rebuild it")
            except FileNotFoundError:
                if attempt == 2:
                    raise BundleError(f"bundle {path} names generation {manifest.generation_dir}, which is missing")
                continue
            except SearchError:  # already says what is wrong (InvalidArgumentError is also a ValueError)
                raise
            except (OSError, ValueError, RuntimeError, sqlite3.Error) as e:
                raise BundleError(f"bundle {path} is damaged: {e}; rebuild it with python -m indexer build") from e
            return cls(path, manifest, ids, vectors, index, metadata)

    @property
    def vectors_in_memory(self):
        """Whether the vectors were read into memory (else rows are read from their file as needed)."""
        return not isinstance(self.vectors, VectorFile)

    @property
    def count(self):
        return self.manifest.count

    @property
    def dim(self):
        return self.manifest.dim

    @property
    def fingerprint(self):
        return ModelFingerprint.from_dict(self.manifest.model)

    @property
    def root(self):
        return self.manifest.root

    def rows_of(self, ids):
        """Rows of ``vectors`` for ``ids``; raises :class:`UnknownIdError` for an id not in the bundle."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if self._first_id is not None:  # an offset, not a binary search over every id (benchmarks/RESULTS.md)
            rows = ids - self._first_id
            bad = (rows < 0) | (rows >= len(self.ids))
        else:
            rows = np.searchsorted(self.ids, ids)
            if len(self.ids) == 0:
                bad = np.ones(len(ids), dtype=bool)
            else:
                bad = (rows >= len(self.ids)) | (self.ids[np.minimum(rows, len(self.ids) - 1)] != ids)
        if np.any(bad):
            raise UnknownIdError(f"unknown image id {int(ids[np.argmax(bad)])}")
        return rows

    def vector(self, image_id):
        return np.array(self.vectors[self.rows_of([image_id])[0]], dtype=np.float32)

    def record(self, image_id):
        found = self.metadata.get_many([image_id])
        if image_id not in found:
            raise UnknownIdError(f"unknown image id {image_id}")
        return found[image_id]

    def abspath(self, image_id):
        return os.path.join(self.root, *self.record(image_id).path.split("/"))

    def check(self):
        """Raise :class:`BundleError` when this open generation can no longer answer queries.

        Its files are held open, so moving or deleting the bundle does not
        matter; a vectors file truncated in place, or a damaged database, does.
        """
        if isinstance(self.vectors, VectorFile):
            self.vectors.check()
        self.metadata.get_many([int(self.ids[0])] if len(self.ids) else [])

    def bytes_on_disk(self):
        total = 0
        for folder, _, files in os.walk(self.path):
            total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
        return total

