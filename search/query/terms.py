"""What a query is made of: terms of four kinds, each with a weight."""

from dataclasses import dataclass
from enum import Enum

from ..errors import InvalidArgumentError


class QueryKind(str, Enum):
    """The kinds of query term. A str, so ``QueryKind.TEXT == "text"`` and JSON shows the name."""

    TEXT = "text"  # a description, embedded by the text tower
    IMAGE = "image"  # an image (path, bytes, file object or PIL image), embedded by the image tower
    ID = "id"  # an indexed image, by its id: "more like this"
    EMBEDDING = "embedding"  # a vector of the index's dimension, used as given

    def __str__(self):  # "text", not "QueryKind.TEXT", in messages and metric labels
        return self.value

    @classmethod
    def parse(cls, value):
        try:
            return cls(value)
        except ValueError:
            raise InvalidArgumentError(
                f"unknown query kind {value!r}; use one of {', '.join(k.value for k in cls)}") from None


@dataclass
class QueryTerm:
    """One term of a query; ``value`` is text, image source, image id or vector."""

    kind: QueryKind
    value: object
    weight: float = 1.0

    def __post_init__(self):
        self.kind = QueryKind.parse(self.kind)
