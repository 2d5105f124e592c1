"""Finding the index bundle a path names: the bundle folder itself, or the photo folder that holds one.

The indexer writes ``PHOTOS/.photoindex`` by default, so people pass either
folder to ``indexer info``, ``indexer duplicates`` and ``web serve``. Every
command resolves it here, and says what the path is when it is no bundle.
"""

import os

from ..errors import BundleError
from .manifest import MANIFEST

BUNDLE_DIR = ".photoindex"  # the bundle's folder inside the photo folder, unless the user names another


def is_bundle(path):
    return os.path.isfile(os.path.join(path, MANIFEST))


def find_bundle(path):
    """The absolute path of the bundle ``path`` names: ``path`` itself, or ``path/.photoindex`` when
    only that is a bundle; ``path`` unchanged when neither is (opening it then says why)."""
    path = os.path.abspath(path)
    inner = os.path.join(path, BUNDLE_DIR)
    return inner if not is_bundle(path) and is_bundle(inner) else path


def locate_bundle(path):
    """:func:`find_bundle`, or a :class:`BundleError` that says what ``path`` is when it names no bundle."""
    found = find_bundle(path)
    if is_bundle(found):
        return found
    build = f"build one with: python -m indexer build PHOTOS --index {found}"
    if not os.path.exists(found):
        raise BundleError(f"no index at {found}: there is no such file or folder; {build}")
    if not os.path.isdir(found):
        raise BundleError(f"{found} is a file, not an index: give the index folder (PHOTOS/{BUNDLE_DIR}) "
                          "or the photo folder that holds it")
    pending = found if os.path.basename(found) == BUNDLE_DIR else os.path.join(found, BUNDLE_DIR)
    if os.path.isdir(pending):
        raise BundleError(f"{pending} holds no finished index yet (its first build did not complete); "
                          f"run: python -m indexer build {os.path.dirname(pending)}")
    raise BundleError(f"{found} is a folder but not an index (no {MANIFEST}), and holds no {BUNDLE_DIR} folder; "
                      f"to index the photos in it: python -m indexer build {found}")
