"""What a library holds, for a filter picker: its folders, cameras, file types and time range, with counts.

Each count is one ``GROUP BY`` over an indexed column of the metadata. A
folder counts the photos in it at any depth, so choosing it as a
``path_prefix`` filter shows that many.
"""

from dataclasses import dataclass


@dataclass
class Facets:
    folders: list  # {"path", "count"} for every folder holding photos at any depth, by path; not the root
    cameras: list  # {"name", "count"}, most photos first, then by name; photos without a camera not counted
    file_types: list  # {"name", "count"}, as cameras
    time_range: dict  # {"first", "last"}: the oldest and newest time_key (capture time, else mtime), or None

    def to_dict(self):
        return {"folders": self.folders, "cameras": self.cameras, "file_types": self.file_types,
                "time_range": self.time_range}


def facets(metadata):
    """The :class:`Facets` of ``metadata`` (a ``MetadataReader``)."""
    by_folder = {}
    for folder, count in _counts(metadata, "folder"):
        parts = folder.split("/") if folder else []
        for depth in range(1, len(parts) + 1):  # the folder and each folder above it
            ancestor = "/".join(parts[:depth])
            by_folder[ancestor] = by_folder.get(ancestor, 0) + count
    first, last = metadata.json_rows("SELECT json_array(min(time_key), max(time_key)) FROM images")
    return Facets(
        folders=[{"path": path, "count": count} for path, count in sorted(by_folder.items())],
        cameras=_named(_counts(metadata, "camera")),
        file_types=_named(_counts(metadata, "file_type")),
        time_range={"first": first, "last": last},
    )


def _counts(metadata, column):
    """``[value, count]`` of each value of an indexed ``column`` (NULL left out)."""
    return metadata.json_rows(
        f"SELECT json_group_array(json_array(value, n)) FROM "
        f"(SELECT {column} AS value, count(*) AS n FROM images WHERE {column} IS NOT NULL GROUP BY {column})")


def _named(counts):
    return [{"name": name, "count": count} for name, count in sorted(counts, key=lambda c: (-c[1], c[0]))]
