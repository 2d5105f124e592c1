"""Committing a new generation of an index bundle, atomically.

Files go into ``gen-N.tmp``, are fsynced, the folder is renamed to ``gen-N``
(``search.store.atomic.atomic_dir``), and only then does ``manifest.json``
switch to it. A crash at any moment leaves the previous manifest naming a
complete previous generation. One generation before the live one is kept for
readers that are still opening it.
"""

import fcntl
import os
import shutil
import threading
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from ..index import ann
from .bundle import IDS_FILE, METADATA_FILE, VECTORS_FILE
from ..errors import BundleLockedError
from ..index.choice import build_chosen
from .atomic import atomic_dir
from .manifest import generation_dir_name, utcnow, write_manifest
from .metadata import write_metadata
from .skipped import write_skipped

LOCK_FILE = ".lock"
KEEP_GENERATIONS = 2


_held = set()  # bundle folders locked by this process: POSIX locks don't exclude a process from itself
_held_guard = threading.Lock()


@contextmanager
def bundle_lock(bundle_dir):
    """Hold the bundle's writer lock; a second writer is refused at once.

    A POSIX record lock belongs to this process alone: forked decode workers
    do not inherit it, so it goes with the builder when the builder is killed.
    """
    os.makedirs(bundle_dir, exist_ok=True)
    key = os.path.realpath(bundle_dir)
    with _held_guard:
        if key in _held:
            raise BundleLockedError(f"another build is writing {bundle_dir} (this process); wait for it to finish")
        _held.add(key)
    fd = os.open(os.path.join(bundle_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise BundleLockedError(
                f"another build is writing {bundle_dir} (pid {holder}); wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; so does the process's death
        with _held_guard:
            _held.discard(key)


def commit(bundle_dir, manifest, records, vectors, index_type="auto", max_index_memory=None, skipped=None):
    """Write ``records`` (sorted by id) and their ``vectors`` as the next generation.

    ``manifest`` is the previous one (or a fresh one); returns the new manifest.
    The index is chosen for the collection (see ``search.index.choice``) unless
    ``index_type`` names one; ``max_index_memory`` (bytes or "4G") bounds it.
    ``skipped``: ``(files, conditions)`` for ``search.store.skipped``.
    """
    ids = np.fromiter((r.id for r in records), dtype=np.int64, count=len(records))
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(records), manifest.dim)
    index, index_type, index_params = build_chosen(check_ids(ids), vectors, index_type, max_index_memory)

    def write(gen):
        _save_npy(os.path.join(gen, VECTORS_FILE), vectors)
        write_metadata(os.path.join(gen, METADATA_FILE), records)
        ann.save_index(index, os.path.join(gen, ann.INDEX_FILE))
        return index_type, index_params

    return commit_generation(bundle_dir, manifest, ids, write, skipped)


def commit_generation(bundle_dir, manifest, ids, write, skipped=None):
    """Commit the next generation of ``ids`` (sorted), whose other files ``write(folder)`` puts in the
    temporary generation folder, returning ``(index_type, index_params)``: the vectors file
    (``VECTORS_FILE``, a row per id), the metadata database and the index (``ann.INDEX_FILE``, and
    ``ann.ONDISK_LISTS`` for an on-disk index). Returns the new manifest."""
    new = replace(manifest, generation=manifest.generation + 1, count=len(ids),
                  next_id=max(manifest.next_id, int(ids[-1]) + 1 if len(ids) else 0), updated_at=utcnow())
    with atomic_dir(os.path.join(bundle_dir, new.generation_dir)) as gen:
        _save_npy(os.path.join(gen, IDS_FILE), ids)
        new.index_type, new.index_params = write(gen)
        if skipped is not None:
            write_skipped(gen, *skipped)
        index_bytes = sum(os.path.getsize(os.path.join(gen, name)) for name in (ann.INDEX_FILE, ann.ONDISK_LISTS)
                          if os.path.exists(os.path.join(gen, name)))
        new.index_params["bytes_per_vector"] = round(index_bytes / max(1, len(ids)), 1)
    write_manifest(bundle_dir, new)
    remove_stale_generations(bundle_dir, new.generation)
    return new


def check_ids(ids):
    """``ids`` (int64), which must be sorted and unique: a row of the bundle is found by its id."""
    if len(ids) > 1 and np.any(np.diff(ids) <= 0):
        raise ValueError("records must be sorted by id, without repeats")
    return ids


def remove_stale_generations(bundle_dir, live_generation):
    keep = {generation_dir_name(g) for g in range(live_generation - KEEP_GENERATIONS + 1, live_generation + 1)}
    for name in os.listdir(bundle_dir):
        if name.startswith("gen-") and name not in keep:
            shutil.rmtree(os.path.join(bundle_dir, name), ignore_errors=True)


def _save_npy(path, array):
    with open(path, "wb") as f:
        np.save(f, array)
