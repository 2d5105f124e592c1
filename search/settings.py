"""Settings declared once, as a table of rows (datasette's way).

A :class:`Setting` is one row: name, default, help, type, limits and flag.
A :class:`SettingsTable` turns its rows into

- a dataclass whose fields are the settings, validated at construction
  (:meth:`SettingsTable.config_class`),
- one argparse option per setting (:meth:`SettingsTable.add_arguments`),
- ``PHOTOSEARCH_<NAME>`` environment variables, where the table reads them,
- the Markdown option table of the README (:meth:`SettingsTable.markdown`;
  a test compares it with the README).

Values flow one way: flags over environment variables over defaults -> the
config object -> explicit keyword arguments to the library. The settings that
the indexer and the service share (the model, its weights, the device, the
pixel limit) are declared here once and listed in both tables.
"""

import argparse
import inspect
import os
from dataclasses import dataclass, field

from .encoding.device import DEVICES, check_device
from .encoding.fingerprint import DEFAULT_MODEL, DEFAULT_PRETRAINED
from .encoding.images import DEFAULT_MAX_PIXELS
from .encoding.precision import PRECISIONS, check_precision
from .errors import InvalidArgumentError

ENV_PREFIX = "PHOTOSEARCH_"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


@dataclass(frozen=True)
class Setting:
    """One setting. ``low``/``high`` bound numbers (inclusive); ``check(value)`` may add a rule of its own
    and raise :class:`InvalidArgumentError`; ``shown_default`` is the default as the docs say it."""

    name: str
    default: object
    help: str
    kind: type = str
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    metavar: str | None = None
    shown_default: str | None = None
    check: object = None
    required: bool = False
    positional: bool = False
    path: bool = False  # a file or folder: os.PathLike values are accepted and stored as str
    const: object = None  # the value of the flag given alone (its value is then optional)

    @property
    def flag(self):
        if self.positional:
            return self.metavar or self.name.upper()
        if self.kind is bool and self.default is True:
            return "--no-" + self.name.replace("_", "-")
        return "--" + self.name.replace("_", "-")

    @property
    def env(self):
        return ENV_PREFIX + self.name.upper()

    @property
    def option(self):
        """The flag as the docs show it: ``--index DIR``, ``--device auto|cpu|cuda``."""
        if self.positional or self.kind is bool:
            return self.flag
        metavar = self.metavar or ("|".join(self.choices) if self.choices else "VALUE")
        return f"{self.flag} [{metavar}]" if self.const is not None else f"{self.flag} {metavar}"

    @property
    def default_text(self):
        if self.shown_default is not None:
            return self.shown_default
        if self.kind is bool:
            return "on" if self.default else "off"
        return "" if self.default is None else f"`{self.default}`"

    def validate(self, value, label):
        """``value`` checked (and a path made a str); ``label`` names the setting in messages."""
        if value is None:
            if self.required:
                raise InvalidArgumentError(f"{label} is required: {_plain(self.help)}")
            if self.default is not None:
                raise InvalidArgumentError(f"{label} must be {self._expected()}, got None")
            return None
        if self.path and isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not _is_kind(value, self.kind):
            raise InvalidArgumentError(f"{label} must be {self._expected()}, got {value!r}")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise InvalidArgumentError(f"{label} must be {self._expected()}, got {value!r}")
        if self.check is not None:
            self.check(value)
        elif self.choices is not None and value not in self.choices:
            raise InvalidArgumentError(f"unknown {self.name} {value!r}; choose one of {', '.join(self.choices)}")
        return value

    def parse(self, raw, source):
        """The value of the string ``raw`` (an environment variable named ``source``)."""
        if self.kind is bool:
            if raw.strip().lower() in _TRUE + _FALSE:
                return raw.strip().lower() in _TRUE
        elif self.kind is str:
            return raw
        else:
            try:
                return self.kind(raw.strip())
            except ValueError:
                pass
        raise InvalidArgumentError(f"{source} must be {_KIND_NAMES[self.kind]}, got {raw!r}")

    def _expected(self):
        kind = _KIND_NAMES[self.kind]
        if self.low is not None and self.high is not None:
            return f"{kind} from {self.low} to {self.high}"
        if self.low is not None:
            return f"{kind} >= {self.low}"
        return kind


