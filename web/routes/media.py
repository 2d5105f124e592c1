"""Original images and JPEG thumbnails, by image id only: no route takes a file path.

Thumbnails are cached in ``BUNDLE/thumbnails/``, which the indexer never walks
(it skips the bundle). The cache key includes the file's content hash, so a
re-indexed file gets a fresh thumbnail; files are written with
``search.store.atomic.atomic_file``, so a reader never sees half a JPEG.
"""

import io
import logging
import mimetypes
import os
import stat

from flask import Blueprint, request, send_file, url_for

from search.encoding.images import load_image
from search.errors import ImageError
from search.store.atomic import atomic_file

from ..errors import ApiError, bad_request
from ..schema.types import MAX_ID
from ..service import current_service

log = logging.getLogger(__name__)
bp = Blueprint("media", __name__, url_prefix="/api")
THUMBNAIL_DIR = "thumbnails"
MAX_AGE = 3600
_ID_MARK = 9_081_726_354_123  # stands for the image id in a URL built once


def id_url(endpoint, **options):
    """``url(image_id)``, equal to ``url_for(endpoint, image_id=image_id, **options)``.

    ``url_for`` takes about 45 us a call, and a page of 2,000 results links
    each twice, so a response builds each route once and fills in the ids.
    """
    head, _, tail = url_for(endpoint, image_id=_ID_MARK, **options).rpartition(str(_ID_MARK))
    return lambda image_id: f"{head}{int(image_id)}{tail}"


@bp.get("/images/<int:image_id>")
def image(image_id):
    f, record = _open_recorded(image_id)
    mimetype = mimetypes.guess_type(record.path)[0] or "application/octet-stream"
    try:
        response = send_file(f, mimetype=mimetype, conditional=False, etag=record.sha256, max_age=MAX_AGE,
                             last_modified=record.mtime_ns / 1e9)
        response.content_length = record.size  # checked on the open file: Range requests work
        return response.make_conditional(request.environ, accept_ranges=True, complete_length=record.size)
    except BaseException:  # a 416 for a bad Range: the file is not handed to the server
        f.close()
        raise


@bp.get("/thumbnails/<int:image_id>")
def thumbnail(image_id):
    service = current_service()
    scale = request.args.get("scale", "1")  # 2: for srcset on screens of two or more device pixels per pixel
    if scale not in ("1", "2"):
        raise bad_request(f"scale must be 1 or 2, got {scale[:20]!r}")
    f, record = _open_recorded(image_id)
    size = service.config.thumbnail_size * int(scale)
    cached = os.path.join(service.bundle.path, THUMBNAIL_DIR, str(size), f"{image_id}-{record.sha256[:16]}.jpg")
    etag = f"{record.sha256[:16]}-{size}"
    with f:
        try:
            with open(cached, "rb") as thumb:  # a few kB: read whole, no file left open on a dropped connection
                data = thumb.read()
        except OSError:
            data = make_thumbnail(f, size, service.config.max_pixels, image_id)
            _store(cached, data)
    return send_file(io.BytesIO(data), mimetype="image/jpeg", conditional=True, etag=etag, max_age=MAX_AGE)


def make_thumbnail(source, size, max_pixels, image_id):
    """JPEG bytes of the image in ``source`` (a path or file) with its longest side at most ``size``."""
    try:
        img, _ = load_image(source, max_pixels=max_pixels, min_size=size)
    except (ImageError, OSError) as e:  # the file changed or vanished since indexing
        raise _unavailable(image_id, e) from e
    img.thumbnail((size, size))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85, optimize=True)
    return out.getvalue()


def _store(path, data):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_file(path, durable=False) as f:  # a cache: a power loss may lose it
            f.write(data)
    except OSError as e:  # a read-only bundle still serves thumbnails, just uncached
        log.warning("cannot cache thumbnail %s: %s", path, e)


def _open_recorded(image_id):
    """The open file and record of an indexed image, only while it is the file that was indexed.

    The path comes only from the bundle, and the file must still have the size
    and modification time recorded when it was indexed (the indexer's own test
    for "unchanged"): a photo replaced since, by another file or a symlink to
    one, is not served. The checks are made on the open file, so the file
    cannot be swapped between the check and the read.
    """
    if image_id > MAX_ID:  # the route takes non-negative integers only
        raise bad_request(f"id must be an integer from 0 to {MAX_ID}, got {image_id}")
    bundle = current_service().bundle
    record = bundle.record(image_id)  # UnknownIdError: 404
    root = os.path.abspath(bundle.root)
    path = os.path.abspath(os.path.join(root, *record.path.split("/")))
    if os.path.commonpath([root, path]) != root:  # a damaged record must not reach outside the photos
        raise ApiError(404, "image_unavailable", f"image {image_id} has a path outside the photo folder")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO put in its place must not block the thread
    except FileNotFoundError:
        raise _unavailable(image_id, FileNotFoundError("the file was moved or deleted since it was indexed")) from None
    except OSError as e:
        raise _unavailable(image_id, e) from e
    f = os.fdopen(fd, "rb")
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or (st.st_size, st.st_mtime_ns) != (record.size, record.mtime_ns):
        f.close()
        raise _unavailable(image_id, OSError("the file has changed since it was indexed"))
    return f, record


def _unavailable(image_id, cause):
    message = getattr(cause, "strerror", None) or str(cause)
    return ApiError(404, "image_unavailable", f"image {image_id} cannot be read: {message}; re-run the indexer")
