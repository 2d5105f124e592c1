"""Service settings: one table (``search.settings``) drives the CLI, the environment, validation and the README.

Every setting can come from a ``--flag`` (``python -m web serve``) or from an
environment variable ``PHOTOSEARCH_<NAME>`` (gunicorn on ``web:create_app()``);
a flag wins.
"""

import os
import urllib.parse

from search.encoding.images import DEFAULT_MAX_QUERY_PIXELS
from search.errors import InvalidArgumentError
from search.quality.duplicates import DEFAULT_THRESHOLD
from search.settings import DEVICE, FOLLOW_LINKS, MAX_PIXELS, MODEL, PRECISION, PRETRAINED, Setting, SettingsTable
from search.store.locate import find_bundle

MiB = 1 << 20


def check_token(token):
    # Header bytes reach WSGI as latin-1; ASCII keeps the comparison exact.
    if len(token) < 8 or not all("!" <= c <= "~" for c in token):
        raise InvalidArgumentError("the token must be at least 8 printable ASCII characters, without spaces")


def check_public_url(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise InvalidArgumentError("the public URL must be an http:// or https:// URL without a query, "
                                   "such as https://photos.example.org")


SETTINGS = SettingsTable(
    Setting("index", None, "index bundle folder to serve (from `python -m indexer build`), or the photo folder "
            "that holds it as `.photoindex`", required=True,
            metavar="DIR", path=True),
    Setting("photos", None, "the photo folder whose files may be served: the index's photo folder must be inside "
            "it (a bundle cannot name files elsewhere)", metavar="DIR", path=True,
            shown_default="the index folder's parent"),
    FOLLOW_LINKS,
    Setting("host", "127.0.0.1", "address to listen on; `0.0.0.0` exposes the service to the network",
            metavar="ADDRESS"),
    Setting("port", 8000, "port to listen on", kind=int, low=0, high=65535, metavar="N"),
    Setting("token", None, "bearer token required by every API route (prefer the variable: flags show in `ps`)",
            metavar="TOKEN", check=check_token),
    MODEL,
    PRETRAINED,
    DEVICE,
    PRECISION,
    Setting("max_upload_bytes", 20 * MiB, "largest request body accepted (413 above it)", kind=int, low=1024,
            high=1 << 34, metavar="N", shown_default=f"`{20 * MiB}` (20 MiB)"),
    MAX_PIXELS,
    Setting("max_query_pixels", DEFAULT_MAX_QUERY_PIXELS, "larger query images (uploads, base64, `image_url`) "
            "get a 413 from their header alone; a query needs only the model's input size", kind=int, low=1,
            high=1 << 40, metavar="N"),
    Setting("thumbnail_size", 256, "longest side of thumbnails in pixels", kind=int, low=16, high=2048,
            metavar="N"),
    Setting("index_name", None, "name of the index for the clip-retrieval routes", metavar="NAME",
            shown_default="the bundle folder's name"),
    Setting("allow_image_url", False, "let clip-retrieval queries name an `image_url` that the server fetches "
            "(request-forgery risk)", kind=bool),
    Setting("image_url_max_bytes", 10 * MiB, "largest image fetched for an `image_url` query", kind=int, low=1024,
            high=1 << 34, metavar="N", shown_default=f"`{10 * MiB}` (10 MiB)"),
    Setting("image_url_timeout", 10.0, "seconds allowed for fetching an `image_url`", kind=float, low=0.1,
            high=120.0, metavar="SECONDS"),
    Setting("image_url_allow_private", False, "let `image_url` reach loopback, private, link-local and reserved "
            "addresses (refused by default, after DNS and after each redirect)", kind=bool),
    Setting("public_url", None, "the service's address as its users reach it, for the absolute image URLs of the "
            "clip-retrieval routes", metavar="URL", shown_default="from each request's `Host` header",
            check=check_public_url),
    Setting("cors_origin", None, "origin allowed to call the clip-retrieval routes from a browser (e.g. their "
            "hosted front end)", metavar="ORIGIN"),
    Setting("reload_interval", 2.0, "seconds between checks for a newer index generation written by the indexer "
            "(0: every request)", kind=float, low=0.0, high=86400.0, metavar="SECONDS"),
    Setting("warmup", True, "one query of each kind at start-up, so that the first user's query is not the slow one",
            kind=bool),
    Setting("text_cache_size", 1024, "recent query texts whose vectors are kept (0: none)", kind=int, low=0,
            high=1_000_000, metavar="N"),
    Setting("duplicate_threshold", DEFAULT_THRESHOLD, "cosine at or above which two photos are near copies: "
            "one tile with `collapse`, one group in `/api/duplicates`", kind=float, low=0.5, high=1.0,
            metavar="COSINE"),
    env=True,
)


@SETTINGS.config_class
class ServeConfig:
    """The settings of one server; every field is a row of :data:`SETTINGS`."""

    def __post_init__(self):
        self.index = find_bundle(self.index)  # a photo folder stands for its .photoindex
        if self.photos is not None:
            self.photos = os.path.abspath(self.photos)
        if self.index_name is None:
            self.index_name = os.path.basename(self.index.rstrip(os.sep)).lstrip(".") or "photos"

    @classmethod
    def from_env(cls, environ=None, **overrides):
        """Settings from ``PHOTOSEARCH_*`` variables; ``overrides`` win."""
        return SETTINGS.from_sources(cls, environ=environ, **overrides)


def add_arguments(parser):
    """One argparse option per setting; flags left out are absent, so the environment can fill them."""
    SETTINGS.add_arguments(parser)


def config_from_args(args, environ=None):
    """Flags given on the command line, over ``PHOTOSEARCH_*`` variables, over the defaults."""
    return SETTINGS.from_sources(ServeConfig, args, environ)
