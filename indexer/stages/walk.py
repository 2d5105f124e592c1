"""Finding the photos under a folder: the first stage of the build."""

import os
import stat
from dataclasses import dataclass

from search.encoding.images import is_image_path


@dataclass(frozen=True)
class PhotoFile:
    path: str  # absolute
    rel: str  # relative to the photo root, '/' separated: the key in the bundle
    size: int
    mtime_ns: int
    dev: int | None = None  # the file's identity, recorded so that serving can tell it is still this file
    ino: int | None = None
    ctime_ns: int | None = None


@dataclass(frozen=True)
class Folder:
    """A sub-folder not entered (``walk_photos(..., descend=False)``), for another worker to walk."""

    path: str
    rel: str


def walk_photos(root, exclude=(), include_hidden=False, follow_links=False, descend=True, inside=None):
    """Yield every image file under ``root``, sorted.

    Folders in ``exclude`` (the bundle, a thumbnail cache) are never entered.
    A symlinked folder is followed when its target is inside the photo folder
    (``inside``, by default ``root``; any target with ``follow_links``); a
    folder already seen (by device and inode) is not entered again, so link
    cycles end. A symlink to a file is never indexed: the service opens photos
    without following links (its target is indexed under its own name when it
    is inside the photo folder). ``descend`` False yields each folder right
    under ``root`` as a :class:`Folder` instead, for another worker to walk
    (with ``inside`` the photo folder).
    """
    root = os.path.abspath(root)
    real_root = os.path.realpath(inside or root)
    skip = {os.path.realpath(p) for p in exclude}
    seen = set()

    def followed(entry):
        return follow_links or os.path.commonpath([real_root, os.path.realpath(entry.path)]) == real_root

    def visit(folder, rel_folder):
        try:
            info = os.stat(folder)
        except OSError:
            return
        if (info.st_dev, info.st_ino) in seen or os.path.realpath(folder) in skip:
            return
        seen.add((info.st_dev, info.st_ino))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return  # an unreadable folder holds nothing we can index
        for entry in entries:
            if not include_hidden and entry.name.startswith("."):
                continue
            rel = f"{rel_folder}/{entry.name}" if rel_folder else entry.name
            try:
                st = entry.stat()  # follows symlinks
                link = entry.is_symlink()
            except OSError:
                continue  # dangling link or vanished file
            if stat.S_ISDIR(st.st_mode):
                if not link or followed(entry):
                    yield from visit(entry.path, rel) if descend else [Folder(entry.path, rel)]
            elif stat.S_ISREG(st.st_mode) and not link and is_image_path(entry.name):
                yield PhotoFile(entry.path, rel, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino, st.st_ctime_ns)

    yield from visit(root, "")
