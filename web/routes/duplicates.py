"""``GET /api/duplicates``: the bundle's groups of duplicate photos, found once per generation and threshold.

Finding them asks the index for every photo's neighbours, seconds to
minutes on a large collection: the first request starts the work in a
background thread and is answered 202 ``computing``; later ones get the
groups. A new generation of the bundle starts afresh.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

from flask import Blueprint, current_app, jsonify, request

from search.quality.duplicates import find_duplicates

from ..schema import parse
from ..schema.duplicates import DuplicatesQuery
from ..service import current_service
from .media import id_url

bp = Blueprint("duplicates", __name__)
KEPT = 4  # reports kept per process: a few thresholds of the live generation


@bp.get("/api/duplicates")
def duplicates():
    query = parse.from_query_string(DuplicatesQuery, request.args)
    service = current_service()
    bundle = service.bundle
    threshold = query.threshold if "threshold" in query.model_fields_set else service.config.duplicate_threshold
    job = _jobs().get(bundle, round(threshold, 4))
    if not job.done():
        return jsonify({"status": "computing", "threshold": threshold, "photos": bundle.count}), 202
    report = job.result()
    thumbnail = id_url("media.thumbnail")
    groups = []
    for group in report.groups[query.offset:query.offset + query.limit]:
        shown = group.to_dict()
        for item in shown["files"]:
            item["thumbnail_url"] = thumbnail(item["id"])
        groups.append(shown)
    body = report.to_dict()
    body.update(status="ready", total_groups=len(report.groups), groups=groups)
    body.pop("seconds")
    return jsonify(body)


class _Jobs:
    """Reports by (bundle folder, generation, threshold), computed one at a time in a background thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._jobs = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="duplicates")

    def get(self, bundle, threshold):
        key = (bundle.path, bundle.manifest.generation, threshold)
        with self._lock:
            job = self._jobs.get(key)
            if job is None or (job.done() and job.exception() is not None):  # a failed run is tried again
                job = self._jobs[key] = self._pool.submit(find_duplicates, bundle, threshold)
                for old in list(self._jobs)[:-KEPT]:
                    del self._jobs[old]
            return job


def _jobs():
    with _CREATE:
        return current_app.extensions.setdefault("photosearch.duplicates", _Jobs())


_CREATE = threading.Lock()
