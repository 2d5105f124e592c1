"""Which device the encoder (or a GPU search) runs on: the one check of a device, for every adapter."""

from ..errors import InvalidArgumentError

DEVICES = ("auto", "cpu", "cuda")


def check_device(device):
    """``device`` if it is one of :data:`DEVICES`; else an error that lists them. Loads no torch."""
    if device not in DEVICES:
        raise InvalidArgumentError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    return device


def cuda_missing(device):
    """True when ``device`` (a name such as ``"cuda:1"``, or a torch device) is a CUDA device and torch sees none."""
    import torch

    return torch.device(device).type == "cuda" and not torch.cuda.is_available()


def resolve_device(device="auto"):
    """The torch device to use: ``auto`` is ``cuda`` when torch sees a GPU, else ``cpu``."""
    import torch

    check_device(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if cuda_missing(device):
        raise InvalidArgumentError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu")
    return device
