"""The library without a query: ``/api/browse`` (newest first), ``/api/facets`` and ``/api/photos/<id>``.

Browsing and facets are the library's (``search.query.browse``,
``search.query.facets``); the routes validate and shape.
"""

import threading
import weakref

from flask import Blueprint, jsonify, request

from search.query.browse import browse as browse_library
from search.query.facets import facets as library_facets

from ..errors import bad_request
from ..schema import parse
from ..schema.browse import BrowseQuery
from ..schema.types import MAX_ID
from ..service import current_service
from .results import Shaper

bp = Blueprint("browse", __name__, url_prefix="/api")
_facets = weakref.WeakKeyDictionary()  # by bundle: a generation never changes, and a reload drops its entry
_facets_lock = threading.Lock()


@bp.get("/browse")
def browse():
    query = parse.from_query_string(BrowseQuery, request.args)
    bundle = current_service().bundle
    page = browse_library(bundle.metadata, query.filters(), query.limit, query.cursor, count=bundle.count)
    return jsonify({"results": Shaper().page(bundle, page.records, collapse=query.collapse),
                    "next_cursor": page.next_cursor, "total": page.total})


@bp.get("/facets")
def facets():
    bundle = current_service().bundle
    with _facets_lock:
        found = _facets.get(bundle)
    if found is None:  # two first requests may both count: the same answer, and no lock held while counting
        found = library_facets(bundle.metadata).to_dict()
        with _facets_lock:
            _facets[bundle] = found
    return jsonify(found)


@bp.get("/photos/<int:image_id>")
def photo(image_id):
    if image_id > MAX_ID:
        raise bad_request(f"id must be an integer from 0 to {MAX_ID}, got {image_id}")
    return jsonify(Shaper().photo(current_service().bundle.record(image_id)))  # unknown: a 404 unknown_id
