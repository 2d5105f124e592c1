"""Writing the bundle: the new records and a vector for each, committed as the next generation.

A record's vector is the one embedded in this build for its content hash, or
else the previous bundle's for that hash (unchanged, renamed and copied
files). The commit is atomic (``search.store.writer``); only once it is done
are the embeddings saved for resuming (the checkpoint) removed.
"""

import numpy as np

from search.store.manifest import Manifest
from search.store.writer import commit


def write_bundle(index, root, records, vectors, fingerprint, previous=None, previous_records=(),
                 max_index_memory=None, checkpoint=None, skipped=None):
    """Commit ``records`` (sorted by id) to the bundle folder ``index`` of the photo folder ``root``.

    ``vectors``: ``{sha256: vector}`` embedded in this build; ``previous``:
    the bundle being updated, whose vectors fill in the rest, and
    ``previous_records`` its records (in its rows' order); ``checkpoint``: the
    build's :class:`indexer.checkpoint.Checkpoint`, cleared after the commit;
    ``skipped``: ``(files, conditions)``, the files to remember as skipped (``search.store.skipped``).
    """
    old_rows = {}
    for row, r in enumerate(previous_records):
        old_rows.setdefault(r.sha256, row)
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
    if previous is not None:
        manifest = previous.manifest
    else:
        manifest = Manifest(model=fingerprint.to_dict(), dim=fingerprint.dim, root=root)
    manifest.root = root
    commit(index, manifest, records, out, max_index_memory=max_index_memory, skipped=skipped)
    if checkpoint is not None:
        checkpoint.clear()
