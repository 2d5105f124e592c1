"""The request models of ``/api/search`` (a JSON body, a multipart upload, a query string) and their filters.

Each model validates the request and yields its part of the OpenAPI
document. The query rule (exactly one of ``text``, ``image``, ``embedding``,
``id`` or ``queries``) is checked by a validator and stated in the model's
description: a schema of optional fields with that sentence is what client
generators turn into a working typed model (a ``oneOf`` of bare ``required``
lists becomes an untyped ``Any``).
"""

from typing import Annotated, ClassVar

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from search.errors import InvalidArgumentError
from search.query.filters import MAX_VALUES, Filters, parse_time
from search.query.terms import QueryKind, QueryTerm
from search.store.bundle import MAX_K

from .types import ApiModel, Base64Image, Embedding, ImageId, Text, invalid

DEFAULT_K = 24
MAX_API_K = 1000
MAX_TERMS = 16
MAX_WEIGHT = 100.0
TERM_FIELDS = {"text": QueryKind.TEXT, "image": QueryKind.IMAGE, "embedding": QueryKind.EMBEDDING,
               "id": QueryKind.ID}

PageSize = Annotated[int, Field(ge=1, le=MAX_API_K, description="results per page")]
Offset = Annotated[int, Field(ge=0, le=MAX_K, description="results to skip, for the next pages")]
MinScore = Annotated[float, Field(ge=-1.0, le=1.0, description="leave out results of a lower cosine")]
PathPrefix = Annotated[str, Field(max_length=1024, description="only images under this folder of the photo root")]
Weight = Annotated[float, Field(ge=-MAX_WEIGHT, le=MAX_WEIGHT, description="negative weights subtract")]


def _iso_time(value):
    try:
        parse_time("time", value)
    except InvalidArgumentError:
        raise invalid("must be an ISO date such as 2024-06-30 or a date-time such as 2024-06-30T18:00:00, "
                      "got {value}", value=repr(value[:40])) from None
    return value


IsoTime = Annotated[str, Field(max_length=64), AfterValidator(_iso_time), Field(
    description="an ISO date (YYYY-MM-DD, a whole day) or date-time (YYYY-MM-DDTHH:MM:SS), inclusive; "
                "compared with the capture time, else the file's mtime")]
Name = Annotated[str, Field(min_length=1, max_length=256)]
Camera = Annotated[Name, Field(description="only photos of this camera (as /api/facets lists them)")]
FileType = Annotated[Name, Field(description="only files of this type: jpeg, png, heic... (as /api/facets lists "
                                             "them)")]
Names = Annotated[list[Name], Field(min_length=1, max_length=MAX_VALUES, description="any of these")]
Collapse = Annotated[bool, Field(description="gather exact and near copies on the page into one result, "
                                             "listed in its duplicates")]


class Filtered(ApiModel):
    """The filters of a query string or form (one value each), and ``collapse``; browse and search share them."""

    path_prefix: PathPrefix = None
    taken_after: IsoTime = None
    taken_before: IsoTime = None
    camera: Camera = None
    file_type: FileType = None
    collapse: Collapse = False

    def filters(self):
        """The library's :class:`Filters` (InvalidArgumentError, a 400, for bounds in the wrong order)."""
        return Filters(path_prefix=(self.path_prefix or "").strip("/") or None, taken_after=self.taken_after,
                       taken_before=self.taken_before, camera=self.camera, file_type=self.file_type)


class _Options:
    """What the search routes pass to the service, with the defaults filled in."""

    def search_options(self):
        return {"k": DEFAULT_K if self.k is None else self.k, "offset": self.offset or 0,
                "min_score": self.min_score, "filters": self.filters()}


class _TermFields(ApiModel):
    text: Text | None = None
    image: Base64Image | None = None
    embedding: Embedding | None = None
    id: ImageId | None = Field(None, description="more like this indexed image (which is left out)")

    def _given(self, names):
        given = [name for name in names if getattr(self, name) is not None]
        if not given:
            raise PydanticCustomError("no_query", "no query; give one of: {names}", {"names": ", ".join(names)})
        if len(given) > 1:
            raise PydanticCustomError(
                "several_queries", "several queries ({given}); give exactly one, or combine terms in a 'queries' "
                "list with weights", {"given": ", ".join(given)})
        return given[0]

    def _term(self, name, weight=1.0):
        return QueryTerm(TERM_FIELDS[name], getattr(self, name), weight)


class Term(_TermFields):
    """One term of a combined query: exactly one of text, image, embedding or id, and a weight."""

    weight: Weight = 1.0

    @model_validator(mode="after")
    def _exactly_one(self):
        self._given(tuple(TERM_FIELDS))
        return self

    def query_term(self):
        return self._term(self._given(tuple(TERM_FIELDS)), self.weight)


class SearchRequest(_TermFields, Filtered, _Options):
    """A search: exactly one of text, image, embedding, id or queries, and options and filters.
    A null field counts as absent."""

    queries: Annotated[list[Term], Field(min_length=1, max_length=MAX_TERMS)] | None = Field(
        None, description="a weighted sum of normalised term vectors: beach + sunset - people")
    k: PageSize | None = DEFAULT_K
    offset: Offset | None = 0
    min_score: MinScore | None = None
    path_prefix: PathPrefix | None = None
    taken_after: IsoTime | None = None
    taken_before: IsoTime | None = None
    camera: Camera | Names | None = None
    file_type: FileType | Names | None = None
    collapse: Collapse | None = False

    @model_validator(mode="after")
    def _exactly_one(self):
        self._given((*TERM_FIELDS, "queries"))
        return self

    def terms(self):
        name = self._given((*TERM_FIELDS, "queries"))
        if name == "queries":
            return [term.query_term() for term in self.queries]
        return [self._term(name)]


class UploadRequest(Filtered, _Options):
    """A search by an uploaded image (multipart/form-data): the image file and options as form fields."""

    missing_code: ClassVar[str] = "no_query"
    missing_hint: ClassVar[str] = "a multipart search needs an 'image' file field"

    image: bytes = Field(strict=True, description="the image file")
    k: PageSize = DEFAULT_K
    offset: Offset = 0
    min_score: MinScore = None

    @field_validator("image")
    @classmethod
    def _not_empty(cls, data):
        if not data:
            raise invalid("the uploaded image is empty")
        return data

    def terms(self):
        return [QueryTerm(QueryKind.IMAGE, self.image)]


class TextQuery(Filtered, _Options):
    """``GET /api/search?q=TEXT``: a text search and options, as query-string parameters."""

    missing_code: ClassVar[str] = "no_query"
    missing_hint: ClassVar[str] = "the query string needs q=TEXT"

    q: Text
    k: PageSize = DEFAULT_K
    offset: Offset = 0
    min_score: MinScore = None

    def terms(self):
        return [QueryTerm(QueryKind.TEXT, self.q)]
