"""Decoding and preprocessing: the bytes of files read in, the model's input arrays out.

:class:`Decoder` is a callable stage built from picklable settings, once per
worker (a process of the local pool, a reading thread, an actor of a
distributed engine), and called with batches. Its output is a small picklable
:class:`Decoded` per file.
"""

from dataclasses import dataclass

import numpy as np

from search.encoding.images import PLAIN_JPEG_MODES, ImageInfo, load_image, missing_decoder, read_header
from search.errors import ImageError

from .batch import Batch, Skipped


@dataclass
class Decoded:
    photo: object  # the PhotoFile it came from
    sha256: str
    pixels: np.ndarray | None  # the model's preprocessed input, [3, H, W] float32; None: see jpeg
    info: ImageInfo
    jpeg: bytes | None = None  # the file itself, left for the encoder's device to decode
    orientation: int = 1  # EXIF orientation, for the device to apply


@dataclass(frozen=True)
class Decoder:
    """Decode and preprocess batches of :class:`indexer.stages.read.FileData` into a Batch of Decoded.

    ``preprocess``: the model's transform (PIL image to ``[3, S, S]`` tensor);
    ``max_pixels``: larger images are skipped as decompression bombs;
    ``min_size``: the model's input size, which large JPEGs are decoded at a
    reduced scale down to; ``leave_jpegs``: JPEGs every decoder reads alike
    are only checked and left undecoded, for the encoder's device
    (``indexer.stages.embed``).
    """

    preprocess: object
    max_pixels: int
    min_size: int
    leave_jpegs: bool = False

    def __call__(self, files):
        out = Batch([])
        for f in files:
            decoded = self.decode(f.photo, f.sha256, f.data)
            (out.skipped if isinstance(decoded, Skipped) else out.items).append(decoded)
        return out

    def decode(self, photo, sha256, data):
        """Decoded or Skipped (with the reason) for the bytes ``data`` of ``photo``."""
        missing = missing_decoder(photo.rel)
        if missing:  # listed with the way out, not reported as a corrupt file
            return Skipped(photo.rel, f"unsupported: {missing}", sha256)
        try:
            if self.leave_jpegs:
                header = read_header(data, max_pixels=self.max_pixels)
                if header.format == "JPEG" and header.mode in PLAIN_JPEG_MODES:
                    return Decoded(photo, sha256, None, header.info, jpeg=data, orientation=header.orientation)
            image, info = load_image(data, max_pixels=self.max_pixels, min_size=self.min_size)
            return Decoded(photo, sha256, self.preprocess(image).numpy(), info)
        except ImageError as e:
            return Skipped(photo.rel, f"{e.reason}: {e}", sha256)
        except (OSError, ValueError, RuntimeError, MemoryError) as e:
            return Skipped(photo.rel, f"corrupt: {e}", sha256)
