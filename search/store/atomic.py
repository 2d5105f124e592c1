"""Writing files so that a reader or a crash sees the old content or the new, never a part.

Every file the project writes in place goes through here: the bundle's
manifest, a build's checkpoint chunks, cached thumbnails, and (as a folder) a
bundle generation. The data goes to a temporary name in the same folder and is
moved over the target with ``os.replace``, which is atomic on POSIX.
"""

import os
import secrets
from contextlib import contextmanager


@contextmanager
def atomic_file(path, durable=True):
    """A binary file object whose content replaces ``path`` when the block ends without error.

    ``durable``: fsync the file and its folder, so the new content survives a
    power loss (a cache can skip that). On error the temporary file is removed
    and ``path`` is left as it was.
    """
    tmp = f"{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with open(tmp, "wb") as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(os.path.dirname(path))


def write_atomic(path, data, durable=True):
    """Replace ``path`` with the bytes ``data`` (see :func:`atomic_file`)."""
    with atomic_file(path, durable=durable) as f:
        f.write(data)


def fsync_dir(path):
    """Make a folder's entries (a rename, a new file) durable."""
    fd = os.open(path or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())
