"""From a request to a validated model, or a 400 in the one error shape.

JSON bodies are parsed whatever their content type (as clip-retrieval does)
and validated strictly; query strings and multipart forms carry only strings,
so their numbers are read from text. A field given twice, in any of them, is
a 400: which one would count is a guess.
"""

import json
import re
import typing

from flask import request
from pydantic import BaseModel, ValidationError

from ..errors import ApiError, bad_request
from ..service import current_service

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # paired or not: the check below tells
_OUR_CODES = {"invalid_argument", "no_query", "several_queries", "missing_field", "unknown_index"}


def served_context():
    """What the models check against: this server's index dimension and name."""
    service = current_service()
    return {"dim": service.bundle.dim, "index_name": service.config.index_name}


def from_json(model):
    return validate(model, json_body())


def from_query_string(model, args):
    return validate(model, _single_values(args, "query string"), strict=False, where="query string")


def from_form(model, form, files):
    """A multipart body: its form fields and its files (as bytes), each given once."""
    values = _single_values(form, "form")
    for name, upload in _single_values(files, "form").items():
        if name in values:
            raise bad_request(f"{name!r} is given more than once in the form; give it once")
        values[name] = upload.read()
    return validate(model, values, strict=False, where="form")


def validate(model, data, strict=True, where="request"):
    """``model`` of ``data`` (``strict``: JSON types as they are), or the ApiError of its first problem."""
    try:
        return model.model_validate(data, strict=strict, context=served_context())
    except ValidationError as e:
        raise _api_error(model, e.errors(include_url=False), where) from None


def json_body():
    """The request body as a JSON object, whatever its content type."""
    raw = request.get_data(cache=True)  # over MAX_CONTENT_LENGTH this raises a 413
    try:
        body = json.loads(raw, parse_constant=_reject_constant, object_pairs_hook=_object)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", f"the request body must be a JSON object, not {_kind(body)}")
    if _SURROGATE_ESCAPE.search(raw):
        _check_characters(body)
    return body


def _check_characters(body):
    """A ``\\ud800`` escape alone decodes to a string that no encoder (SQLite's, the tokenizer's) accepts."""
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_json", "the request body has a \\uD800-\\uDFFF escape that is not half of "
                                            "a surrogate pair, which is no character") from None


def _object(pairs):
    body = dict(pairs)
    if len(body) < len(pairs):
        seen = set()
        repeated = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise bad_request(f"{repeated!r} is given more than once in a JSON object; give it once")
    return body


def _reject_constant(name):
    raise ValueError(f"{name} is not allowed in JSON")


def _single_values(values, where):
    """A MultiDict as a dict, refusing repeated fields and parts without a name (Werkzeug files those under None)."""
    if None in values:
        raise ApiError(400, "unknown_field", f"a part of the {where} has no name")
    repeated = sorted(key for key, items in values.lists() if len(items) > 1)
    if repeated:
        raise bad_request(f"{repeated[0]!r} is given more than once in the {where}; give it once")
    return values.to_dict()


def _api_error(model, errors, request_part):
    # An unknown field first (the other fields may be misread around it), then our own checks, whose
    # messages say more than a type error of another branch of a union.
    error = next((e for e in errors if e["type"] == "extra_forbidden"),
                 next((e for e in errors if e["type"] in _OUR_CODES), errors[0]))
    kind, loc = error["type"], error["loc"]
    if kind == "extra_forbidden":
        parent, holder = _locate(model, loc[:-1])
        return ApiError(400, "unknown_field", f"unknown field {loc[-1]!r} in {parent or 'the ' + request_part}; "
                                              f"allowed fields: {', '.join(sorted(holder.model_fields))}")
    where, _ = _locate(model, loc)
    if kind == "missing":
        hint = f"; {model.missing_hint}" if model.missing_hint else ""
        return ApiError(400, model.missing_code, f"missing field {where!r}{hint}")
    message = error["msg"]
    if kind not in _OUR_CODES:
        message = message[:1].lower() + message[1:] + _got(error.get("input"))
    code = kind if kind in _OUR_CODES else "invalid_argument"
    if not where or code == "missing_field":  # a missing field's message names it
        return ApiError(400, code, message)
    return ApiError(400, code, f"{where}: {message}")


def _locate(model, loc):
    """``(path, model)`` of an error location: ``("queries", 0, "weight")`` is ``queries[0].weight`` in a
    :class:`Term`. The names pydantic gives the branches of a union (``str``, ``function-after[...]``)
    are left out."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in model.model_fields:
            path += f".{part}" if path else part
            model = _model_in(model.model_fields[part].annotation) or model
    return path, model


def _model_in(annotation):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_model_in, typing.get_args(annotation)) if m), None)


def _got(value):
    if isinstance(value, (bool, int, float)) or value is None:
        return f", got {value!r}"
    if isinstance(value, str) and len(value) <= 40:
        return f", got {value!r}"
    return ""  # a long text or a whole object would drown the message


def _kind(value):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)
