"""The bundle manifest: one small JSON file that names the live generation.

Replacing this file (write to a temp name, fsync, ``os.replace``) is the single
atomic step of every commit, so readers see either the old bundle or the new.
"""

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from ..errors import BundleError
from .atomic import write_atomic

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
METRIC = "inner_product"  # on L2-normalised vectors, i.e. cosine


def utcnow():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Manifest:
    model: dict  # ModelFingerprint.to_dict()
    dim: int
    root: str  # absolute path of the photo folder; stored paths are relative to it
    generation: int = 0
    count: int = 0
    next_id: int = 0  # ids are never reused, so links to a removed image stay dead
    index_type: str = "Flat"
    index_params: dict = field(default_factory=dict)
    metric: str = METRIC
    format_version: int = FORMAT_VERSION
    created_at: str = field(default_factory=utcnow)
    updated_at: str = field(default_factory=utcnow)

    @property
    def generation_dir(self):
        return generation_dir_name(self.generation)


def generation_dir_name(generation):
    return f"gen-{generation:06d}"


def read_manifest(bundle_dir):
    path = os.path.join(bundle_dir, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise BundleError(
            f"no index bundle at {bundle_dir} (missing {MANIFEST}); "
            f"build one with: python -m indexer build PHOTOS --index {bundle_dir}"
        ) from None
    except (OSError, ValueError) as e:
        raise BundleError(f"cannot read {path}: {e}") from e
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{path} has format version {version!r}, this program reads version {FORMAT_VERSION}; rebuild the index"
        )
    known = Manifest.__dataclass_fields__
    return Manifest(**{k: v for k, v in data.items() if k in known})


def write_manifest(bundle_dir, manifest):
    write_atomic(os.path.join(bundle_dir, MANIFEST), json.dumps(asdict(manifest), indent=2).encode())
