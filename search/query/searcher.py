"""The one query path: terms -> query vector -> candidates -> exact scores -> a page of results.

A :class:`Searcher` is a bundle plus the parts that turn query terms into
vectors and find candidates. By default the parts are the encoder's own
calls and the bundle's index; a server hands in batched, cached or
coalesced versions of the same calls and gets the same ranking.
"""

import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..encoding.images import DEFAULT_MAX_PIXELS
from ..errors import InvalidArgumentError
from ..index import ann
from ..store.bundle import MAX_K, Bundle, Result, SearchPage
from . import ranking
from .filters import Filters
from .relevance import sample_positions, weak_below
from .terms import QueryKind, QueryTerm


EXACT_SUBSET_MAX = 32_768  # filtered images scored exactly; more are searched through the index
RELEVANCE_WINDOW = 256  # candidates at least, for the relevance cut: strong matches are counted among them


def excluded_ids(terms):
    """A query of one image id ("more like this") leaves that image out of its results."""
    return (int(terms[0].value),) if len(terms) == 1 and terms[0].kind is QueryKind.ID else ()


def index_search(bundle):
    """The default ``search_index`` part: ``(queries [Q, dim], count) -> (scores, ids)`` of the bundle's index."""
    return lambda queries, count: ann.search(bundle.index, queries, count)


