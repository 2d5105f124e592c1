"""What identifies a model and its embedding space, without loading it.

Kept free of torch and open_clip so that opening a bundle (and a no-op
rebuild) stays fast.
"""

import hashlib
from dataclasses import dataclass, field

from ..errors import ModelMismatchError

# ViT-B-32 is the cheapest ViT in open_clip's zoo (8.8 image GFLOPs); the LAION-2B
# weights have its best text-to-image retrieval (README: "Choosing a model").
DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"


@dataclass(frozen=True)
class ModelFingerprint:
    """What identifies a model's embedding space; stored in every bundle."""

    name: str
    pretrained: str | None
    dim: int
    checkpoint_sha256: str | None = None
    config: dict | None = field(default=None, compare=False)  # architecture, so bundles are self-describing
    # a text-tower fine-tune (``indexer finetune --mode text``): {"pretrained", "checkpoint_sha256"} of the
    # weights its image tower came from unchanged, so it searches bundles those weights built
    image_tower: dict | None = None
    # What the encoder computed in (search.encoding.precision); bundles written before it was recorded are fp32.
    precision: str = "fp32"
    # Why ``precision`` is not what was asked for (the fidelity guard's fallback); not stored in bundles.
    precision_note: str | None = field(default=None, compare=False)

    def to_dict(self):
        return {
            "name": self.name,
            "pretrained": self.pretrained,
            "dim": self.dim,
            "checkpoint_sha256": self.checkpoint_sha256,
            "config": self.config,
            "image_tower": self.image_tower,
            "precision": self.precision,
        }

    @classmethod
    def from_dict(cls, d):
        return cls(d["name"], d.get("pretrained"), int(d["dim"]), d.get("checkpoint_sha256"), d.get("config"),
                   d.get("image_tower"), d.get("precision", "fp32"))

    def describe(self):
        weights = self.pretrained
        if self.checkpoint_sha256:
            weights = f"{weights} (sha256 {self.checkpoint_sha256[:12]})"
        text = f"{self.name} / {weights} / dim {self.dim} / {self.precision}"
        return f"{text} ({self.precision_note})" if self.precision_note else text

    def same_space(self, other):
        """True when vectors of ``self`` and ``other`` can be compared (at any precision that passed the guard)."""
        if self.name != other.name or self.dim != other.dim:
            return False
        (pretrained, sha), (other_pretrained, other_sha) = self.image_weights(), other.image_weights()
        if sha and other_sha:
            return sha == other_sha
        return pretrained == other_pretrained

    def image_weights(self):
        """``(pretrained, checkpoint_sha256)`` of the weights that embed images: the base's for a
        text-tower fine-tune, which leaves image vectors (the bundle's) as they were."""
        if self.image_tower:
            return self.image_tower.get("pretrained"), self.image_tower.get("checkpoint_sha256")
        return self.pretrained, self.checkpoint_sha256

    def check_same_space(self, other, where="the bundle"):
        if not self.same_space(other):
            raise ModelMismatchError(
                f"{where} was built with {self.describe()}, but the model in use is {other.describe()}; "
                f"use the same model (--model {self.name} --pretrained {self.pretrained}) or build a new index"
            )

    def same_vectors(self, other):
        """True when vectors of ``other`` may join a bundle of ``self``'s: the same space and precision."""
        return self.same_space(other) and self.precision == other.precision

    def check_same_vectors(self, other, where="the bundle"):
        """Refuse adding ``other``'s vectors to a bundle of ``self``'s: the same space, and one precision per
        bundle (a query may use another precision; the vectors it is compared with come from one)."""
        self.check_same_space(other, where)
        if self.precision != other.precision:
            raise ModelMismatchError(
                f"{where} holds {self.precision} vectors, but the encoder runs in {other.precision}"
                f"{f' ({other.precision_note})' if other.precision_note else ''}; vectors of one index come "
                f"from one precision: use --precision {self.precision} (or leave it out), or build a new index"
            )


def file_sha256(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
