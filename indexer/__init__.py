"""The build pipeline and its CLI: ``python -m indexer build PHOTOS``."""

from .config import BuildConfig
from .errors import BuildError
from .pipeline import BuildSummary, build

__all__ = ["BuildConfig", "BuildError", "BuildSummary", "build"]
