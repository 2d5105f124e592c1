"""Reading and hashing files: PhotoFile in, their bytes and SHA-256 out.

The hash identifies a photo's content across renames, copies and builds
(``plan``), so it is taken from the very bytes that are decoded. A file is
read whole, once; the executors bound how many files are in flight, so memory
stays flat however large the collection.

What the walk found may have changed since: a file is opened without
blocking and checked on its open descriptor, so a FIFO or device put in a
photo's place is skipped rather than waited on, and no file is read past
``max_bytes`` however large it is (or grows).
"""

import hashlib
import os
import stat
from dataclasses import dataclass

from .batch import Batch, Skipped

DEFAULT_MAX_FILE_BYTES = 512 << 20  # 512 MiB: above any photo (a 100 MP TIFF is ~300 MB), far below RAM


@dataclass
class FileData:
    photo: object  # the indexer.stages.walk.PhotoFile it came from
    sha256: str
    data: bytes


def _nonblocking(path, flags):
    # A FIFO opened for reading would wait for a writer forever; a regular file reads the same either way.
    return os.open(path, flags | os.O_NONBLOCK)


def too_large(size, max_bytes):
    """The Skipped reason for a file of ``size`` bytes over ``max_bytes``."""
    return f"too_large: the file has {size} bytes, over the limit of {max_bytes} (--max-file-bytes)"


def read_file(photo, max_bytes=DEFAULT_MAX_FILE_BYTES):
    """FileData, or Skipped when the file cannot be read, has vanished since the walk, is empty,
    is no longer a regular file, or has more than ``max_bytes`` bytes."""
    try:
        with open(photo.path, "rb", opener=_nonblocking) as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                return Skipped(photo.rel, "not_a_file: no longer a regular file (replaced since the walk)")
            if st.st_size > max_bytes:
                return Skipped(photo.rel, too_large(st.st_size, max_bytes))
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        return Skipped(photo.rel, "vanished: the file was removed during the build")
    except OSError as e:
        return Skipped(photo.rel, f"unreadable: {e.strerror or e}")
    if len(data) > max_bytes:  # it grew while being read
        return Skipped(photo.rel, too_large(len(data), max_bytes))
    if not data:
        return Skipped(photo.rel, "empty: the file has zero bytes")
    return FileData(photo, hashlib.sha256(data).hexdigest(), data)


def read_files(photos, max_bytes=DEFAULT_MAX_FILE_BYTES):
    """A Batch of FileData for ``photos`` (a list of PhotoFile)."""
    out = Batch([])
    for photo in photos:
        read = read_file(photo, max_bytes)
        (out.skipped if isinstance(read, Skipped) else out.items).append(read)
    return out
