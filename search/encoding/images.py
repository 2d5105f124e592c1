"""Decoding photos into RGB PIL images, safely and cheaply.

Used by the indexer's workers and by the service for query images, so both
see an image exactly the same way (orientation, colour mode, size limits).
"""

import functools
import importlib.util
import io
import os
import struct
import threading
import warnings
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError, ImageTooLargeError

# HEIC/HEIF/AVIF are read by pillow-heif (a dependency); its opener joins Pillow's at the first decode.
# Without it such files are still found, and skipped with the install hint (missing_decoder).
HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".avif"})

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"} | HEIF_EXTENSIONS
)
# Pillow modes of JPEGs that every decoder turns into the same RGB (CMYK needs Adobe's inversion).
PLAIN_JPEG_MODES = ("RGB", "L")
DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: above any phone or DSLR, below a pixel bomb
DEFAULT_MAX_QUERY_PIXELS = 25_000_000  # a query image: a 24 MP camera's, while the model reads 224 x 224

# Query images are decoded at most this many at a time: each decode holds a core and its pixels.
_QUERY_DECODES = threading.BoundedSemaphore(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                            else os.cpu_count() or 1)
_REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBA", "I", "F")  # what Image.reduce takes as stored

_EXIF_DATETIME = (ExifTags.Base.DateTimeOriginal, ExifTags.Base.DateTimeDigitized)
# What Pillow raises on damaged files, depending on where the damage is.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, KeyError, struct.error)


@dataclass
class ImageInfo:
    width: int  # after EXIF orientation, at full resolution
    height: int
    taken_at: str | None = None  # ISO 8601, from EXIF, when present
    camera: str | None = None


@dataclass
class Header:
    info: ImageInfo
    format: str | None  # Pillow's name: "JPEG", "PNG"...
    mode: str  # Pillow's colour mode as stored: "RGB", "L", "CMYK"...
    orientation: int  # EXIF orientation, 1 (as stored) to 8


def is_image_path(path):
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


@functools.cache
def heif_available():
    return importlib.util.find_spec("pillow_heif") is not None


def missing_decoder(path):
    """Why no installed decoder reads ``path``'s format (with the install hint), or None when one does."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext in HEIF_EXTENSIONS and not heif_available():
        return f"no decoder for {ext} files is installed: pip install pillow-heif"
    return None


def load_image(source, max_pixels=DEFAULT_MAX_PIXELS, min_size=None):
    """Open ``source`` (path, bytes, file object or PIL image) as an RGB image.

    ``min_size`` lets JPEG decode at 1/2, 1/4 or 1/8 scale as long as both sides
    stay at least that many pixels: far faster than a full decode, and the
    model resizes down to its input size anyway.
    Returns ``(image, ImageInfo)``; raises :class:`ImageError` with a reason.
    """
    if isinstance(source, Image.Image):
        return _safely("decode image", _decode, source, max_pixels, min_size)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError("empty file", reason="empty")
        source = io.BytesIO(source)
    with _open(source) as img:  # closes the file; decoded pixels stay in the new image
        return _safely("decode image", _decode, img, max_pixels, min_size)


def load_query_image(data, max_pixels=DEFAULT_MAX_QUERY_PIXELS, min_size=None):
    """Decode the encoded image ``data`` of a query: ``(image, ImageInfo)``, as :func:`load_image`.

    A query needs only the model's input size, so its limits are its own: the
    header is checked against ``max_pixels`` before a pixel is decoded, at most
    one image per core is decoded at a time, and the decoded image is no larger
    than needed: a JPEG decodes at a reduced scale (as with ``min_size`` in
    :func:`load_image`), other formats are reduced by a whole factor right after
    decoding while both sides stay at least twice ``min_size``, before any
    conversion; no full-size copy is kept.
    """
    if not data:
        raise ImageError("empty file", reason="empty")
    img = _open(io.BytesIO(data))  # bytes in memory: nothing to close
    _safely("read image header", _header, img, max_pixels)
    with _QUERY_DECODES:
        return _safely("decode image", _decode_query, img, max_pixels, min_size)


def _decode_query(img, max_pixels, min_size):
    info, _ = _header(img, max_pixels)
    if min_size and img.format == "JPEG":
        img.draft("RGB", (min_size, min_size))
    img.load()
    factor = min(img.size) // (2 * min_size) if min_size else 1
    reduced = factor > 1 and img.mode in _REDUCIBLE_MODES
    if reduced:
        img = img.reduce(factor)
    ImageOps.exif_transpose(img, in_place=True)  # without in_place, an image needing none is copied
    img = _to_rgb(img)
    if factor > 1 and not reduced:  # "1", "P", "CMYK"...: reduced once converted
        img = img.reduce(factor)
    return img, info


@functools.cache
def register_heif():
    """Let Pillow open HEIF files, once per process, when pillow-heif is installed (not at import:
    Pillow's registry of formats belongs to the program)."""
    if heif_available():
        import pillow_heif

        pillow_heif.register_heif_opener()


def _open(source):
    register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Image.open(source)
    except UnidentifiedImageError as e:
        raise ImageError("not a recognised image format", reason="not_an_image") from e
    except Image.DecompressionBombError as e:  # over Pillow's own limit (search.runtime raises it to ours)
        raise ImageTooLargeError(str(e)) from e
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"cannot open image: {e}", reason="corrupt") from e


