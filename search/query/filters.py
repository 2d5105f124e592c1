"""Which images a query may return, decided from their metadata before ranking."""

from dataclasses import dataclass, replace

from ..errors import InvalidArgumentError


@dataclass(frozen=True)
class Filters:
    """Conditions on an image's metadata; an image must meet all that are set.

    ``path_prefix``: a folder of the photo tree (``"2024/holidays"``); its
    images, at any depth, match.
    """

    path_prefix: str | None = None

    def __post_init__(self):
        if self.path_prefix is not None and not isinstance(self.path_prefix, str):
            raise InvalidArgumentError("path_prefix must be a string")

    @classmethod
    def of(cls, filters=None, path_prefix=None):
        """``filters`` with the shorthand ``path_prefix`` keyword of the search calls folded in."""
        filters = filters or cls()
        if path_prefix is None:
            return filters
        if filters.path_prefix is not None:
            raise InvalidArgumentError("give path_prefix once: as a keyword or in the filters, not both")
        return replace(filters, path_prefix=path_prefix)

    def matching_ids(self, metadata):
        """Sorted ids of the images that match (a list), or ``None`` when nothing is filtered."""
        if self.path_prefix is None:
            return None
        return metadata.ids_under(self.path_prefix)  # None for "" or "/": the whole tree
