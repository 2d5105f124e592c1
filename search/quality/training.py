"""The parts of a fine-tuning run: its settings, the photo split, batches, optimiser and schedule, resume state.

Kept apart from the loop (``search.quality.finetune``) so each can be read,
and tested, on its own.
"""

import math
import os
from dataclasses import asdict

import numpy as np
import torch

from ..errors import InvalidArgumentError
from ..settings import Setting, SettingsTable
from ..store.atomic import atomic_file

MODES = ("text", "full")
MIN_SIDE = 5  # photos each side of the split needs, at the least


def _positive(value):
    if value <= 0:
        raise InvalidArgumentError(f"--lr must be positive, got {value}")


SETTINGS = SettingsTable(
    Setting("mode", "text", "`text`: the text tower learns, the image tower is locked (LiT) and the index stays "
            "valid; `full`: both towers learn, and the index must be rebuilt with the result", choices=MODES),
    Setting("epochs", 10, "passes over the training photos, at most", kind=int, low=1, metavar="N"),
    Setting("batch_size", 64, "photo-caption pairs per step (the contrastive loss's negatives)", kind=int, low=2,
            metavar="N"),
    Setting("lr", None, "peak learning rate", kind=float, check=_positive, metavar="LR",
            shown_default="`5e-5` (text), `1e-5` (full)"),
    Setting("weight_decay", 0.1, "AdamW weight decay (not on gains, biases and the temperature)", kind=float,
            low=0.0, metavar="W"),
    Setting("warmup", 0.1, "share of the steps whose learning rate rises linearly before the cosine decay",
            kind=float, low=0.0, high=0.9, metavar="SHARE"),
    Setting("held_out", 0.2, "share of the photos (seeded) kept out of training and measured after each epoch",
            kind=float, low=0.01, high=0.9, metavar="SHARE"),
    Setting("patience", 3, "epochs without better held-out text-to-image recall before stopping", kind=int, low=0,
            metavar="N"),
    Setting("seed", 0, "seed of the split, the order of pairs and the augmentation", kind=int, metavar="N"),
    Setting("checkpoint_every", 200, "steps between saves of the training state for resuming (and at each "
            "epoch's end)", kind=int, low=1, metavar="N"),
)


@SETTINGS.config_class
class FinetuneSettings:
    """The settings of one fine-tuning run: small steps from pretrained weights, for a few hundred to a
    few hundred thousand pairs; every field is a row of :data:`SETTINGS`."""

    def __post_init__(self):
        if self.lr is None:  # small steps keep what pretraining learned; the locked tower allows larger ones
            self.lr = 5e-5 if self.mode == "text" else 1e-5

    def to_dict(self):
        return asdict(self)


def split_photos(photos, held_out, seed):
    """``(train, held out)`` photo lists: a seeded shuffle, so a rerun splits the same way."""
    n = len(photos)
    n_held = max(MIN_SIDE, round(held_out * n))
    if n - n_held < MIN_SIDE:
        raise InvalidArgumentError(
            f"too few captioned photos to split: {n} (at least {2 * MIN_SIDE} are needed, {MIN_SIDE} to hold out "
            f"and {MIN_SIDE} to train on); add captions for more photos")
    order = np.random.default_rng(seed).permutation(n)
    held = set(order[:n_held].tolist())
    return [p for i, p in enumerate(photos) if i not in held], [p for i, p in enumerate(photos) if i in held]


def epoch_pairs(captions_by_photo, photos, seed, epoch):
    """One epoch's ``[(photo, caption text)]``: each training photo once, with one of its captions, in a
    seeded order. One caption per photo keeps a photo from being its own negative within a batch."""
    rng = np.random.default_rng([seed, epoch])
    return [(photos[i], captions_by_photo[photos[i]][rng.integers(len(captions_by_photo[photos[i]]))])
            for i in rng.permutation(len(photos))]


def make_optimizer(model, settings):
    """AdamW over the trainable parameters; as open_clip's training, no weight decay on gains, biases,
    embeddings of position and the temperature."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            skip = p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
            (no_decay if skip else decay).append(p)
    groups = [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": settings.weight_decay}]
    return torch.optim.AdamW(groups, lr=settings.lr, betas=(0.9, 0.98), eps=1e-6)


def make_schedule(optimizer, total_steps, warmup):
    """Linear warmup over ``warmup`` of the steps, then cosine decay to zero (open_clip's ``cosine_lr``)."""
    warm = max(1, round(warmup * total_steps)) if warmup else 0

    def factor(step):
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total_steps - warm)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class ResumeState:
    """The training state at ``path`` (saved atomically), for a run that matches ``signature``."""

    def __init__(self, path, signature):
        self.path = path
        self.signature = signature

    def load(self):
        """The saved state, or ``None``; refuses a state saved by a different run."""
        if not os.path.exists(self.path):
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except (OSError, RuntimeError, EOFError, ValueError) as e:
            raise InvalidArgumentError(f"cannot read the saved training state {self.path}: {e}; delete it to "
                                       "start over") from e
        if state.get("signature") != self.signature:
            raise InvalidArgumentError(
                f"{self.path} holds the state of a different fine-tuning run (other captions, model or settings); "
                "delete it to start over, or choose another --out")
        return state

    def save(self, **state):
        with atomic_file(self.path) as f:
            torch.save({"signature": self.signature, **state}, f)

    def clear(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
