"""The bundle manifest: one small JSON file that names the live generation.

Replacing this file (write to a temp name, fsync, ``os.replace``) is the single
atomic step of every commit, so readers see either the old bundle or the new.
A manifest is read through a strict schema (pydantic): a file that is valid
JSON but not a manifest is one :class:`BundleError` naming the bad fields,
never a ``TypeError`` or ``KeyError`` further on.
"""

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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
    if not isinstance(data, dict):
        raise BundleError(f"{path} is not a manifest: a JSON object was expected, got {type(data).__name__}")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{path} has format version {version!r}, this program reads version {FORMAT_VERSION}; rebuild the index"
        )
    try:
        checked = _ManifestSchema.model_validate(data)
    except ValidationError as e:
        raise BundleError(f"{path} is not a valid manifest ({_problems(e)}); rebuild the index") from None
    return Manifest(**checked.model_dump(exclude={"model"}), model=dict(data["model"]))


class _Schema(BaseModel):
    # Strict: "generation": "1" is refused, not read as 1. Unknown keys are
    # ignored, so a newer writer's additions do not lock out this reader.
    model_config = ConfigDict(strict=True, extra="ignore")


class _ModelSchema(_Schema):
    """``ModelFingerprint.to_dict()``: what ``ModelFingerprint.from_dict`` needs."""

    name: str = Field(min_length=1)
    dim: int = Field(gt=0)
    pretrained: str | None = None
    checkpoint_sha256: str | None = None
    config: dict | None = None


class _ManifestSchema(_Schema):
    """The fields of :class:`Manifest`, with the same defaults."""

    model: _ModelSchema
    dim: int = Field(gt=0)
    root: str = Field(min_length=1)
    generation: int = Field(0, ge=0)
    count: int = Field(0, ge=0)
    next_id: int = Field(0, ge=0)
    index_type: str = "Flat"
    index_params: dict[str, Any] = Field(default_factory=dict)
    metric: str = METRIC
    format_version: int
    created_at: str = ""
    updated_at: str = ""

    @model_validator(mode="after")
    def _one_dimension(self):
        if self.model.dim != self.dim:
            raise ValueError(f"the model's dim {self.model.dim} differs from the bundle's dim {self.dim}")
        return self


def _problems(error):
    """``generation: Input should be a valid integer; model.name: Field required``, at most five."""
    lines = [f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}" for e in error.errors()]
    return "; ".join(lines[:5]) + (f"; and {len(lines) - 5} more" if len(lines) > 5 else "")


def write_manifest(bundle_dir, manifest):
    write_atomic(os.path.join(bundle_dir, MANIFEST), json.dumps(asdict(manifest), indent=2).encode())
