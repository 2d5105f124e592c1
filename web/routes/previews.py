"""``GET /api/previews/<id>``: the photo as a screen-sized JPEG, whatever its format (HEIC, TIFF, PNG...).

A viewer shows this rather than the original: a browser cannot show HEIC or
TIFF, and a 12-megapixel original is several times the bytes a screen needs.
Previews are cached in ``BUNDLE/previews/`` as thumbnails are, keyed by the
file's content hash, and made by the same code (``media.make_thumbnail``).
"""

import io
import os

from flask import Blueprint, send_file

from ..service import current_service
from .media import MAX_AGE, _open_recorded, _store, make_thumbnail

bp = Blueprint("previews", __name__, url_prefix="/api")
PREVIEW_DIR = "previews"
PREVIEW_SIZE = 2048  # longest side: a full-HD or 2K screen's width, sharp on most laptops at full screen


@bp.get("/previews/<int:image_id>")
def preview(image_id):
    service = current_service()
    f, record = _open_recorded(image_id)
    key = f"{image_id}-{record.sha256[:16]}"
    cached = os.path.join(service.bundle.path, PREVIEW_DIR, str(PREVIEW_SIZE), f"{key}.jpg")
    with f:
        try:
            with open(cached, "rb") as saved:  # read whole: no file left open on a dropped connection
                data = saved.read()
        except OSError:
            data = make_thumbnail(f, PREVIEW_SIZE, service.config.max_pixels, image_id)
            _store(cached, data)
    return send_file(io.BytesIO(data), mimetype="image/jpeg", conditional=True, etag=f"{key}-{PREVIEW_SIZE}",
                     max_age=MAX_AGE)
