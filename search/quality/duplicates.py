"""Groups of duplicate photos in a bundle: the same file content, or images the model sees as the same.

Exact duplicates share a content hash. Near-duplicates (a re-encoded,
resized or slightly cropped copy) have a cosine of at least ``threshold``;
they are found with the bundle's own index, each photo asking it for its
nearest neighbours, so the cost grows with the collection, not with its
square. Photos joined by a chain of such pairs form one group.

In each group one photo is proposed to keep: the most pixels, then the
oldest (capture time, else mtime), then the lowest id.
"""

import time
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidArgumentError
from ..index import ann

# Real CLIP weights put re-encoded and resized copies above 0.99 and mild crops near or above 0.95,
# while different shots of one scene usually stay below it (README, "Duplicates"; benchmarks/RESULTS.md).
DEFAULT_THRESHOLD = 0.95
NEIGHBOURS = 16  # asked of the index per photo: more than any near-duplicate group needs in one step
BATCH = 1024  # photos whose neighbours are asked for in one index call


@dataclass
class DuplicateGroup:
    kind: str  # "exact": one content hash; "near": several, joined by cosine >= the threshold
    records: list  # ImageRecord, the proposed keeper first, then by path
    similarity: float  # the lowest cosine that joins the group (1.0 for exact)

    @property
    def keep(self):
        return self.records[0]

    def to_dict(self):
        return {
            "kind": self.kind,
            "count": len(self.records),
            "keep": self.keep.path,
            "paths": [r.path for r in self.records],
            "similarity": round(self.similarity, 4),
            "files": [{"id": r.id, "path": r.path, "size": r.size, "width": r.width, "height": r.height,
                       "taken": r.time_key, "sha256": r.sha256} for r in self.records],
        }


@dataclass
class DuplicateReport:
    groups: list  # DuplicateGroup, largest first
    threshold: float
    photos: int
    seconds: float = 0.0

    def to_dict(self):
        return {"threshold": self.threshold, "photos": self.photos, "groups": [g.to_dict() for g in self.groups],
                "duplicates": sum(len(g.records) - 1 for g in self.groups), "seconds": round(self.seconds, 3)}


def check_threshold(threshold):
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.5 <= threshold <= 1.0:
        raise InvalidArgumentError(f"the duplicate threshold is a cosine from 0.5 to 1, got {threshold!r}")
    return float(threshold)


def find_duplicates(bundle, threshold=DEFAULT_THRESHOLD, neighbours=NEIGHBOURS, progress=None):
    """A :class:`DuplicateReport` of ``bundle``.

    ``progress``: called with the number of photos whose neighbours were just searched.
    """
    threshold = check_threshold(threshold)
    start = time.perf_counter()
    records = bundle.metadata.all()  # ordered by id, as the bundle's rows
    ids = np.fromiter((r.id for r in records), np.int64, len(records))
    hashes = np.array([r.sha256 for r in records])
    # a node per content hash; the first photo of each asks the index for its neighbours
    _, first, node_of_row, copies = np.unique(hashes, return_index=True, return_inverse=True, return_counts=True)
    node_of_row = node_of_row.reshape(-1)
    first_row = bundle.rows_of(ids[first])
    nodes = _UnionFind(len(copies))
    best_link = np.ones(len(copies), np.float32)  # lowest cosine of a link joining each node, for the report
    k = min(bundle.count, neighbours + int(copies.max(initial=1)))  # copies of one photo fill neighbour slots
    for begin in range(0, len(copies), BATCH):
        batch_nodes = np.arange(begin, min(len(copies), begin + BATCH))
        queries = bundle.vectors[first_row[batch_nodes]]
        _, found = ann.search(bundle.index, queries, k)
        valid = found >= 0
        found_rows = np.where(valid, bundle.rows_of(np.where(valid, found, ids[0])).reshape(found.shape), 0)
        scores = np.einsum("qkd,qd->qk", bundle.vectors[found_rows.ravel()].reshape(*found.shape, -1), queries)
        linked = valid & (scores >= threshold) & (node_of_row[found_rows] != batch_nodes[:, None])
        for q, j in zip(*np.nonzero(linked)):
            a, b = int(batch_nodes[q]), int(node_of_row[found_rows[q, j]])
            nodes.union(a, b)
            best_link[a] = min(best_link[a], scores[q, j])
            best_link[b] = min(best_link[b], scores[q, j])
        if progress:
            progress(len(batch_nodes))
    groups = _groups(records, node_of_row, nodes, best_link)
    return DuplicateReport(groups, threshold, len(records), time.perf_counter() - start)


def keep_order(record):
    """Sort key: the photo to keep first (most pixels, then oldest, then lowest id)."""
    return (-((record.width or 0) * (record.height or 0)), record.time_key, record.id)


def _groups(records, node_of_row, nodes, best_link):
    members = {}
    for row, node in enumerate(node_of_row.tolist()):
        members.setdefault(nodes.find(node), []).append(row)
    groups = []
    for rows in members.values():
        if len(rows) < 2:
            continue
        group_nodes = set(node_of_row[rows].tolist())
        kind = "exact" if len(group_nodes) == 1 else "near"
        keeper = min((records[r] for r in rows), key=keep_order)
        rest = sorted((records[r] for r in rows if records[r] is not keeper), key=lambda r: r.path)
        similarity = 1.0 if kind == "exact" else float(min(best_link[list(group_nodes)]))
        groups.append(DuplicateGroup(kind, [keeper] + rest, similarity))
    groups.sort(key=lambda g: (-len(g.records), g.keep.path))
    return groups


class _UnionFind:
    def __init__(self, n):
        self.parent = list(range(n))

    def find(self, a):
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)
