"""How well a model retrieves a user's own captioned photos: ``indexer eval``'s figures.

The photos searched are the captioned ones (the protocol of the published
Flickr30k and COCO figures); their vectors come from a bundle, so the
figures are those of the index as it is served. Captions whose photo is not
in the bundle are left out and reported, by reason.
"""

import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InvalidArgumentError
from ..store.bundle import Bundle
from .retrieval import evaluate, relevance

SPEED_SAMPLE = 32  # photos embedded to time the image encoder


@dataclass
class EvalReport:
    model: dict  # name, pretrained
    photos: int
    captions: int
    text_to_image: dict
    image_to_text: dict
    images_per_second: float | None = None
    left_out: dict = field(default_factory=dict)  # captions left out, by reason
    problems: list = field(default_factory=list)  # each left-out caption: path, caption, where, reason

    def to_dict(self):
        return asdict(self)


def in_bundle(bundle, captions):
    """``(captions kept, vectors, paths)``: the captions whose photo the bundle holds, and those photos'
    vectors and paths in caption order. Others are reported as ``missing`` (no such file) or
    ``not_indexed`` (a file the build skipped as unreadable, or added since)."""
    rows = {r.path: r.id for r in bundle.metadata.all()}
    reasons = {p: "not_indexed" for p in captions.photos
               if p not in rows and os.path.isfile(os.path.join(bundle.root, p))}
    kept = captions.keep_photos(set(rows), reasons)
    paths = kept.photos
    vectors = np.asarray(bundle.vectors[bundle.rows_of([rows[p] for p in paths])], np.float32) if paths \
        else np.zeros((0, bundle.dim), np.float32)
    return kept, vectors, paths


def score(encoder, image_vectors, image_paths, captions, key=None):
    """``{"text_to_image", "image_to_text", "photos", "captions"}`` of ``captions`` (a list of
    :class:`Caption`) against photos ``image_paths`` with ``image_vectors``."""
    if not captions:
        raise InvalidArgumentError("no captions left to evaluate: every caption was empty, repeated or of a "
                                   "missing photo (see the problems listed)")
    texts = encoder.encode_texts([c.text for c in captions])
    caption_of, image_of = relevance([c.path for c in captions], image_paths, key)
    figures = evaluate(texts, image_vectors, caption_of, image_of)
    return figures | {"photos": len(image_paths), "captions": len(captions)}


def images_per_second(encoder, root, paths):
    """The image encoder's speed on a few of the photos (decoding included), as a build embeds them."""
    from ..encoding.images import load_image

    sample = paths[:SPEED_SAMPLE]
    if not sample:
        return None
    start = time.perf_counter()
    images = [load_image(os.path.join(root, p), min_size=encoder.image_size)[0] for p in sample]
    encoder.encode_images(images)
    return round(len(sample) / (time.perf_counter() - start), 2)


def evaluate_bundle(index, captions, encoder, key=None):
    """The :class:`EvalReport` of ``captions`` (a CaptionSet) against the bundle at ``index``, with
    ``encoder`` embedding the captions (it must share the bundle's embedding space)."""
    bundle = index if isinstance(index, Bundle) else Bundle.open(index, use_gpu=False)
    bundle.fingerprint.check_same_space(encoder.fingerprint, where=f"the index at {bundle.path}")
    kept, vectors, paths = in_bundle(bundle, captions)
    figures = score(encoder, vectors, paths, kept.captions, key)
    fp = encoder.fingerprint
    return EvalReport(
        model={"name": fp.name, "pretrained": fp.pretrained, "precision": fp.precision}, photos=figures["photos"],
        captions=figures["captions"], text_to_image=figures["text_to_image"],
        image_to_text=figures["image_to_text"], images_per_second=images_per_second(encoder, bundle.root, paths),
        left_out=kept.counts(), problems=kept.problems,
    )
