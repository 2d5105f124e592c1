"""The build and its CLI: ``python -m indexer build PHOTOS``."""

from .build import BuildSummary, build
from .config import BuildConfig
from .errors import BuildError
from .stages import Stages

__all__ = ["BuildConfig", "BuildError", "BuildSummary", "Stages", "build"]
