"""What one process serves: a :class:`search.Searcher`, loaded once, and timed queries over it.

The service's searcher is the library's, with two parts of its own: the
batched, cached text encoder (``texts``) and an index search shared by
concurrent requests (``coalesce``). Routes call :func:`current_service`;
they never open bundles or models.
"""

import logging
import os
import threading
import time

from flask import current_app
from PIL import Image

from search.errors import ModelMismatchError, SearchError
from search.query.searcher import Searcher, index_search
from search.query.terms import QueryKind, QueryTerm
from search.store.bundle import Bundle
from search.store.manifest import MANIFEST

from .coalesce import CoalescedSearch
from .texts import TextVectors
from .threads import in_one_thread

log = logging.getLogger(__name__)
RETRY_SECONDS = 10  # between attempts to open a bundle that failed to open


def load_searcher(config):
    """Open the bundle and its model (or the override) and warm both up."""
    started = time.perf_counter()
    searcher = Searcher.open(config.index, model=config.model, pretrained=config.pretrained,
                             device=config.device, precision=config.precision, max_pixels=config.max_pixels)
    if config.warmup:
        warm_up(searcher)
    log.info("serving %d images from %s with %s (ready in %.1f s)", searcher.bundle.count, config.index,
             searcher.encoder.fingerprint.describe(), time.perf_counter() - started)
    return searcher


def warm_up(searcher):
    # The first call into torch allocates and picks kernels; pay for it now,
    # not in the first user's query.
    gray = Image.new("RGB", (64, 64), (128, 128, 128))
    searcher.search([QueryTerm(QueryKind.TEXT, "a photo"), QueryTerm(QueryKind.IMAGE, gray)], k=1)


class Service:
    """The searcher of this process, its settings and metrics; swaps in newer index generations.

    ``searcher`` gives the bundle and the encoder; the service searches
    through its own :class:`Searcher` over them (``self.searcher``).
    """

    def __init__(self, config, searcher, metrics):
        self.config = config
        self.metrics = metrics
        # The model never changes in a process (a reload keeps it), so neither do the text vectors.
        self.texts = TextVectors(searcher.encode_texts, cache_size=config.text_cache_size)
        self.searcher = self._serving(searcher.bundle, searcher.encoder)
        self.metrics.images.set(searcher.bundle.count)
        self._manifest_stamp = _stamp(searcher.bundle.path)
        self._next_check = time.monotonic() + config.reload_interval
        self._reloading = threading.Lock()
        self.problem = None  # why the newest generation on disk is not the one served, or None
        self._given_up = None  # the stamp of a manifest that cannot be served in this process
        # the folder the operator gave: no bundle names a file outside it
        self.photos = os.path.realpath(config.photos or os.path.dirname(searcher.bundle.path))
        self._check_photo_folder()

    @property
    def bundle(self):
        return self.searcher.bundle

    @property
    def model_name(self):
        return self.searcher.encoder.fingerprint.name

    def photo_folder(self, bundle):
        """The real path of ``bundle``'s photo folder, or None when it is outside the served folder
        (``--photos``, by default the bundle folder's parent)."""
        root = os.path.realpath(bundle.root)
        return root if os.path.commonpath([self.photos, root]) == self.photos else None

    def _check_photo_folder(self):
        if self.photo_folder(self.bundle) is None:
            log.warning("the index's photo folder %s is outside %s, so no photo is served; to serve them, "
                        "give --photos %s", self.bundle.root, self.photos, self.bundle.root)

    def health(self):
        """``(status, reason)``: ``ok``; ``degraded`` (still answering from the generation that is open, while
        the bundle on disk is missing or damaged); ``unavailable`` when the open generation cannot answer."""
        try:
            self.bundle.check()
        except SearchError as e:
            return "unavailable", self._public(str(e))
        if self.problem:
            return "degraded", self._public(self.problem)
        return "ok", None

    def _public(self, message):
        # /healthz needs no token: it names the index folder without saying where it is
        return message.replace(self.bundle.path, "INDEX")

    def _serving(self, bundle, encoder):
        return Searcher(bundle, encoder, encode_texts=self.texts.encode_texts,
                        search_index=CoalescedSearch(in_one_thread(index_search(bundle))),
                        max_pixels=self.config.max_pixels)

    def refresh(self):
        """Open the bundle afresh when the indexer has committed a new generation since.

        Checked at most every ``reload_interval`` seconds, by one thread; the
        model stays loaded. Requests in flight keep the searcher they started with.
        A bundle on disk that cannot be opened (moved away, damaged, half
        copied) leaves the open generation in use, with ``problem`` saying why
        (``/healthz``); it is tried again every ``RETRY_SECONDS`` (one of
        another model, only once its manifest changes).
        """
        now = time.monotonic()
        if now < self._next_check or not self._reloading.acquire(blocking=False):
            return
        try:
            self._next_check = now + self.config.reload_interval
            stamp = _stamp(self.bundle.path)
            if stamp == self._manifest_stamp:
                self.problem = None  # e.g. the bundle folder was moved back
                return
            if stamp is not None and stamp == self._given_up:
                return
            try:
                self.searcher = self._serving(Bundle.open(self.bundle.path), self.searcher.encoder)
            except Exception as e:  # noqa: BLE001 - whatever is on disk, requests keep the open generation
                self._next_check = now + max(self.config.reload_interval, RETRY_SECONDS)
                if isinstance(e, ModelMismatchError):  # another model: retrying this manifest cannot help
                    self._given_up = stamp
                problem = f"serving generation {self.bundle.manifest.generation}, opened before: {e}"
                if problem != self.problem:  # logged once, retried (the copy may not be finished)
                    log.error("not switching to the index on disk: %s", e, exc_info=not isinstance(e, SearchError))
                self.problem = problem
                return
            log.info("index reloaded: generation %d, %d images", self.bundle.manifest.generation, self.bundle.count)
            self.metrics.images.set(self.bundle.count)
            self._manifest_stamp, self.problem = stamp, None
            self._check_photo_folder()
        finally:
            self._reloading.release()

    def search(self, terms, **options):
        """``(SearchPage, took_ms)`` from the library's searcher (``options`` are its own), its stages observed
        as metrics."""
        started = time.perf_counter()
        page = self.searcher.search(terms, **options)
        kind = terms[0].kind if len(terms) == 1 else "combined"
        for stage, seconds in page.seconds.items():
            self.metrics.stages.labels(stage, kind).observe(seconds)
        return page, round((time.perf_counter() - started) * 1000, 3)


def _stamp(bundle_dir):
    # The indexer replaces manifest.json (os.replace) on every commit: a new inode and mtime.
    try:
        st = os.stat(os.path.join(bundle_dir, MANIFEST))
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def current_service():
    return current_app.extensions["photosearch"]
