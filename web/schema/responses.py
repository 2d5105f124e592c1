"""The shapes of the API's answers, for the OpenAPI document (the routes build them as plain dicts)."""

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable: invalid_argument, unknown_id, ...")
    message: str


class Error(BaseModel):
    """Every error of the API, whatever its status."""

    error: ErrorDetail


class Result(BaseModel):
    id: int
    path: str = Field(description="relative to the photo folder")
    score: float = Field(description="the cosine of the query and the image")
    width: int | None
    height: int | None
    taken_at: str | None = Field(description="EXIF capture time")
    image_url: str
    thumbnail_url: str


class SearchResponse(BaseModel):
    results: list[Result] = Field(description="best first")
    total: int = Field(description="results there are in all (past min_score and path_prefix)")
    took_ms: float
    model: str


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
    status: str
    count: int


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
