"""The shapes of the API's answers, for the OpenAPI document (the routes build them as plain dicts)."""

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable: invalid_argument, unknown_id, ...")
    message: str


class Error(BaseModel):
    """Every error of the API, whatever its status."""

    error: ErrorDetail


class Photo(BaseModel):
    """One photo of the bundle, as search, browse and /api/photos/{id} return it."""

    id: int
    path: str = Field(description="relative to the photo folder")
    score: float | None = Field(None, description="search only: the cosine of the query and the image, "
                                                  "clamped to [-1, 1]")
    width: int | None
    height: int | None
    taken_at: str | None = Field(description="EXIF capture time")
    image_url: str
    thumbnail_url: str
    name: str = Field(description="the file name")
    folder: str = Field(description="the file's folder, relative to the photo folder ('' at its root)")
    time: str = Field(description="capture time, else the file's mtime (UTC), YYYY-MM-DDTHH:MM:SS: the browse order")
    camera: str | None
    size: int = Field(description="bytes")
    file_type: str = Field(description="jpeg, png, heic, ... (from the extension)")
    thumbnail_url_2x: str = Field(description="the thumbnail at twice the size, for srcset")
    preview_url: str = Field(description="a JPEG whose longest side is at most 2048 px, whatever the original")
    download_url: str = Field(description="the original as an attachment, with its own file name")


class Result(Photo):
    duplicates: list[Photo] | None = Field(
        None, description="with collapse: the other photos on the page that are exact or near copies of this one")


class SearchResponse(BaseModel):
    results: list[Result] = Field(description="best first")
    total: int = Field(description="results there are in all (past min_score and the filters)")
    took_ms: float
    model: str
    weak_below: float | None = Field(description="results scoring less are weak matches (the relevance cut, "
                                                 "see the README); null when nothing matches")
    strong_total: int = Field(description="matches scoring weak_below or more, on all pages")


class BrowseResponse(BaseModel):
    results: list[Result] = Field(description="newest first: by time, then id, descending")
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last page")
    total: int = Field(description="photos that match the filters, on all pages")


class FolderCount(BaseModel):
    path: str
    count: int = Field(description="photos in the folder at any depth")


class NameCount(BaseModel):
    name: str
    count: int


class TimeRange(BaseModel):
    first: str | None
    last: str | None


class FacetsResponse(BaseModel):
    """What the filters can choose from."""

    folders: list[FolderCount] = Field(description="every folder that holds photos at any depth, by path")
    cameras: list[NameCount] = Field(description="most photos first")
    file_types: list[NameCount] = Field(description="most photos first")
    time_range: TimeRange = Field(description="the oldest and newest photo's time")


class Stats(BaseModel):
    count: int
    model: str
    pretrained: str | None
    dim: int
    index_type: str
    metric: str
    generation: int
    created_at: str
    updated_at: str
    index_name: str


class Health(BaseModel):
    """``ok``; ``degraded`` (answering from the generation opened before); ``unavailable`` (503)."""
    status: str
    count: int
    reason: str | None = None


class KnnResult(BaseModel):
    """One clip-retrieval result; those past num_images carry only id and similarity."""

    id: int
    similarity: float
    image_path: str | None = None
    url: str | None = None


class ImageMetadata(BaseModel):
    image_path: str
    url: str


class MetadataItem(BaseModel):
    id: int
    metadata: ImageMetadata
