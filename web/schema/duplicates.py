"""The duplicates route's query and answer (``GET /api/duplicates``)."""

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from search.quality.duplicates import DEFAULT_THRESHOLD

from .types import ApiModel

MAX_GROUPS = 500


class DuplicatesQuery(ApiModel):
    """Groups of duplicate photos, largest first, a page at a time."""

    threshold: Annotated[float, Field(ge=0.5, le=1.0, description="cosine at or above which two photos are "
                                                                  "near-duplicates; default: the server's "
                                                                  "--duplicate-threshold")] = DEFAULT_THRESHOLD
    limit: Annotated[int, Field(ge=1, le=MAX_GROUPS, description="groups per page")] = 50
    offset: Annotated[int, Field(ge=0, le=10_000_000)] = 0


class DuplicateFile(BaseModel):
    id: int
    path: str
    size: int
    width: int | None
    height: int | None
    taken: str = Field(description="capture time, else the file's mtime (UTC)")
    sha256: str
    thumbnail_url: str


class DuplicateGroup(BaseModel):
    kind: Literal["exact", "near"] = Field(description="exact: one file content; near: cosine >= threshold")
    count: int
    keep: str = Field(description="the path proposed to keep: most pixels, then oldest, then lowest id")
    paths: list[str] = Field(description="the keeper first, then by path")
    similarity: float = Field(description="the lowest cosine that joins the group")
    files: list[DuplicateFile]


class DuplicatesResponse(BaseModel):
    status: Literal["ready", "computing"] = Field(
        description="computing: the groups are being found (status 202); ask again shortly")
    threshold: float
    photos: int
    total_groups: int | None = None
    duplicates: int | None = Field(None, description="files that could go: all but the keeper of each group")
    groups: list[DuplicateGroup] = []
