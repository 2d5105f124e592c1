"""Writing the bundle: the new records and a vector for each, committed as the next generation.

A record's vector is the one embedded in this build for its content hash, or
else the previous bundle's for that hash (unchanged, renamed and copied
files). The commit is atomic (``search.store.writer``); only once it is done
are the embeddings saved for resuming (the checkpoint) removed. An on-disk
index (``--index-type ondisk``) is built by Ray tasks that read the vectors
where they are, the shards of this build and the previous generation's file
(``indexer.cluster.sharded``); its index is rebuilt from all of them each time.
"""

import os
from dataclasses import astuple

import numpy as np

from search.index.choice import ONDISK
from search.store.bundle import VECTORS_FILE
from search.store.manifest import Manifest
from search.store.writer import commit

PREVIOUS_PIECE_ROWS = 1_000_000  # rows of the previous generation's vectors per copy task


def write_bundle(index, root, records, vectors, fingerprint, previous=None, previous_records=(),
                 max_index_memory=None, index_type="auto", checkpoint=None, skipped=None):
    """Commit ``records`` (sorted by id) to the bundle folder ``index`` of the photo folder ``root``.

    ``vectors``: ``{sha256: vector}`` embedded in this build (for ``index_type``
    ``ondisk``: ``{sha256: (shard URI, row)}``, where the vector is); ``previous``:
    the bundle being updated, whose vectors fill in the rest, and
    ``previous_records`` its records (in its rows' order); ``checkpoint``: the
    build's :class:`indexer.checkpoint.Checkpoint`, cleared after the commit;
    ``skipped``: ``(files, conditions)``, the files to remember as skipped (``search.store.skipped``).
    """
    old_rows = {}
    for row, r in enumerate(previous_records):
        old_rows.setdefault(r.sha256, row)
    if previous is not None:
        manifest = previous.manifest
    else:
        manifest = Manifest(model=fingerprint.to_dict(), dim=fingerprint.dim, root=root)
    manifest.root = root
    if index_type == ONDISK:
        _commit_ondisk(index, manifest, records, vectors, previous, old_rows, max_index_memory, skipped)
    else:
        out = np.empty((len(records), fingerprint.dim), np.float32)
        kept, kept_rows = [], []  # the rest come from the previous bundle, read in one call
        for i, r in enumerate(records):
            vector = vectors.get(r.sha256)
            if vector is not None:
                out[i] = vector
            else:
                kept.append(i)
                kept_rows.append(old_rows[r.sha256])
        if kept:
            out[kept] = previous.vectors[np.asarray(kept_rows, dtype=np.int64)]
        commit(index, manifest, records, out, max_index_memory=max_index_memory, skipped=skipped)
    if checkpoint is not None:
        checkpoint.clear()


def _commit_ondisk(index, manifest, records, locations, previous, old_rows, max_index_memory, skipped):
    """The on-disk commit: each record's vector read by the index's tasks from its shard or the previous
    generation's vectors file, the metadata bulk-loaded from ``records``."""
    from indexer.cluster import session
    from indexer.cluster.sharded import Piece, Tasks, commit_ondisk

    sources = {}  # path: (rows to take there, rows of the new generation)
    old_file = os.path.join(previous.path, previous.manifest.generation_dir, VECTORS_FILE) if previous else None
    for row, r in enumerate(records):
        path, take = locations.get(r.sha256) or (old_file, old_rows[r.sha256])
        taken, rows = sources.setdefault(path, ([], []))
        taken.append(take)
        rows.append(row)
    pieces = []
    for path, (taken, rows) in sources.items():
        step = PREVIOUS_PIECE_ROWS if path == old_file else len(rows)
        pieces += [Piece(path, np.asarray(taken[i:i + step], np.int64), np.asarray(rows[i:i + step], np.int64))
                   for i in range(0, len(rows), step)]
    ids = np.fromiter((r.id for r in records), dtype=np.int64, count=len(records))
    commit_ondisk(Tasks(session.import_ray()), index, manifest, ids, map(astuple, records), pieces,
                  max_index_memory, skipped)
