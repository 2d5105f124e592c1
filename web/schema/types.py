"""The field types of the API's request models: each carries its checks and its JSON Schema.

Two facts belong to the server, not to the code: the index's dimension and
name. Validation reads them from the context (``{"dim", "index_name"}``,
see :func:`web.schema.parse.validate`), and :class:`ServedSchema` writes them
into the served OpenAPI document, so both say the same.
"""

import base64
import binascii
import re
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import PydanticCustomError, core_schema

MAX_ID = (1 << 63) - 1  # ids are SQLite integers
MAX_EMBEDDING_VALUE = 1e6  # per component: the float32 vector and its norm stay finite (1e20 squared is not)
# Characters of a query text, checked before tokenising: the model reads 77 tokens (about this much
# English), and byte-pair encoding costs the square of a word's length (benchmarks/RESULTS.md).
MAX_TEXT = 300
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)


class ApiModel(BaseModel):
    """A request body: no unknown fields, no NaN or Infinity; JSON bodies are validated strictly
    (a JSON ``true`` is not an integer, ``"5"`` is not a number)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    missing_code: ClassVar[str] = "missing_field"  # the error code of an absent required field
    missing_hint: ClassVar[str | None] = None  # said after "missing field 'x'"


def invalid(message, **values):
    """The error a validator raises for a bad value: a 400 ``invalid_argument``."""
    return PydanticCustomError("invalid_argument", message, values)


class _ServedValue:
    """A marker whose value is the server's: validated against the context, filled in by ServedSchema."""

    key = None

    def __get_pydantic_core_schema__(self, source, handler):
        return core_schema.with_info_after_validator_function(self.check, handler(source),
                                                              metadata={"photosearch_served": self.key})


class IndexDimension(_ServedValue):
    key = "dim"

    @staticmethod
    def check(vector, info):
        dim = info.context["dim"]
        if len(vector) != dim:
            raise invalid("has {count} values; this index has dimension {dim}", count=len(vector), dim=dim)
        if not any(vector):
            raise invalid("is all zeros, which has no direction to search in")
        return vector


class ServedIndexName(_ServedValue):
    key = "index_name"

    @staticmethod
    def check(name, info):
        served = info.context["index_name"]
        if name == "":  # clip-retrieval's front end asks before its list of indices arrives: the one served
            return served
        if name != served:
            raise PydanticCustomError("unknown_index", "unknown index '{name}'; available: {served}",
                                      {"name": name, "served": served})
        return name


class ServedSchema(GenerateJsonSchema):
    """JSON Schema of the models as one server has them: its ``dim`` and ``index_name`` filled in.
    Make one with :meth:`of`."""

    dim = None
    index_name = None

    @classmethod
    def of(cls, dim, index_name):
        return type(cls.__name__, (cls,), {"dim": dim, "index_name": index_name})

    def field_title_should_be_set(self, schema):
        return False  # "title": "Min Score" beside the name min_score says nothing

    def nullable_schema(self, schema):
        # A field that may be null keeps its description on the field, where generators look for it.
        json_schema = super().nullable_schema(schema)
        branches = json_schema.get("anyOf", [])
        if branches and "description" in branches[0]:
            json_schema = {"description": branches[0].pop("description"), **json_schema}
        return json_schema

    def default_schema(self, schema):
        # A None default of a field that cannot be null means "absent", which JSON Schema says by leaving it out.
        json_schema = super().default_schema(schema)
        if json_schema.get("default", ...) is None and "anyOf" not in json_schema:
            del json_schema["default"]
        return json_schema

    def function_after_schema(self, schema):
        json_schema = super().function_after_schema(schema)
        served = (schema.get("metadata") or {}).get("photosearch_served")
        if served == "dim":
            json_schema = {**json_schema, "minItems": self.dim, "maxItems": self.dim}
        elif served == "index_name":
            json_schema = {"enum": [self.index_name, ""], **json_schema}
        return json_schema


def base64_image(value):
    """Bytes of a base64 image, bare (as clip-retrieval sends it) or as a ``data:`` URL."""
    match = _DATA_URL.match(value)
    if match:
        value = value[match.end():]
    elif value.startswith("data:"):
        raise invalid("is a data: URL but not a base64 one")
    try:
        data = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise invalid("is not valid base64") from None
    if not data:
        raise invalid("is empty")
    return data


ImageId = Annotated[int, Field(ge=0, le=MAX_ID)]
def _not_blank(text):
    if not text.strip():
        raise invalid("must not be blank")
    return text


# The pattern is for the document; the validator says what is wrong in words.
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT, json_schema_extra={"pattern": r"\S"}),
                 AfterValidator(_not_blank), Field(description="a description")]
Base64Image = Annotated[str, AfterValidator(base64_image),
                        Field(description="an image, base64, bare or as a data: URL")]
Component = Annotated[float, Field(ge=-MAX_EMBEDDING_VALUE, le=MAX_EMBEDDING_VALUE)]
Embedding = Annotated[list[Component], IndexDimension(),
                      Field(description="a vector of the index's dimension, not all zero, used as given")]
IndexName = Annotated[str, ServedIndexName(), Field(description="the name of the served index (\"\": the one served)")]
