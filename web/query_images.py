"""Query images (uploads, base64, ``image_url``) decoded within the query limits, before the searcher sees them.

The searcher decodes whatever image it is handed with the indexer's limits;
the service's own are tighter (``--max-query-pixels``, one decode per core,
no more pixels than the model needs: ``search.encoding.images.load_query_image``),
so the routes hand it decoded, reduced images instead of encoded bytes.
"""

import dataclasses

from search.encoding.images import load_query_image
from search.query.terms import QueryKind


def decoded(terms, service):
    """``terms`` with the encoded bytes of each image term replaced by its decoded image."""
    return [_decoded(term, service) if term.kind is QueryKind.IMAGE and isinstance(term.value, bytes) else term
            for term in terms]


def _decoded(term, service):
    image, _ = load_query_image(term.value, service.config.max_query_pixels, service.searcher.encoder.image_size)
    return dataclasses.replace(term, value=image)