def _safely(what, fn, *args):
    """``fn(*args)`` with Pillow's many errors on damaged files turned into one ImageError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # corrupt EXIF, palette transparency: not worth failing for
            return fn(*args)
    except ImageError:
        raise
    except _DECODE_ERRORS as e:
        raise ImageError(f"cannot {what}: {e}", reason="corrupt") from e


def read_header(data, max_pixels=DEFAULT_MAX_PIXELS):
    """What the header of encoded ``data`` says, without decoding pixels: a :class:`Header`.

    Applies the same checks as :func:`load_image` (format, size limit), so a
    caller that decodes elsewhere (``search.encoding.device_images``) rejects the same files.
    """
    if not data:
        raise ImageError("empty file", reason="empty")
    with _open(io.BytesIO(data)) as img:
        info, orientation = _safely("read image header", _header, img, max_pixels)
        return Header(info, img.format, img.mode, orientation)


def _header(img, max_pixels):
    """``(ImageInfo, EXIF orientation)``; raises when the image is over ``max_pixels``."""
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError("image has no pixels", reason="corrupt")
    if max_pixels and width * height > max_pixels:
        raise ImageTooLargeError(
            f"{width}x{height} = {width * height / 1e6:.0f} MP is over the limit of {max_pixels / 1e6:.0f} MP"
        )
    exif = img.getexif()
    info = ImageInfo(width, height, _taken_at(exif), _camera(exif))
    orientation = exif.get(ExifTags.Base.Orientation, 1)
    orientation = orientation if orientation in range(1, 9) else 1
    if orientation in (5, 6, 7, 8):
        info.width, info.height = height, width
    return info, orientation


def _decode(img, max_pixels, min_size):
    info, _ = _header(img, max_pixels)
    if min_size and img.format == "JPEG":
        img.draft("RGB", (min_size, min_size))
    img.load()
    rgb = _to_rgb(ImageOps.exif_transpose(img))
    return (rgb.copy() if rgb is img else rgb), info


def _to_rgb(img):
    """Convert every Pillow mode to 8-bit RGB, flattening alpha onto white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _taken_at(exif):
    sub = exif.get_ifd(ExifTags.IFD.Exif) if exif else {}
    for tag in _EXIF_DATETIME:
        value = sub.get(tag)
        if value:
            try:
                return datetime.strptime(str(value).strip("\x00 "), "%Y:%m:%d %H:%M:%S").isoformat()
            except ValueError:
                continue
    value = exif.get(ExifTags.Base.DateTime) if exif else None
    if value:
        try:
            return datetime.strptime(str(value).strip("\x00 "), "%Y:%m:%d %H:%M:%S").isoformat()
        except ValueError:
            return None
    return None


def _camera(exif):
    if not exif:
        return None
    make = str(exif.get(ExifTags.Base.Make, "")).strip("\x00 ")
    model = str(exif.get(ExifTags.Base.Model, "")).strip("\x00 ")
    if model.startswith(make):
        make = ""
    return " ".join(p for p in (make, model) if p) or None
