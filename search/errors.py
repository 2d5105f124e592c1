"""Typed errors of the search library.

Each error carries a stable ``code`` and the HTTP ``status`` an adapter should
answer with, so the CLI and the web service render them without guessing.
"""


class SearchError(Exception):
    """Base class: a problem the user can act on, with a one-line message."""

    code = "search_error"
    status = 500


class InvalidArgumentError(SearchError, ValueError):
    code = "invalid_argument"
    status = 400


class ModelLoadError(SearchError):
    """The model could not be created (unknown name or tag, broken checkpoint)."""

    code = "model_load_failed"
    status = 500


class WeightsUnavailableError(ModelLoadError):
    """Pretrained weights are neither cached nor downloadable (offline)."""

    code = "weights_unavailable"


class ModelMismatchError(SearchError):
    """A bundle was opened or extended with a different model than built it."""

    code = "model_mismatch"
    status = 409


class BundleError(SearchError):
    """A bundle folder is missing, incomplete or of an unknown format.

    In a request, the index cannot answer it for now: a 503, not a 500.
    """

    code = "bundle_error"
    status = 503


class BundleLockedError(BundleError):
    code = "bundle_locked"
    status = 409


class UnknownIdError(SearchError, KeyError):
    code = "unknown_id"
    status = 404

    def __str__(self):  # KeyError would repr() the message
        return self.args[0] if self.args else "unknown id"


class ImageError(SearchError):
    """An image could not be decoded; ``reason`` is a short machine-readable cause."""

    code = "invalid_image"
    status = 400

    def __init__(self, message, reason="corrupt"):
        super().__init__(message)
        self.reason = reason


class ImageTooLargeError(ImageError):
    code = "image_too_large"
    status = 413

    def __init__(self, message):
        super().__init__(message, reason="too_many_pixels")
