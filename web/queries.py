"""Turning a ``/api/search`` request (JSON, multipart form or query string) into query terms and options.

A query is exactly one of ``text``, ``image``, ``embedding``, ``id`` or
``queries`` (a list of such terms, each with a ``weight``); options are ``k``,
``offset``, ``min_score`` and ``path_prefix``.
"""

from dataclasses import dataclass

from search.store.bundle import MAX_K
from search.query.terms import QueryTerm

from . import fields
from .errors import ApiError, bad_request

DEFAULT_K = 24
MAX_API_K = 1000
MAX_TERMS = 16
MAX_WEIGHT = 100.0
MAX_TEXT = 1000
TERM_KINDS = ("text", "image", "embedding", "id")
OPTIONS = ("k", "offset", "min_score", "path_prefix")


@dataclass
class Options:
    k: int = DEFAULT_K
    offset: int = 0
    min_score: float | None = None
    path_prefix: str | None = None

    def as_kwargs(self):
        return {"k": self.k, "offset": self.offset, "min_score": self.min_score, "path_prefix": self.path_prefix}


def from_json(body, dim):
    """``(terms, options)`` of a JSON request body."""
    fields.only_known(body, TERM_KINDS + ("queries",) + OPTIONS)
    given = [name for name in TERM_KINDS + ("queries",) if body.get(name) is not None]
    if len(given) != 1:
        raise _query_count_error(given, TERM_KINDS + ("queries",))
    if given[0] == "queries":
        terms = _combined(body["queries"], dim)
    else:
        terms = [_term(given[0], body[given[0]], dim, given[0])]
    return terms, options(body)


def from_form(form, files):
    """A multipart upload: the ``image`` file field plus options as form fields."""
    fields.only_known(form, OPTIONS, where="form")
    fields.only_known(files, ("image",), where="form")
    fields.no_repeats(form, "form")
    fields.no_repeats(files, "form")
    upload = files.get("image")
    if upload is None:
        raise ApiError(400, "no_query", "a multipart search needs an 'image' file field")
    data = upload.read()
    if not data:
        raise bad_request("the uploaded image is empty")
    return [QueryTerm("image", data)], options(form, from_text=True)


def from_args(args):
    """``GET /api/search?q=TEXT``: a text query from the query string."""
    fields.only_known(args, ("q",) + OPTIONS, where="query string")
    fields.no_repeats(args, "query string")
    if "q" not in args:
        raise ApiError(400, "no_query", "the query string needs q=TEXT")
    text = fields.string("q", args["q"], MAX_TEXT)
    return [QueryTerm("text", text)], options(args, from_text=True)


def options(source, from_text=False):
    opts = Options()
    if source.get("k") is not None:
        opts.k = fields.integer("k", source["k"], 1, MAX_API_K, from_text)
    if source.get("offset") is not None:
        opts.offset = fields.integer("offset", source["offset"], 0, MAX_K, from_text)
    if source.get("min_score") is not None:
        opts.min_score = fields.number("min_score", source["min_score"], -1.0, 1.0, from_text)
    if source.get("path_prefix") is not None:
        prefix = fields.string("path_prefix", source["path_prefix"], 1024, allow_empty=True).strip("/")
        opts.path_prefix = prefix or None
    return opts


def _combined(items, dim):
    if not isinstance(items, list) or not items:
        raise bad_request("queries must be a non-empty list of terms such as {\"text\": \"beach\", \"weight\": 1}")
    if len(items) > MAX_TERMS:
        raise bad_request(f"queries has {len(items)} terms; at most {MAX_TERMS} are allowed")
    terms = []
    for i, item in enumerate(items):
        where = f"queries[{i}]"
        if not isinstance(item, dict):
            raise bad_request(f"{where} must be an object such as {{\"text\": \"beach\", \"weight\": 1}}")
        fields.only_known(item, TERM_KINDS + ("weight",), where=where)
        given = [name for name in TERM_KINDS if item.get(name) is not None]
        if len(given) != 1:
            raise _query_count_error(given, TERM_KINDS, where)
        weight = item.get("weight", 1.0)
        weight = fields.number(f"{where}.weight", weight, -MAX_WEIGHT, MAX_WEIGHT)
        term = _term(given[0], item[given[0]], dim, f"{where}.{given[0]}")
        term.weight = weight
        terms.append(term)
    return terms


def _term(kind, value, dim, name):
    if kind == "text":
        return QueryTerm("text", fields.string(name, value, MAX_TEXT))
    if kind == "image":
        return QueryTerm("image", fields.base64_image(name, value))
    if kind == "embedding":
        return QueryTerm("embedding", fields.embedding(name, value, dim))
    return QueryTerm("id", fields.image_id(name, value))


def _query_count_error(given, kinds, where="request"):
    if not given:
        return ApiError(400, "no_query", f"the {where} has no query; give one of: {', '.join(kinds)}")
    return ApiError(400, "several_queries", f"the {where} has several queries ({', '.join(given)}); give exactly one, "
                                            "or combine terms in a 'queries' list with weights")
