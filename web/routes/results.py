"""The result object of search, browse and ``/api/photos/<id>`` (``web.schema.responses.Photo``/``Result``)."""

from search.query.collapse import collapse_records

from ..service import current_service
from .media import id_url


class Shaper:
    """Result objects of one response; the URL of each route is built once (see ``id_url``)."""

    def __init__(self):
        self.image = id_url("media.image")
        self.download = id_url("media.image", download=1)
        self.thumbnail = id_url("media.thumbnail")
        self.thumbnail_2x = id_url("media.thumbnail", scale=2)
        self.preview = id_url("previews.preview")

    def photo(self, record, score=None):
        """One photo from its ``ImageRecord``; ``score`` only in search results."""
        shown = {"id": record.id, "path": record.path}
        if score is not None:
            shown["score"] = score
        shown.update(
            width=record.width, height=record.height, taken_at=record.taken_at,
            image_url=self.image(record.id), thumbnail_url=self.thumbnail(record.id),
            name=record.path.rpartition("/")[2], folder=record.folder, time=record.time_key, camera=record.camera,
            size=record.size, file_type=record.file_type, thumbnail_url_2x=self.thumbnail_2x(record.id),
            preview_url=self.preview(record.id), download_url=self.download(record.id))
        return shown

    def page(self, bundle, records, scores=None, collapse=False):
        """The results of a page of ``records`` (in its order); ``scores``: by id, for search.

        With ``collapse``, copies on the page (``search.query.collapse``) become
        one result, the first of them, listing the others in ``duplicates``.
        """
        scores = scores or {}
        if not collapse:
            return [self.photo(r, scores.get(r.id)) for r in records]
        return [{**self.photo(first, scores.get(first.id)),
                 "duplicates": [self.photo(r, scores.get(r.id)) for r in rest]}
                for first, *rest in collapse_records(bundle, records, current_service().config.duplicate_threshold)]
