"""Which model a build embeds with: the flags, else the bundle's own, else the default.

A :class:`ModelChoice` is plain picklable data, so a process that embeds
(one per GPU, or an actor of a distributed engine) loads the same model from
it; :func:`load_model` is the stage that loads it.
"""

import json
from dataclasses import dataclass

from search.encoding.fingerprint import DEFAULT_MODEL, DEFAULT_PRETRAINED
from search.errors import ModelMismatchError

from ..errors import BuildError


@dataclass(frozen=True)
class ModelChoice:
    name: str
    pretrained: str | None
    config: dict | None  # a custom architecture to register with open_clip first
    device: str  # "auto", "cpu" or "cuda"
    precision: str = "auto"  # search.encoding.precision.PRECISIONS


def check_requested_model(config, fingerprint):
    """Refuse a ``--model`` or ``--precision`` other than the one that built the bundle (``fingerprint``),
    before any work: the vectors of one bundle come from one model in one precision."""
    wanted = config.model
    if fingerprint is not None and wanted and wanted != fingerprint.name:
        raise ModelMismatchError(
            f"the index at {config.index} was built with {fingerprint.describe()}, not {wanted}; "
            "to change models, build into a new folder with --index"
        )
    if fingerprint is not None and config.precision not in ("auto", fingerprint.precision):
        raise ModelMismatchError(
            f"the index at {config.index} holds {fingerprint.precision} vectors, not {config.precision}; "
            f"leave --precision out (or give {fingerprint.precision}) to update it, or build into a new folder "
            "with --index to change precision"
        )


def choose_model(config, fingerprint):
    """The model ``config`` (a BuildConfig) asks for, filled in from the bundle's ``fingerprint`` (or None)."""
    name = config.model or (fingerprint.name if fingerprint else DEFAULT_MODEL)
    pretrained = config.pretrained or (fingerprint.pretrained if fingerprint else DEFAULT_PRETRAINED)
    if config.model_config:
        architecture = _read_json(config.model_config)
    else:
        architecture = fingerprint.config if fingerprint else None
    # ``auto`` keeps an existing bundle's precision
    precision = fingerprint.precision if fingerprint and config.precision == "auto" else config.precision
    return ModelChoice(name, pretrained, architecture, config.device, precision)


def load_model(choice):
    """The Encoder of ``choice``: the build's load stage."""
    from search.encoding.encoder import load_encoder  # torch and open_clip: only when there is work

    return load_encoder(choice.name, choice.pretrained, device=choice.device, config=choice.config,
                        precision=choice.precision)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise BuildError(f"cannot read model config {path}: {e}") from e
