"""Reading and hashing files: PhotoFile in, their bytes and SHA-256 out.

The hash identifies a photo's content across renames, copies and builds
(``plan``), so it is taken from the very bytes that are decoded. A file is
read whole, once; the executors bound how many files are in flight, so memory
stays flat however large the collection.
"""

import hashlib
from dataclasses import dataclass

from .batch import Batch, Skipped


@dataclass
class FileData:
    photo: object  # the indexer.stages.walk.PhotoFile it came from
    sha256: str
    data: bytes


def read_file(photo):
    """FileData, or Skipped when the file cannot be read, has vanished since the walk, or is empty."""
    try:
        with open(photo.path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return Skipped(photo.rel, "vanished: the file was removed during the build")
    except OSError as e:
        return Skipped(photo.rel, f"unreadable: {e.strerror or e}")
    if not data:
        return Skipped(photo.rel, "empty: the file has zero bytes")
    return FileData(photo, hashlib.sha256(data).hexdigest(), data)


def read_files(photos):
    """A Batch of FileData for ``photos`` (a list of PhotoFile)."""
    out = Batch([])
    for photo in photos:
        read = read_file(photo)
        (out.skipped if isinstance(read, Skipped) else out.items).append(read)
    return out
