"""Searching a bundle by text, image, id, vector or a weighted mix of them."""

import numpy as np

from . import ranking
from ..store.bundle import Bundle
from ..errors import InvalidArgumentError
from ..encoding.images import DEFAULT_MAX_PIXELS
from .terms import QueryTerm


def excluded_ids(terms):
    """A query of one image id ("more like this") leaves that image out of its results."""
    return (terms[0].value,) if len(terms) == 1 and terms[0].kind == "id" else ()


class Searcher:
    """A bundle plus the encoder of its embedding space."""

    def __init__(self, bundle, encoder, max_pixels=DEFAULT_MAX_PIXELS):
        bundle.fingerprint.check_same_space(encoder.fingerprint, where=f"the index at {bundle.path}")
        self.bundle = bundle
        self.encoder = encoder
        self.max_pixels = max_pixels

    @classmethod
    def open(cls, index_dir, model=None, pretrained=None, device="auto", **kwargs):
        """Open a bundle with the model recorded in it (``model``/``pretrained`` override)."""
        from ..encoding.encoder import load_encoder  # torch and open_clip load only here

        bundle = Bundle.open(index_dir)
        fp = bundle.fingerprint
        encoder = load_encoder(model or fp.name, pretrained or fp.pretrained, device=device, config=fp.config)
        return cls(bundle, encoder, **kwargs)

    def text_vector(self, text):
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgumentError("text must be a non-empty string")
        return self.encoder.encode_texts([text])[0]

    def image_vector(self, source):
        """``source``: a path, bytes, file object or PIL image."""
        return self.encoder.embed_image(source, max_pixels=self.max_pixels)

    def vector_of(self, term):
        if term.kind == "text":
            return self.text_vector(term.value)
        if term.kind == "image":
            return self.image_vector(term.value)
        if term.kind == "id":
            return self.bundle.vector(term.value)
        if term.kind == "embedding":
            vector = np.asarray(term.value, dtype=np.float32).reshape(-1)
            if vector.shape != (self.bundle.dim,):
                raise InvalidArgumentError(
                    f"embedding has {vector.size} values; this index has dimension {self.bundle.dim}"
                )
            return ranking.normalize(vector)
        raise InvalidArgumentError(f"unknown query kind {term.kind!r}")

    def query_vector(self, terms):
        """The normalised weighted sum of the terms' vectors."""
        terms = list(terms)
        if not terms:
            raise InvalidArgumentError("a query needs at least one term")
        vectors = np.stack([self.vector_of(t) for t in terms])
        return ranking.combine(vectors, [t.weight for t in terms])

    def search(self, terms, **options):
        """Search by query terms; options as :meth:`Bundle.search`.

        A query made of a single image id leaves that image out ("more like this").
        """
        terms = list(terms)
        options.setdefault("exclude", excluded_ids(terms))
        return self.bundle.search(self.query_vector(terms), **options)

    def search_text(self, text, **options):
        return self.search([QueryTerm("text", text)], **options)

    def search_image(self, source, **options):
        return self.search([QueryTerm("image", source)], **options)

    def search_id(self, image_id, **options):
        return self.search([QueryTerm("id", image_id)], **options)

    def search_vector(self, vector, **options):
        return self.search([QueryTerm("embedding", vector)], **options)
