"""Embeddings of a build in progress, saved in chunks so a re-run can resume.

Each chunk is written atomically (``search.store.atomic``), so a kill leaves
either a whole chunk or none. Several builder processes (one per GPU) write
into the same folder at once: every writer names its chunks with its own
random prefix, and every chunk records the model that made it, so nothing has
to be cleared before a build starts. The folder is emptied after a successful
commit.
"""

import json
import os
import secrets
import shutil
import zipfile

import numpy as np

from search.encoding.fingerprint import ModelFingerprint
from search.store.atomic import atomic_file

FOLDER = "checkpoint"


class Checkpoint:
    def __init__(self, bundle_dir):
        self.dir = os.path.join(bundle_dir, FOLDER)
        self._pending = []  # (sha256, vector)
        self._prefix = f"chunk-{secrets.token_hex(6)}-"
        self._chunks = 0

    def _chunk_files(self):
        if not os.path.isdir(self.dir):
            return []
        return sorted(f for f in os.listdir(self.dir) if f.startswith("chunk-") and f.endswith(".npz"))

    def _read(self, fingerprint, *keys):
        """``keys`` of each whole chunk made by ``fingerprint``'s model in its precision; others are left for
        the final clear."""
        for name in self._chunk_files():
            try:
                with np.load(os.path.join(self.dir, name)) as chunk:
                    if not ModelFingerprint.from_dict(json.loads(str(chunk["model"]))).same_vectors(fingerprint):
                        continue
                    values = [chunk[key] for key in keys]
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):
                continue  # a damaged chunk only costs its re-embedding
            yield values

    def load(self, fingerprint):
        """Saved ``{sha256: vector}`` made by the same model."""
        found = {}
        for shas, vectors in self._read(fingerprint, "sha256", "vectors"):
            found.update(zip(map(str, shas), vectors))
        return found

    def hashes(self, fingerprint):
        """The hashes :meth:`load` would return, without reading the vectors."""
        return {str(sha) for (shas,) in self._read(fingerprint, "sha256") for sha in shas}

    def add(self, sha256, vector):
        self._pending.append((sha256, vector))

    def flush(self, fingerprint):
        if not self._pending:
            return
        os.makedirs(self.dir, exist_ok=True)
        shas, vectors = zip(*self._pending)
        with atomic_file(os.path.join(self.dir, f"{self._prefix}{self._chunks:06d}.npz")) as f:
            np.savez(f, sha256=np.array(shas), vectors=np.stack(vectors),
                     model=np.array(json.dumps(fingerprint.to_dict())))
        self._chunks += 1
        self._pending = []

    def clear(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        self._chunks = 0
        self._pending = []
