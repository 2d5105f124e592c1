"""What one process serves: a :class:`search.Searcher`, loaded once, and timed queries over it.

Routes call :func:`current_service`; they never open bundles or models.
"""

import logging
import os
import threading
import time

import numpy as np
from flask import current_app
from PIL import Image

from search.query import ranking
from search.store.bundle import Bundle
from search.errors import SearchError
from search.store.manifest import MANIFEST
from search.query.searcher import Searcher, excluded_ids
from search.query.terms import QueryTerm

from .texts import TextVectors

log = logging.getLogger(__name__)


def load_searcher(config):
    """Open the bundle and its model (or the override) and warm both up."""
    started = time.perf_counter()
    searcher = Searcher.open(config.index, model=config.model, pretrained=config.pretrained,
                             device=config.device, max_pixels=config.max_pixels)
    searcher.bundle.coalesce_searches()  # concurrent requests' searches share index calls
    if config.warmup:
        warm_up(searcher)
    log.info("serving %d images from %s with %s (ready in %.1f s)", searcher.bundle.count, config.index,
             searcher.encoder.fingerprint.describe(), time.perf_counter() - started)
    return searcher


def warm_up(searcher):
    # The first call into torch allocates and picks kernels; pay for it now,
    # not in the first user's query.
    text = searcher.text_vector("a photo")
    searcher.image_vector(Image.new("RGB", (64, 64), (128, 128, 128)))
    searcher.bundle.search(text, k=1)


class Service:
    """The searcher of this process, its settings and metrics; swaps in newer index generations."""

    def __init__(self, config, searcher, metrics):
        self.config = config
        self.searcher = searcher
        self.metrics = metrics
        self.metrics.images.set(searcher.bundle.count)
        self._manifest_stamp = _stamp(searcher.bundle.path)
        self._next_check = time.monotonic() + config.reload_interval
        self._reloading = threading.Lock()
        # The model never changes in a process (a reload keeps it), so neither do the text vectors.
        self.texts = TextVectors(searcher.encoder.encode_texts, cache_size=config.text_cache_size)

    @property
    def bundle(self):
        return self.searcher.bundle

    @property
    def model_name(self):
        return self.searcher.encoder.fingerprint.name

    def refresh(self):
        """Open the bundle afresh when the indexer has committed a new generation since.

        Checked at most every ``reload_interval`` seconds, by one thread; the
        model stays loaded. Requests in flight keep the searcher they started with.
        """
        now = time.monotonic()
        if now < self._next_check or not self._reloading.acquire(blocking=False):
            return
        try:
            self._next_check = now + self.config.reload_interval
            stamp = _stamp(self.bundle.path)
            if stamp == self._manifest_stamp:
                return
            old = self.searcher
            try:
                bundle = Bundle.open(old.bundle.path).coalesce_searches()
                self.searcher = Searcher(bundle, old.encoder, max_pixels=old.max_pixels)
            except SearchError as e:  # a different model, a damaged bundle: keep serving the old one
                log.error("not switching to the rebuilt index: %s", e)
            else:
                log.info("index reloaded: generation %d, %d images", self.bundle.manifest.generation, self.bundle.count)
                self.metrics.images.set(self.bundle.count)
            self._manifest_stamp = stamp
        finally:
            self._reloading.release()

    def search(self, terms, k, offset=0, min_score=None, path_prefix=None, deduplicate=False):
        """``(SearchPage, took_ms)``; a lone id term leaves that image out ("more like this")."""
        started = time.perf_counter()
        searcher = self.searcher  # one generation for the whole query
        kind = terms[0].kind if len(terms) == 1 else "combined"
        with self.metrics.stage("embed", kind):
            vector = searcher.query_vector([self._text_as_vector(t) for t in terms])
        exclude = excluded_ids(terms)
        with self.metrics.stage("search", kind):
            page = searcher.bundle.search(vector, k=k, offset=offset, min_score=min_score,
                                          path_prefix=path_prefix, exclude=exclude)
        if deduplicate and len(page.results) > 1:
            with self.metrics.stage("deduplicate", kind):
                rows = searcher.bundle.rows_of([r.id for r in page.results])
                keep = ranking.deduplicate(np.asarray(searcher.bundle.vectors[rows], dtype=np.float32))
                page.results = [page.results[i] for i in keep]
        return page, round((time.perf_counter() - started) * 1000, 3)


    def _text_as_vector(self, term):
        if term.kind != "text":
            return term
        return QueryTerm("embedding", self.texts.vector(term.value), term.weight)


def _stamp(bundle_dir):
    # The indexer replaces manifest.json (os.replace) on every commit: a new inode and mtime.
    try:
        st = os.stat(os.path.join(bundle_dir, MANIFEST))
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def current_service():
    return current_app.extensions["photosearch"]
