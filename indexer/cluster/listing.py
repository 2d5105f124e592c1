"""Listing the photo folder on the cluster: one Ray task per folder right under the root.

A single ``os.walk`` over millions of files on network storage takes hours;
each top-level folder is walked by its own task (on whichever node has room)
with the build's own walk stage, and the lists are joined in the root's
order, so the result is the local walk's. The nodes must see the photos at
the same path (shared storage).
"""

from dataclasses import replace

from ..stages.walk import Folder, walk_photos

TASK_CPUS = 0.25  # listing waits on the filesystem, not the CPU


def list_photos(ray, root, exclude=(), include_hidden=False, follow_links=False):
    """The PhotoFiles under ``root``, as ``walk_photos`` lists them, walked by Ray tasks."""
    walk = ray.remote(num_cpus=TASK_CPUS)(walk_folder)
    # the root itself is excluded too: a link back to it is walked once, by no task
    top = list(walk_photos(root, exclude, include_hidden, follow_links, descend=False))
    pending = {i: walk.remote(f.path, f.rel, [*exclude, root], include_hidden, follow_links, root)
               for i, f in enumerate(top) if isinstance(f, Folder)}
    files = []
    for i, entry in enumerate(top):
        files += ray.get(pending[i]) if i in pending else [entry]
    return files


def walk_folder(path, rel, exclude, include_hidden, follow_links, root):
    """The PhotoFiles under the folder ``path`` of the photo folder ``root``, their ``rel`` prefixed with
    the folder's own; links are followed by the rule of ``root``."""
    return [replace(p, rel=f"{rel}/{p.rel}")
            for p in walk_photos(path, exclude, include_hidden, follow_links, inside=root)]
