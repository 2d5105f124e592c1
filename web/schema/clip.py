"""The request models of clip-retrieval's routes: ``/knn-service`` and ``/metadata``.

They take exactly what clip-retrieval's ``ClipClient`` and front end send:
all 14 fields, ``null`` for unused ones and ``""`` for unused strings,
aesthetic values as strings. Unlike ``clip back``, a missing or unknown field
is a 400, not a 500. The flags this project has no models for are accepted,
type-checked and ignored.
"""

import math
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from search.store.bundle import MAX_K

from .types import MAX_TEXT, ApiModel, Embedding, ImageId, IndexName, base64_image, invalid

QUERY_FIELDS = ("text", "image", "image_url", "embedding_input")  # the first one given is the query
REQUIRED = ("modality", "num_images", "indice_name")
IGNORED = "accepted and ignored: this project has no such model"


def _text(value):
    if value == "":
        return None  # their clients send "" for an unused text
    if not value.strip():
        raise invalid("must not be blank")
    return value


def _integer_text(value):
    if value.strip() and not (value.strip().isdigit() and 0 <= int(value) <= 9):
        raise invalid("must be an integer from 0 to 9, or \"\"")
    return value


def _number_text(value):
    if value.strip():
        try:
            number = float(value)
        except ValueError:
            raise invalid("must be a number, or \"\"") from None
        if not math.isfinite(number):
            raise invalid("must be a finite number")
    return value


Count = Annotated[int, Field(ge=1, le=MAX_K)]
Flag = Annotated[bool | None, Field(description=IGNORED)]


class KnnRequest(ApiModel):
    """clip-retrieval's knn-service request. The query is the first of text, image, image_url and
    embedding_input given (null or "" is not given)."""

    missing_hint: ClassVar[str] = f"clip-retrieval requests carry {', '.join(REQUIRED)}"

    text: Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_text)] | None = None
    image: Annotated[str, AfterValidator(lambda v: base64_image(v) if v else None)] | None = Field(
        None, description="an image, base64")
    image_url: Annotated[str, Field(max_length=4096), AfterValidator(lambda v: v or None)] | None = Field(
        None, description="fetched by the server only when started with --allow-image-url")
    embedding_input: Embedding | None = None
    modality: Literal["image"] = Field(description="only image search: this index has no captions")
    num_images: Count = Field(description="results that carry metadata")
    indice_name: IndexName
    num_result_ids: Count | None = Field(None, description="results to return (default num_images)")
    deduplicate: bool | None = Field(None, description="drop near-duplicates (cosine >= 0.94)")
    use_mclip: Flag = None
    use_safety_model: Flag = None
    use_violence_detector: Flag = None
    aesthetic_score: Annotated[int, Field(ge=0, le=9)] | Annotated[str, AfterValidator(_integer_text)] | None = \
        Field(None, description=IGNORED)
    aesthetic_weight: float | Annotated[str, AfterValidator(_number_text)] | None = Field(None, description=IGNORED)

    @field_validator(*REQUIRED, mode="before")
    @classmethod
    def _required(cls, value, info):
        if value is None:  # null counts as missing, as in clip-retrieval
            raise PydanticCustomError("missing_field", "missing field '{name}'; {hint}",
                                      {"name": info.field_name, "hint": cls.missing_hint})
        if info.field_name == "modality" and isinstance(value, str) and value != "image":
            raise invalid("'{modality}' searches captions, and this index has none; use 'image'", modality=value)
        return value

    @model_validator(mode="after")
    def _has_query(self):
        self.query()
        return self

    def query(self):
        """``(field name, value)`` of the query; every field given has been checked, not only this one."""
        for name in QUERY_FIELDS:
            if getattr(self, name) is not None:
                return name, getattr(self, name)
        raise PydanticCustomError("no_query", "no query; give one of: {names}", {"names": ", ".join(QUERY_FIELDS)})


class MetadataRequest(ApiModel):
    """clip-retrieval's metadata request: the image path and URL of each id."""

    missing_code: ClassVar[str] = "invalid_argument"
    missing_hint: ClassVar[str] = "ids must be a list of image ids"

    ids: Annotated[list[ImageId], Field(max_length=MAX_K)]
    indice_name: IndexName | None = Field(None, description="required when ids is not empty")

    @model_validator(mode="after")
    def _named(self):
        if self.ids and self.indice_name is None:
            raise PydanticCustomError("missing_field", "missing field 'indice_name'")
        return self
