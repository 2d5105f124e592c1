"""The files a build skipped, remembered in the generation that skipped them.

A collection keeps a few broken files for good; without a memory of them
every re-run would read them again, load the model for them and write a new
generation. ``skipped.json`` in a generation folder lists each skipped file
with the size, mtime and ctime it had, and the ``conditions`` (the build's
decoders and limits) under which it failed: the next build retries a file
only when it changed or the conditions did. Bundles written before this file
existed have none, and their skipped files are simply retried once.
"""

import json
import os
from dataclasses import asdict, dataclass

SKIPPED_FILE = "skipped.json"


@dataclass(frozen=True)
class SkippedFile:
    path: str  # relative to the photo root, as in the metadata
    size: int
    mtime_ns: int
    ctime_ns: int | None
    reason: str

    def same_file(self, size, mtime_ns, ctime_ns):
        return (self.size, self.mtime_ns, self.ctime_ns) == (size, mtime_ns, ctime_ns)


def write_skipped(generation_dir, files, conditions):
    """Write ``files`` (SkippedFile) and the ``conditions`` (a JSON-able dict) they failed under."""
    data = {"conditions": conditions, "files": [asdict(f) for f in sorted(files, key=lambda f: f.path)]}
    with open(os.path.join(generation_dir, SKIPPED_FILE), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)


def read_skipped(generation_dir, conditions):
    """``{path: SkippedFile}`` remembered in ``generation_dir`` under the same ``conditions``; ``{}`` when
    there is no such file (an older bundle), it cannot be read, or the conditions differ."""
    try:
        with open(os.path.join(generation_dir, SKIPPED_FILE), encoding="utf-8") as f:
            data = json.load(f)
        if data["conditions"] != conditions:
            return {}
        files = [SkippedFile(**entry) for entry in data["files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # a memory only: without it, the files are read again
    return {f.path: f for f in files}
