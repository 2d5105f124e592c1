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
from search.images import ImageInfo, load_image

_state = {}


@dataclass
class Decoded:
    photo: object  # the PhotoFile it came from
    sha256: str
    pixels: np.ndarray  # the model's preprocessed input, [3, H, W] float32
    info: ImageInfo


@dataclass
class Skipped:
    rel: str
    reason: str


def init_worker(preprocess, max_pixels, min_size, threads=1, in_pool=True):
    import torch

    # One thread: parallelism comes from the processes, and a forked child must
    # not enter an OpenMP region that its parent started (it would hang).
    torch.set_num_threads(threads)
    _state.update(preprocess=preprocess, max_pixels=max_pixels, min_size=min_size)
    if in_pool:
        threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent):
    """A builder killed with SIGKILL cannot stop its workers; they stop themselves."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def decode_many(files):
    return [decode_file(f) for f in files]


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
    sha = hashlib.sha256(data).hexdigest()
    try:
        image, info = load_image(data, max_pixels=_state["max_pixels"], min_size=_state["min_size"])
        pixels = _state["preprocess"](image).numpy()
    except ImageError as e:
        return Skipped(photo.rel, f"{e.reason}: {e}")
    except (OSError, ValueError, RuntimeError, MemoryError) as e:
        return Skipped(photo.rel, f"corrupt: {e}")
    return Decoded(photo, sha, pixels, info)
