"""Collapsing the copies on one page of results into one tile each.

Two photos of a page are copies when they have the same content hash
(exact) or a cosine at or above the duplicates threshold (near: a re-encoded,
resized or slightly cropped copy), the same two tests and the same default
threshold as the library-wide report of ``search.quality.duplicates``;
photos joined by a chain of such pairs form one group. The tile is the
group's first photo in the page's order (the best match, or the newest when
browsing). Only the page is compared: pages are small, so this costs a
``k x k`` product, and the results' order and paging stay as they are.
"""

import numpy as np

from ..quality.duplicates import DEFAULT_THRESHOLD, _UnionFind, check_threshold


def collapse_groups(vectors, hashes, threshold=DEFAULT_THRESHOLD):
    """Groups of positions of a page, in page order, each led by its first position.

    ``vectors``: the page's unit vectors, in its order; ``hashes``: their
    content hashes. Every position is in exactly one group.
    """
    threshold = check_threshold(threshold)
    vectors = np.asarray(vectors, dtype=np.float32)
    nodes = _UnionFind(len(hashes))  # joins to the lower position: a group's root is its first
    first_of_hash = {}
    for position, digest in enumerate(hashes):
        nodes.union(first_of_hash.setdefault(digest, position), position)
    if len(vectors):
        near = np.triu(vectors @ vectors.T >= threshold, 1)
        for a, b in zip(*np.nonzero(near)):
            nodes.union(int(a), int(b))
    groups = {}
    for position in range(len(hashes)):
        groups.setdefault(nodes.find(position), []).append(position)
    return list(groups.values())


def collapse_records(bundle, records, threshold=DEFAULT_THRESHOLD):
    """:func:`collapse_groups` of a page of ``records`` (``ImageRecord``) of ``bundle``: lists of records."""
    if not records:
        return []
    vectors = bundle.vectors[bundle.rows_of([r.id for r in records])]
    groups = collapse_groups(vectors, [r.sha256 for r in records], threshold)
    return [[records[i] for i in group] for group in groups]
