"""Embeddings of a build in progress, saved in chunks so a re-run can resume.

Each chunk is written to a temp name and moved into place, so a kill leaves
either a whole chunk or none. The folder is emptied after a successful commit.
"""

import json
import os
import shutil

import numpy as np

from search.images import ImageInfo
from search.manifest import write_atomic
from search.model_spec import ModelFingerprint

FOLDER = "checkpoint"


class Checkpoint:
    def __init__(self, bundle_dir):
        self.dir = os.path.join(bundle_dir, FOLDER)
        self._pending = []  # (sha256, vector, ImageInfo)
        self._chunks = len(self._chunk_files())

    def _chunk_files(self):
        if not os.path.isdir(self.dir):
            return []
        return sorted(f for f in os.listdir(self.dir) if f.startswith("chunk-") and f.endswith(".npz"))

    def load(self, fingerprint):
        """Saved ``{sha256: (vector, ImageInfo)}``, if they were made by the same model."""
        try:
            with open(os.path.join(self.dir, "model.json")) as f:
                saved = json.load(f)
        except (OSError, ValueError):
            return {}
        if not ModelFingerprint.from_dict(saved).same_space(fingerprint):
            self.clear()
            return {}
        found = {}
        for name in self._chunk_files():
            try:
                with np.load(os.path.join(self.dir, name)) as chunk:
                    infos = json.loads(str(chunk["infos"]))
                    for sha, vector, info in zip(chunk["sha256"], chunk["vectors"], infos):
                        found[str(sha)] = (vector, ImageInfo(**info))
            except (OSError, ValueError, KeyError):
                continue  # a damaged chunk only costs its re-embedding
        return found

    def add(self, sha256, vector, info):
        self._pending.append((sha256, vector, info))

    def flush(self, fingerprint):
        if not self._pending:
            return
        os.makedirs(self.dir, exist_ok=True)
        model_file = os.path.join(self.dir, "model.json")
        if not os.path.exists(model_file):
            write_atomic(model_file, json.dumps(fingerprint.to_dict()).encode())
        shas, vectors, infos = zip(*self._pending)
        path = os.path.join(self.dir, f"chunk-{self._chunks:06d}.npz")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            np.savez(f, sha256=np.array(shas), vectors=np.stack(vectors),
                     infos=np.array(json.dumps([vars(i) for i in infos])))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self._chunks += 1
        self._pending = []

    def clear(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        self._chunks = 0
        self._pending = []