class SettingsTable:
    """The settings of one command; ``env=True`` also reads ``PHOTOSEARCH_<NAME>`` variables."""

    def __init__(self, *settings, env=False):
        self.settings = settings
        self.env = env
        self.by_name = {s.name: s for s in settings}
        if len(self.by_name) != len(settings):
            raise ValueError("a setting is declared twice")

    def __iter__(self):
        return iter(self.settings)

    def label(self, setting):
        if self.env and not setting.positional:
            return f"{setting.flag} (or {setting.env})"
        return setting.flag

    def config_class(self, cls):
        """Class decorator: ``cls`` becomes a dataclass with one field per setting, validated at
        construction before ``cls``'s own ``__post_init__`` (derived values, rules across settings)."""
        annotations = {}
        for s in self:
            annotations[s.name] = s.kind if s.default is not None else s.kind | None
            setattr(cls, s.name, field(default=s.default, metadata={"setting": s}))
        cls.__annotations__ = {**annotations, **inspect.get_annotations(cls)}
        own_post_init = cls.__dict__.get("__post_init__")
        table = self

        def __post_init__(config):
            for s in table:
                object.__setattr__(config, s.name, s.validate(getattr(config, s.name), table.label(s)))
            if own_post_init is not None:
                own_post_init(config)

        cls.__post_init__ = __post_init__
        cls.settings = self
        return dataclass(cls)

    def add_arguments(self, parser):
        """One argparse option per setting. Options not given are absent from the namespace, so the
        environment and then the defaults fill them (:meth:`from_sources`)."""
        for s in self:
            shown = _plain(s.default_text)
            extra = "; ".join(part for part in (f"default: {shown}" if shown else "",
                                                 f"env {s.env}" if self.env else "") if part)
            help = _plain(s.help) + (f" ({extra})" if extra else "")
            help = help.replace("%", "%%")  # argparse formats help strings with %
            if s.positional:
                parser.add_argument(s.name, metavar=s.flag, help=help)
            elif s.kind is bool:
                parser.add_argument(s.flag, dest=s.name, action="store_false" if s.default else "store_true",
                                    default=argparse.SUPPRESS, help=help)
            else:
                optional = {"nargs": "?", "const": s.const} if s.const is not None else {}
                parser.add_argument(s.flag, dest=s.name, type=s.kind, choices=s.choices, default=argparse.SUPPRESS,
                                    metavar=s.metavar, help=help, **optional)

    def from_environ(self, environ=None):
        """The settings given by ``PHOTOSEARCH_*`` variables (none unless the table reads them)."""
        if not self.env:
            return {}
        environ = os.environ if environ is None else environ
        values = {}
        for s in self:
            raw = environ.get(s.env)
            if raw is not None and raw != "":
                values[s.name] = s.parse(raw, s.env)
        return values

    def from_sources(self, config_class, args=None, environ=None, **overrides):
        """A ``config_class`` from flags (an argparse namespace) over the environment over the defaults;
        ``overrides`` win over all."""
        values = self.from_environ(environ)
        if args is not None:
            values.update({s.name: getattr(args, s.name) for s in self if hasattr(args, s.name)})
        values.update(overrides)
        return config_class(**values)

    def markdown(self):
        """The README's option table of these settings, one row each."""
        head = ["option", "variable", "default", "meaning"] if self.env else ["option", "default", "meaning"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for s in self:
            cells = [f"`{s.option}`"] + ([f"`{s.env}`" if not s.positional else ""] if self.env else [])
            cells += [s.default_text, s.help]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        return "\n".join(lines) + "\n"


def _is_kind(value, kind):
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _plain(text):
    return text.replace("`", "")


# --- the settings the indexer and the service share -------------------------------------------------

MODEL = Setting(
    "model", None, "open_clip model name, `hf-hub:org/repo` or `local-dir:/path`", metavar="NAME",
    shown_default=f"the bundle's, else `{DEFAULT_MODEL}`")
PRETRAINED = Setting(
    "pretrained", None, "pretrained tag or local checkpoint file", metavar="TAG|PATH",
    shown_default=f"the bundle's, else `{DEFAULT_PRETRAINED}`")
DEVICE = Setting(
    "device", "auto", "where the model runs: `auto` is `cuda` (in fp16) when torch sees a GPU, else `cpu`",
    choices=DEVICES, check=check_device)
MAX_PIXELS = Setting(
    "max_pixels", DEFAULT_MAX_PIXELS, "larger images are refused as decompression bombs (the indexer skips them, "
    "the service answers 413 from the header alone)", kind=int, low=1, high=1 << 40, metavar="N")
FOLLOW_LINKS = Setting(
    "follow_links", False, "follow symlinked folders that point outside the photo folder (by default only links "
    "whose target stays inside it are followed); the indexer and the service must agree", kind=bool)
PRECISION = Setting(
    "precision", "auto", "what the encoder computes in: `auto` is `fp16` on CUDA, else `int8` (`bf16` where the CPU "
    "has bf16 instructions and it is faster), and an existing bundle's own precision; a reduced CPU precision that "
    "strays from `fp32` on probe inputs falls back to `fp32` and says so (README: \"Encoder precision\")",
    choices=PRECISIONS, check=check_precision)
