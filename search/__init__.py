"""The search library: encoder, index bundle and ranking.

Typical use::

    from search import Searcher
    searcher = Searcher.open("photos/.photoindex")
    for result in searcher.search_text("a dog on a beach", k=10).results:
        print(result.score, result.path)

Names are imported on first use: only encoding loads open_clip, and opening a
bundle loads torch only to look for a GPU to search on (``use_gpu=False`` does not).

Importing it changes nothing in the process; entry points that want the
settings suited to indexing or serving call ``search.runtime.configure_process()``.
"""

import importlib

_EXPORTS = {
    "Bundle": "store.bundle", "Result": "store.bundle", "SearchPage": "store.bundle",
    "Encoder": "encoding.encoder", "load_encoder": "encoding.encoder",
    "DEFAULT_MODEL": "encoding.fingerprint", "DEFAULT_PRETRAINED": "encoding.fingerprint", "ModelFingerprint": "encoding.fingerprint",
    "BundleError": "errors", "BundleLockedError": "errors", "ImageError": "errors",
    "ImageTooLargeError": "errors", "InvalidArgumentError": "errors", "ModelLoadError": "errors",
    "ModelMismatchError": "errors", "SearchError": "errors", "UnknownIdError": "errors",
    "WeightsUnavailableError": "errors",
    "IMAGE_EXTENSIONS": "encoding.images", "load_image": "encoding.images",
    "configure_process": "runtime", "QueryKind": "query.terms", "QueryTerm": "query.terms", "Searcher": "query.searcher",
    "Filters": "query.filters",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
