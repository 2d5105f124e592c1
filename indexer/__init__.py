"""The build pipeline and its CLI: ``python -m indexer build PHOTOS``."""

from .config import BuildConfig
from .pipeline import BuildError, BuildSummary, build

__all__ = ["BuildConfig", "BuildError", "BuildSummary", "build"]
