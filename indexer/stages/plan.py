"""Deciding what a build must do, from the files found and the previous bundle.

Size and mtime decide first (no reading); for files that changed, the content
hash decides: a known hash is reused (moved, renamed or duplicated files are
never embedded twice), an unknown one is embedded. Files the previous build
skipped are not read again until they change (``search.store.skipped``), and
files over the size limit are never read.
"""

from collections import defaultdict
from dataclasses import dataclass, field, replace

from search.store.metadata import ImageRecord
from search.store.skipped import SkippedFile

from .read import too_large


@dataclass
class Plan:
    unchanged: list  # ImageRecord, stat-equal to the file found: kept, with the file's identity as found
    to_read: list  # PhotoFile, new, with another size or mtime, or another file in the same place
    gone: list  # ImageRecord whose path was not found, or is now skipped
    refreshed: int = 0  # unchanged records whose identity (device, inode, ctime) was updated
    skipped: list = field(default_factory=list)  # SkippedFile left unread: skipped before and unchanged, or too large

    @property
    def changes_nothing(self):
        return not (self.to_read or self.gone or self.refreshed)


def plan_changes(files, previous, remembered=None, max_file_bytes=None):
    """Split ``files`` (PhotoFile) against ``previous`` records.

    ``remembered``: ``{path: SkippedFile}`` that the previous build skipped;
    ``max_file_bytes``: files over it are skipped unread.
    """
    by_path = {r.path: r for r in previous}
    remembered = remembered or {}
    unchanged, to_read, skipped, seen, refreshed = [], [], [], set(), 0
    for f in files:
        old = by_path.get(f.rel)
        # another inode at the same path, size and mtime is another file (a copy, a swap): read it again;
        # records of bundles that predate file identity (ino None) are kept and get one
        same_file = old is not None and old.size == f.size and old.mtime_ns == f.mtime_ns and (
            old.ino is None or (old.dev, old.ino) == (f.dev, f.ino))
        if not same_file:
            known = remembered.get(f.rel)
            if known is not None and known.same_file(f.size, f.mtime_ns, f.ctime_ns):
                skipped.append(known)
            elif max_file_bytes is not None and f.size > max_file_bytes:
                skipped.append(SkippedFile(f.rel, f.size, f.mtime_ns, f.ctime_ns, too_large(f.size, max_file_bytes)))
            else:
                seen.add(f.rel)
                to_read.append(f)
            continue
        seen.add(f.rel)
        identity = (f.dev, f.ino, f.ctime_ns)
        if (old.dev, old.ino, old.ctime_ns) != identity and f.ino is not None:
            old = replace(old, dev=f.dev, ino=f.ino, ctime_ns=f.ctime_ns)
            refreshed += 1
        unchanged.append(old)
    gone = [r for r in previous if r.path not in seen]
    return Plan(unchanged, to_read, gone, refreshed, skipped)


@dataclass
class Outcome:
    records: list  # the new bundle's ImageRecords, sorted by id
    counts: dict = field(default_factory=dict)


def assemble(plan, read, previous, next_id):
    """Give every file read an id, and count what changed.

    ``read`` holds ``(PhotoFile, sha256, ImageInfo)`` for each file read and
    decoded, ``previous`` the old records. Renames keep their old id, edits of a
    path keep that path's id, everything else gets a fresh id.
    """
    by_path = {r.path: r for r in previous}
    gone_by_hash = defaultdict(list)
    for r in plan.gone:
        gone_by_hash[r.sha256].append(r)
    counts = dict(added=0, updated=0, removed=0, renamed=0, unchanged=len(plan.unchanged))
    records = list(plan.unchanged)
    for photo, sha, info in sorted(read, key=lambda t: t[0].rel):
        old = by_path.get(photo.rel)
        if old is not None:
            image_id = old.id
            counts["unchanged" if old.sha256 == sha else "updated"] += 1
        elif gone_by_hash[sha]:
            image_id = gone_by_hash[sha].pop(0).id
            counts["renamed"] += 1
        else:
            image_id, next_id = next_id, next_id + 1
            counts["added"] += 1
        records.append(ImageRecord(image_id, photo.rel, photo.size, photo.mtime_ns, sha,
                                   info.width, info.height, info.taken_at, info.camera,
                                   photo.dev, photo.ino, photo.ctime_ns))
    kept = {r.id for r in records}
    counts["removed"] = sum(1 for r in previous if r.id not in kept)
    records.sort(key=lambda r: r.id)
    return Outcome(records, counts)
