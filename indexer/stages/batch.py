"""What flows between the stages: a batch of items, and the files that dropped out of it.

Every stage from reading on takes a list of items and returns a :class:`Batch`
of the items it could make plus a :class:`Skipped` for each file it could not,
so an executor (the local one, a thread pool, a distributed engine's map over
batches) passes batches along and gathers the skipped files, and no stage
needs to know who runs it.
"""

from dataclasses import dataclass, field


@dataclass
class Skipped:
    rel: str  # the file's path relative to the photo root
    reason: str  # "<reason>: <detail>", reason one of the ImageError reasons, unreadable, vanished, empty, corrupt
    sha256: str | None = None  # when the file was read: its copies (same content) share its fate

    def to_dict(self):
        return {"path": self.rel, "reason": self.reason}


@dataclass
class Batch:
    items: list
    skipped: list = field(default_factory=list)  # Skipped
