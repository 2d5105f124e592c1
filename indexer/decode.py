"""Reading, hashing, decoding and preprocessing one file: the work of a worker.

Runs in worker processes; everything it needs arrives once through
:func:`init_worker`, and each result is a small picklable object.
"""

import hashlib
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from search.errors import ImageError
from search.encoding.images import PLAIN_JPEG_MODES, ImageInfo, load_image, read_header

_state = {}


@dataclass
class Decoded:
    photo: object  # the PhotoFile it came from
    sha256: str
    pixels: np.ndarray | None  # the model's preprocessed input, [3, H, W] float32; None: see jpeg
    info: ImageInfo
    jpeg: bytes | None = None  # the file itself, left for the encoder's device to decode
    orientation: int = 1  # EXIF orientation, for the device to apply


@dataclass
class Skipped:
    rel: str
    reason: str


def init_worker(preprocess, max_pixels, min_size, claims=None, threads=1, in_pool=True, device_jpeg=False):
    import torch

    # One thread: parallelism comes from the processes, and a forked child must
    # not enter an OpenMP region that its parent started (it would hang).
    if threads is not None:  # None: the builder itself, whose threads are the encoder's
        torch.set_num_threads(threads)
    # device_jpeg: JPEGs are only read here, and decoded on the encoder's device (search.encoding.device_images)
    _state.update(preprocess=preprocess, max_pixels=max_pixels, min_size=min_size, claims=claims,
                  device_jpeg=device_jpeg)
    if in_pool:
        _lowest_priority()
        threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _lowest_priority():
    """Decode only on cycles the encoder leaves idle.

    A worker that preempts one of the encoder's threads stalls all of them at
    the next barrier: measured on 2 cores, that cost as much as decoding in
    series. At idle priority it never preempts them; when it falls behind, the
    builder decodes the chunk it would wait for itself (see ``claim``).
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or a sandbox that forbids it: the lowest nice level
        os.nice(19)


def claim(claims, number):
    """Whether the caller is the first to take chunk ``number`` (a worker, or the builder instead of waiting)."""
    with claims.get_lock():
        if claims[number]:
            return False
        claims[number] = 1
        return True


def exit_with_parent(parent):
    """A process killed with SIGKILL cannot stop its workers (or builder processes); they stop themselves."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def decode_many(files):
    return [decode_file(f) for f in files]


def decode_chunk(number, files):
    """A worker's task: ``None`` when the builder has taken chunk ``number`` already."""
    if not claim(_state["claims"], number):
        return None
    return decode_many(files)


def decode_file(photo):
    """``photo`` is a :class:`indexer.walk.PhotoFile`; returns Decoded or Skipped."""
    try:
        with open(photo.path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return Skipped(photo.rel, "vanished: the file was removed during the build")
    except OSError as e:
        return Skipped(photo.rel, f"unreadable: {e.strerror or e}")
    if not data:
        return Skipped(photo.rel, "empty: the file has zero bytes")
    return decode_data(photo, hashlib.sha256(data).hexdigest(), data, _state["device_jpeg"])


def decode_data(photo, sha, data, on_device=False):
    """Decoded or Skipped for the bytes of ``photo``; ``on_device``: JPEGs stay undecoded, for the encoder's device."""
    try:
        if on_device:
            header = read_header(data, max_pixels=_state["max_pixels"])
            if header.format == "JPEG" and header.mode in PLAIN_JPEG_MODES:
                return Decoded(photo, sha, None, header.info, jpeg=data, orientation=header.orientation)
        image, info = load_image(data, max_pixels=_state["max_pixels"], min_size=_state["min_size"])
        return Decoded(photo, sha, _state["preprocess"](image).numpy(), info)
    except ImageError as e:
        return Skipped(photo.rel, f"{e.reason}: {e}")
    except (OSError, ValueError, RuntimeError, MemoryError) as e:
        return Skipped(photo.rel, f"corrupt: {e}")
