"""Writing files so that a reader or a crash sees the old content or the new, never a part.

Every file the project writes in place goes through here: the bundle's
manifest, a build's checkpoint chunks, cached thumbnails, and (as a folder) a
bundle generation. The data goes to a temporary name in the same folder and is
moved over the target with ``os.replace``, which is atomic on POSIX.
"""

import os
import secrets
import shutil
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


@contextmanager
def atomic_dir(path):
    """A new, empty folder whose files replace the folder ``path`` when the block ends without error.

    The files are fsynced, the folder renamed over ``path`` (whatever a
    crash left there is removed first) and the parent fsynced. Its temporary
    name is ``path + ".tmp"``: one writer at a time (the caller holds a lock),
    and the next call clears what a crashed one left. On error the
    temporary folder is removed and ``path`` is left as it was.
    """
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
        for name in os.listdir(tmp):
            fsync_file(os.path.join(tmp, name))
        fsync_dir(tmp)
        shutil.rmtree(path, ignore_errors=True)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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
