"""Which device the encoder runs on: the one check of a device name, for every adapter."""

from ..errors import InvalidArgumentError

DEVICES = ("auto", "cpu", "cuda")


def check_device(device):
    """``device`` if it is one of :data:`DEVICES`; else an error that lists them. Loads no torch."""
    if device not in DEVICES:
        raise InvalidArgumentError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    return device


def resolve_device(device="auto"):
    """The torch device to use: ``auto`` is ``cuda`` when torch sees a GPU, else ``cpu``."""
    import torch

    check_device(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu")
    return device
