"""Service settings, declared once: this table drives the CLI, the environment and validation.

Every setting can come from a ``--flag`` (``python -m web serve``) or from an
environment variable ``PHOTOSEARCH_<NAME>`` (gunicorn on ``web:create_app()``).
"""

import argparse
import os
from dataclasses import dataclass, field, fields

from search.encoding.images import DEFAULT_MAX_PIXELS
from search.encoding.device import DEVICES, check_device
from search.errors import InvalidArgumentError

ENV_PREFIX = "PHOTOSEARCH_"
MiB = 1 << 20


# Allowed ranges; a float bound makes the setting a float.
_LIMITS = {"port": (0, 65535), "max_upload_bytes": (1024, 1 << 34), "max_pixels": (1, 1 << 40),
           "thumbnail_size": (16, 2048), "image_url_max_bytes": (1024, 1 << 34),
           "image_url_timeout": (0.1, 120.0), "reload_interval": (0.0, 86400.0), "text_cache_size": (0, 1_000_000)}


def _setting(default, help, **argparse):
    return field(default=default, metadata={"help": help, "argparse": argparse})


@dataclass
class ServeConfig:
    index: str = _setting(None, "index bundle folder to serve (from python -m indexer build)")
    host: str = _setting("127.0.0.1", "address to listen on; 0.0.0.0 exposes the service to the network")
    port: int = _setting(8000, "port to listen on", type=int)
    token: str | None = _setting(
        None, "bearer token required by every API route (prefer the PHOTOSEARCH_TOKEN variable: flags show in ps)")
    model: str | None = _setting(None, "open_clip model name (default: the one recorded in the bundle)")
    pretrained: str | None = _setting(None, "pretrained tag or checkpoint file (default: the bundle's)")
    device: str = _setting("auto", "where the query encoder runs", choices=DEVICES)
    max_upload_bytes: int = _setting(20 * MiB, "largest request body accepted (413 above it)", type=int)
    max_pixels: int = _setting(DEFAULT_MAX_PIXELS, "largest query image in pixels (decompression bombs)", type=int)
    thumbnail_size: int = _setting(256, "longest side of thumbnails in pixels", type=int)
    index_name: str | None = _setting(
        None, "name of the index for the clip-retrieval routes (default: the bundle folder's name)")
    allow_image_url: bool = _setting(
        False, "let clip-retrieval queries name an image_url that the server fetches (request-forgery risk)",
        action="store_true")
    image_url_max_bytes: int = _setting(10 * MiB, "largest image fetched for an image_url query", type=int)
    image_url_timeout: float = _setting(10.0, "seconds allowed for fetching an image_url", type=float)
    cors_origin: str | None = _setting(
        None, "origin allowed to call the clip-retrieval routes from a browser (e.g. their hosted front end)")
    reload_interval: float = _setting(
        2.0, "seconds between checks for a newer index generation written by the indexer (0: every request)",
        type=float)
    warmup: bool = _setting(True, "run one query of each kind at start-up", action="store_false", dest="warmup",
                            flag="--no-warmup")
    text_cache_size: int = _setting(1024, "recent query texts whose vectors are kept (0: none)", type=int)

    def __post_init__(self):
        if not self.index:
            raise InvalidArgumentError("an index bundle folder is required (--index or PHOTOSEARCH_INDEX)")
        self.index = os.path.abspath(self.index)
        check_device(self.device)
        for name, (low, high) in _LIMITS.items():
            value = getattr(self, name)
            kinds = (int, float) if isinstance(low, float) else int
            if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
                raise InvalidArgumentError(f"{flag_of(name)} must be from {low} to {high}, got {value!r}")
        if self.token is not None and (len(self.token) < 8 or not all("!" <= c <= "~" for c in self.token)):
            # Header bytes reach WSGI as latin-1; ASCII keeps the comparison exact.
            raise InvalidArgumentError("the token must be at least 8 printable ASCII characters, without spaces")
        if self.index_name is None:
            self.index_name = os.path.basename(self.index.rstrip(os.sep)).lstrip(".") or "photos"

    @classmethod
    def from_env(cls, environ=None, **overrides):
        """Settings from ``PHOTOSEARCH_*`` variables; ``overrides`` win."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _convert(f, raw)
        values.update(overrides)
        return cls(**values)


def flag_of(name):
    """The command-line flag of setting ``name``, for messages and argparse."""
    f = ServeConfig.__dataclass_fields__[name]
    return f.metadata["argparse"].get("flag") or "--" + name.replace("_", "-")


def add_arguments(parser):
    """One argparse option per setting. Flags left out are absent, so the environment can fill them."""
    for f in fields(ServeConfig):
        options = dict(f.metadata["argparse"])
        options.pop("flag", None)
        options.setdefault("dest", f.name)
        env = ENV_PREFIX + f.name.upper()
        shown = "" if f.default is None or isinstance(f.default, bool) else f"; default {f.default}"
        parser.add_argument(flag_of(f.name), default=argparse.SUPPRESS,
                            help=f"{f.metadata['help']} (env {env}{shown})", **options)


def config_from_args(args, environ=None):
    """Flags given on the command line, over ``PHOTOSEARCH_*`` variables, over the defaults."""
    given = {f.name: getattr(args, f.name) for f in fields(ServeConfig) if hasattr(args, f.name)}
    return ServeConfig.from_env(environ, **given)


def _convert(f, raw):
    kind = f.metadata["argparse"].get("type")
    if isinstance(f.default, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise InvalidArgumentError(f"{ENV_PREFIX}{f.name.upper()} must be true or false, got {raw!r}")
    if kind is None:
        return raw
    try:
        return kind(raw)
    except ValueError:
        raise InvalidArgumentError(f"{ENV_PREFIX}{f.name.upper()} must be a {kind.__name__}, got {raw!r}") from None
