"""Parsing and checking request fields: every value is checked before the library sees it.

Each checker takes the field's name (for the message) and its raw value and
returns a clean Python value or raises a 400 :class:`ApiError`. ``from_text``
accepts the string form that query strings and multipart forms carry.
"""

import base64
import binascii
import json
import math
import re

from flask import request

from .errors import ApiError, bad_request

MAX_ID = (1 << 63) - 1  # ids are SQLite integers
MAX_EMBEDDING_VALUE = 1e6  # per component of a query vector
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)


def json_body():
    """The request body as a JSON object, whatever its content type (as clip-retrieval parses it)."""
    raw = request.get_data(cache=True)  # over MAX_CONTENT_LENGTH this raises a 413
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", f"the request body must be a JSON object, not {_kind(body)}")
    return body


def _reject_constant(name):
    raise ValueError(f"{name} is not allowed in JSON")


def only_known(body, allowed, where="request"):
    # A multipart part whose name Werkzeug cannot parse arrives under the key None.
    unknown = sorted(set(body) - set(allowed), key=str)
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown field {unknown[0]!r} in the {where}; "
                                             f"allowed fields: {', '.join(sorted(allowed))}")


def no_repeats(values, where):
    """A query string or form (a MultiDict) that gives no field twice: which one would count is a guess."""
    repeated = sorted((key for key, items in values.lists() if len(items) > 1), key=str)
    if repeated:
        raise bad_request(f"{repeated[0]!r} is given more than once in the {where}; give it once")


def integer(name, value, low, high, from_text=False):
    if from_text and isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise bad_request(f"{name} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{name} must be an integer, not {_kind(value)}")
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low} and {high}, got {value}")
    return value


def number(name, value, low=-math.inf, high=math.inf, from_text=False):
    if from_text and isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise bad_request(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_request(f"{name} must be a number, not {_kind(value)}")
    if not math.isfinite(value):
        raise bad_request(f"{name} must be a finite number")
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low} and {high}, got {value}")
    return float(value)


def string(name, value, max_length=1000, allow_empty=False):
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string, not {_kind(value)}")
    if not allow_empty and not value.strip():
        raise bad_request(f"{name} must not be empty")
    if len(value) > max_length:
        raise bad_request(f"{name} is longer than {max_length} characters")
    return value


def boolean(name, value):
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be true or false, not {_kind(value)}")
    return value


def image_id(name, value, from_text=False):
    return integer(name, value, 0, MAX_ID, from_text=from_text)


def embedding(name, value, dim):
    if not isinstance(value, list):
        raise bad_request(f"{name} must be a list of {dim} numbers, not {_kind(value)}")
    if len(value) != dim:
        raise bad_request(f"{name} has {len(value)} values; this index has dimension {dim}")
    # Bounded so that the float32 vector and its norm stay finite (1e20 squared overflows float32).
    return [number(f"{name}[{i}]", v, -MAX_EMBEDDING_VALUE, MAX_EMBEDDING_VALUE) for i, v in enumerate(value)]


def base64_image(name, value):
    """Bytes of a base64 image, bare (as clip-retrieval sends it) or as a ``data:`` URL."""
    value = string(name, value, max_length=1 << 40)
    match = _DATA_URL.match(value)
    if match:
        value = value[match.end():]
    elif value.startswith("data:"):
        raise bad_request(f"{name} is a data: URL but not a base64 one")
    try:
        data = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{name} is not valid base64") from None
    if not data:
        raise bad_request(f"{name} is empty")
    return data


def _kind(value):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)