class Searcher:
    """Search a bundle by text, image, id, vector or a weighted mix of them.

    Parts (each optional, for callers that batch or cache):

    - ``encode_texts(list of str) -> float32 [N, dim]``, unit rows (default ``encoder.encode_texts``);
    - ``encode_image(source) -> float32 [dim]``, a unit vector (default ``encoder.embed_image``);
    - ``search_index(queries [Q, dim], count) -> (scores, ids)``, faiss's
      convention with -1 for no result (default: the bundle's index).

    Without an ``encoder`` (and without the text or image part) a searcher
    answers id and embedding queries only, and loads no model.
    """

    def __init__(self, bundle, encoder=None, *, encode_texts=None, encode_image=None, search_index=None,
                 max_pixels=DEFAULT_MAX_PIXELS):
        if encoder is not None:
            bundle.fingerprint.check_same_space(encoder.fingerprint, where=f"the index at {bundle.path}")
        self.bundle = bundle
        self.encoder = encoder
        self.max_pixels = max_pixels
        self.encode_texts = encode_texts or (encoder.encode_texts if encoder else _needs_encoder(QueryKind.TEXT))
        self.encode_image = encode_image or (self._embed_image if encoder else _needs_encoder(QueryKind.IMAGE))
        self.search_index = search_index or index_search(bundle)
        self._sample_vectors = None  # see _sample_of_all

    @classmethod
    def open(cls, index_dir, model=None, pretrained=None, device="auto", precision="auto", **kwargs):
        """Open a bundle with the model recorded in it (``model``/``pretrained`` override). Queries may
        use any ``precision`` (``load_encoder``); ``auto`` is the bundle's own where ``device`` runs it."""
        from ..encoding.device import resolve_device
        from ..encoding.encoder import load_encoder  # torch and open_clip load only here
        from ..encoding.precision import for_bundle

        bundle = Bundle.open(index_dir)
        fp = bundle.fingerprint
        device = resolve_device(device)
        encoder = load_encoder(model or fp.name, pretrained or fp.pretrained, device=device, config=fp.config,
                               precision=for_bundle(precision, fp.precision, device))
        return cls(bundle, encoder, **kwargs)

    def search(self, terms, *, k=24, offset=0, min_score=None, path_prefix=None, filters=None, deduplicate=False,
               relevance=False):
        """A :class:`SearchPage` of the images nearest the weighted ``terms``, best first, by exact cosine.

        ``total`` counts every image that matches the filters (and ``min_score``),
        on all pages. A query of a single image id leaves that image out ("more
        like this"). ``deduplicate`` drops results near an earlier one on the
        page. ``relevance`` adds the relevance cut (``search.query.relevance``):
        ``page.weak_below`` and ``page.strong_total``, the matches at or above it
        on all pages. Scores are clamped to [-1, 1] (float32 rounding may pass 1).
        ``page.seconds`` holds the time of each stage: embed, search (metadata
        rows included) and, when asked, relevance and deduplicate.
        """
        terms = list(terms)
        k, offset = _check_int("k", k, 1, MAX_K), _check_int("offset", offset, 0, MAX_K)
        filters = Filters.of(filters, path_prefix)
        exclude = excluded_ids(terms)
        seconds = {}
        with _timed(seconds, "embed"):
            query = self.query_vector(terms)
        with _timed(seconds, "search"):
            need = offset + k + len(exclude)
            window = RELEVANCE_WINDOW if relevance else 0
            matches = self._matches(query, need, window, min_score, filters, exclude)
            ids, scores = ranking.select(matches.ids, matches.scores, offset, k, min_score, exclude)
            results = self._results(ids, scores)
        page = SearchPage(results, matches.total, seconds)
        if relevance:
            with _timed(seconds, "relevance"):
                page.weak_below, page.strong_total = self._relevance(query, matches, min_score, exclude)
        if deduplicate and len(results) > 1:
            with _timed(seconds, "deduplicate"):
                rows = self.bundle.rows_of([r.id for r in results])
                keep = ranking.deduplicate(np.asarray(self.bundle.vectors[rows], dtype=np.float32))
                page.results = [results[i] for i in keep]
        return page

    def search_text(self, text, **options):
        return self.search([QueryTerm(QueryKind.TEXT, text)], **options)

    def search_image(self, source, **options):
        """``source``: a path, bytes, file object or PIL image."""
        return self.search([QueryTerm(QueryKind.IMAGE, source)], **options)

    def search_id(self, image_id, **options):
        return self.search([QueryTerm(QueryKind.ID, image_id)], **options)

    def search_vector(self, vector, **options):
        return self.search([QueryTerm(QueryKind.EMBEDDING, vector)], **options)

    def query_vector(self, terms):
        """The unit query vector of ``terms``: their weighted sum, normalised once."""
        terms = list(terms)
        if not terms:
            raise InvalidArgumentError("a query needs at least one term")
        return ranking.combine(self.term_vectors(terms), [t.weight for t in terms])

    def term_vectors(self, terms):
        """One unit vector per term, ``[len(terms), dim]``; the texts in one ``encode_texts`` call."""
        vectors = [None] * len(terms)
        texts = [i for i, t in enumerate(terms) if t.kind is QueryKind.TEXT]
        if texts:
            encoded = self.encode_texts([_checked_text(terms[i].value) for i in texts])
            for i, vector in zip(texts, encoded):
                vectors[i] = vector
        for i, term in enumerate(terms):
            if term.kind is QueryKind.IMAGE:
                vectors[i] = self.encode_image(term.value)
            elif term.kind is QueryKind.ID:
                vectors[i] = self.bundle.vector(term.value)
            elif term.kind is QueryKind.EMBEDDING:
                vectors[i] = self._embedding(term.value)
        return np.stack(vectors)

    def _matches(self, query, need, window, min_score, filters, exclude):
        """The ranked candidates of a query, at least the ``need`` best matches and ``window`` candidates
        where there are that many, and what counting past them needs."""
        bundle = self.bundle
        subset = filters.matching_ids(bundle.metadata)
        found = None
        if subset is None:  # the index's candidates
            count = max(ann.candidate_count(bundle.index, need), min(window, bundle.count))
            found = self.search_index(query[None, :], count)[1][0]
            total = bundle.count
        elif len(subset) > EXACT_SUBSET_MAX and min_score is None and ann.supports_selector(bundle.index):
            found = self._selected(query, need, subset)
            total = len(subset)
        if found is not None:  # re-scored exactly, whatever the index
            ids = found[found >= 0]  # -1: the index had fewer
            ids, scores = ranking.rank(ids, ranking.exact_scores(bundle.vectors, bundle.rows_of(ids), query))
            if min_score is not None:
                total = ranking.count_at_least(bundle.vectors, query, min_score)
            matches = _Matches(ids, scores, total, subset)
        else:  # the filtered images, all scored exactly
            rows = bundle.rows_of(subset)
            all_scores = ranking.exact_scores(bundle.vectors, rows, query)
            best = ranking.top_k(all_scores, max(need, window))
            total = len(rows) if min_score is None else int(np.sum(all_scores >= min_score))
            matches = _Matches(bundle.ids[rows[best]], all_scores[best], total, subset, all_scores)
        if exclude:  # the excluded ids no longer count among the matches
            matches.total -= self._excluded_matches(query, exclude, min_score, subset)
        return matches

    def _excluded_matches(self, query, exclude, floor, subset):
        """How many of the ``exclude`` ids are matches: in the subset, and scoring ``floor`` or more."""
        excluded = np.array(sorted(exclude), dtype=np.int64)
        floor = -np.inf if floor is None else floor
        matching = ranking.exact_scores(self.bundle.vectors, self.bundle.rows_of(excluded), query) >= floor
        if subset is not None:
            matching &= np.isin(excluded, subset)
        return int(matching.sum())

    def _relevance(self, query, matches, min_score, exclude):
        """``(weak_below, strong_total)`` of a query's matches; ``(None, 0)`` when nothing matches.

        The background is the scores of an evenly spaced sample of the matches
        (``search.query.relevance.SAMPLE``; all when fewer). Strong matches
        are counted among the candidates when the cut falls inside them, else
        over every match (the rare query that many photos match strongly), or,
        for vectors read from their file, estimated from the sample.
        """
        keep = ~np.isin(matches.ids, np.asarray(exclude, dtype=np.int64))
        if min_score is not None:
            keep &= matches.scores >= min_score
        candidates = matches.scores[keep]
        if not len(candidates):
            return None, 0
        bundle = self.bundle
        if matches.all_scores is not None:
            background = matches.all_scores[sample_positions(len(matches.all_scores))]
        elif matches.subset is not None:
            sample = matches.subset[sample_positions(len(matches.subset))]
            background = ranking.exact_scores(bundle.vectors, bundle.rows_of(sample), query)
        else:
            background = self._sample_of_all() @ query
        cut = weak_below(float(candidates[0]), background)
        floor = cut if min_score is None else max(cut, min_score)
        strong = int(np.sum(candidates >= floor))
        if strong == len(candidates) and strong < matches.total:  # the cut lies past the candidates
            if matches.all_scores is not None:
                strong = int(np.sum(matches.all_scores >= floor))
            elif matches.subset is None and not bundle.vectors_in_memory:
                # counting would read every vector from disk (seconds per query at millions): the sample's share
                strong = max(strong, round(matches.total * float(np.mean(background >= floor))))
            elif matches.subset is None:
                strong = ranking.count_at_least(bundle.vectors, query, floor)
            else:
                strong = int(np.sum(ranking.exact_scores(bundle.vectors, bundle.rows_of(matches.subset), query)
                                    >= floor))
            if exclude:
                strong -= self._excluded_matches(query, exclude, floor, matches.subset)
        return cut, strong

    def _sample_of_all(self):
        """The vectors of the relevance sample of all images, gathered once: every unfiltered query scores
        the same rows, and copying them out of the memory-mapped vectors cost more than scoring them."""
        if self._sample_vectors is None:  # two threads may both gather it: the same rows, no harm
            rows = np.sort(self.bundle.rows_of(self.bundle.ids[sample_positions(len(self.bundle.ids))]))
            self._sample_vectors = np.asarray(self.bundle.vectors[rows], dtype=np.float32)
        return self._sample_vectors

    def _selected(self, query, need, subset):
        """Candidates among a large ``subset`` from the index itself, or None where it found too few.

        Scoring every image of a filter that keeps most of a large collection
        would read most of its vectors; the index, told which ids may come
        back, scans proportionally more lists instead. Where it still finds
        fewer than the page needs (a filter that misses the lists scanned),
        the caller scores the subset exactly.
        """
        index = self.bundle.index
        selector = ann.id_selector(subset)
        fraction = len(subset) / max(1, self.bundle.count)
        found = ann.search(index, query[None, :], ann.candidate_count(index, need), selector, fraction)[1][0]
        return found if np.sum(found >= 0) >= min(need, len(subset)) else None

    def _results(self, ids, scores):
        records = self.bundle.metadata.get_many(ids)
        return [
            Result(int(i), r.path, min(1.0, max(-1.0, float(s))), r.width, r.height, r.taken_at, r.camera, r.size,
                   r)
            for i, s in zip(ids, scores)
            if (r := records.get(int(i))) is not None
        ]

    def _embed_image(self, source):
        return self.encoder.embed_image(source, max_pixels=self.max_pixels)

    def _embedding(self, value):
        vector = np.asarray(value, dtype=np.float32).reshape(-1)
        if vector.shape != (self.bundle.dim,):
            raise InvalidArgumentError(
                f"embedding has {vector.size} values; this index has dimension {self.bundle.dim}")
        return ranking.normalize(vector)  # a vector of the user's is a direction: its length does not weigh


@dataclass
class _Matches:
    """A query's ranked candidates (best first, excluded ids still in), and how to count past them."""

    ids: np.ndarray
    scores: np.ndarray
    total: int  # every match, on all pages
    subset: np.ndarray | None  # the filter's ids, or None for all
    all_scores: np.ndarray | None = None  # the score of every id of ``subset``, when all were scored


def _needs_encoder(kind):
    def refuse(_):
        raise InvalidArgumentError(f"this Searcher has no encoder for {kind} queries; "
                                   "open it with Searcher.open or pass an encoder")
    return refuse


def _checked_text(text):
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgumentError("text must be a non-empty string")
    return text


def _check_int(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentError(f"{name} must be an integer")
    if not low <= value <= high:
        raise InvalidArgumentError(f"{name} must be between {low} and {high}, got {value}")
    return int(value)


@contextmanager
def _timed(seconds, stage):
    start = time.perf_counter()
    yield
    seconds[stage] = time.perf_counter() - start
