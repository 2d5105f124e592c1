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
import re
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
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # legal in file names, not in a header


def id_url(endpoint, **options):
    """``url(image_id)``, equal to ``url_for(endpoint, image_id=image_id, **options)``.

    ``url_for`` takes about 45 us a call, and a page of 2,000 results links
    each twice, so a response builds each route once and fills in the ids.
    """
    head, _, tail = url_for(endpoint, image_id=_ID_MARK, **options).rpartition(str(_ID_MARK))
    return lambda image_id: f"{head}{int(image_id)}{tail}"


@bp.get("/images/<int:image_id>")
def image(image_id):
    as_attachment = _download_requested()
    f, record = _open_recorded(image_id)
    mimetype = mimetypes.guess_type(record.path)[0] or "application/octet-stream"
    try:
        # Content-Disposition (RFC 6266) with the file's own name; filename* when it is not ASCII
        response = send_file(f, mimetype=mimetype, conditional=False, etag=record.sha256, max_age=MAX_AGE,
                             last_modified=record.mtime_ns / 1e9, as_attachment=as_attachment,
                             download_name=_CONTROL.sub("_", record.path.rpartition("/")[2]))
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


def _download_requested():
    values = request.args.getlist("download")
    if values not in ([], ["1"]):
        raise bad_request(f"download must be 1 (to save the file rather than show it), got {', '.join(values)!r}")
    return bool(values)


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
        for folder in (os.path.dirname(os.path.dirname(path)), os.path.dirname(path)):  # thumbnails/SIZE/
            try:
                os.mkdir(folder)  # not makedirs: a bundle folder moved away must not be made anew
            except FileExistsError:
                pass
        with atomic_file(path, durable=False) as f:  # a cache: a power loss may lose it
            f.write(data)
    except OSError as e:  # a read-only bundle still serves thumbnails, just uncached
        log.warning("cannot cache thumbnail %s: %s", path, e)


def _open_recorded(image_id):
    """The open file and record of an indexed image, only while it is the file that was indexed.

    The path comes only from the bundle, and is refused unless it lies inside
    the folder the operator serves (``Service.photo_folder``). The file is
    opened without following a symlink in its own name, and must still be
    the file recorded at indexing: same device and inode (bundles of metadata
    format 2), ctime where recorded, size and mtime. Its real path must lie
    inside the photo folder, unless ``--follow-links`` allows linked folders
    anywhere. The checks are made on the open descriptor, so the file cannot
    be swapped between the check and the read.
    """
    if image_id > MAX_ID:  # the route takes non-negative integers only
        raise bad_request(f"id must be an integer from 0 to {MAX_ID}, got {image_id}")
    service = current_service()
    bundle = service.bundle
    record = bundle.record(image_id)  # UnknownIdError: 404
    root = service.photo_folder(bundle)
    path = root and os.path.abspath(os.path.join(root, *record.path.split("/")))
    if not path or not _inside(root, path):  # a crafted bundle must not reach outside
        raise ApiError(404, "image_unavailable", f"image {image_id} has a path outside the photo folder")
    try:
        # no FIFO put in its place may block the thread, and no symlink put in its place is followed
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise _unavailable(image_id, FileNotFoundError("the file was moved or deleted since it was indexed")) from None
    except OSError as e:  # ELOOP: the photo is now a symlink
        raise _unavailable(image_id, e) from e
    f = os.fdopen(fd, "rb")
    try:
        _check_identity(image_id, os.fstat(fd), record)
        if not service.config.follow_links and not _inside(root, _real_path(fd, path)):
            raise _unavailable(image_id, OSError("the file is reached through a link out of the photo folder"))
    except BaseException:
        f.close()
        raise
    return f, record


def _check_identity(image_id, st, record):
    recorded = (record.size, record.mtime_ns)
    found = (st.st_size, st.st_mtime_ns)
    if record.ino is not None:  # format 1 bundles recorded no identity: size and mtime only
        recorded += (record.dev, record.ino)
        found += (st.st_dev, st.st_ino)
    if record.ctime_ns is not None:
        recorded += (record.ctime_ns,)
        found += (st.st_ctime_ns,)
    if not stat.S_ISREG(st.st_mode) or found != recorded:
        raise _unavailable(image_id, OSError("the file has changed since it was indexed"))


def _real_path(fd, path):
    try:  # Linux names the open file itself: no window between the check and the read
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)


def _inside(folder, path):
    return os.path.commonpath([folder, path]) == folder


def _unavailable(image_id, cause):
    message = getattr(cause, "strerror", None) or str(cause)
    return ApiError(404, "image_unavailable", f"image {image_id} cannot be read: {message}; re-run the indexer")
