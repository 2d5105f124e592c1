"""Contrastive fine-tuning of a bundle's model on the user's captioned photos, with open_clip's own parts.

Mode ``text`` locks the image tower (LiT): the text tower learns to point at
the image vectors the bundle already holds, so those vectors are its
training targets (no image is decoded) and the index stays valid. The output
records the image tower's weights (``ModelFingerprint.image_tower``), so the
service and the indexer accept it for bundles built with the base model.

Mode ``full`` trains both towers on photos decoded with open_clip's training
transform; the result is a new model, and a bundle must be rebuilt with it.

Both measure the held-out photos (a seeded split by photo) before training
and after each epoch with ``indexer eval``'s figures, keep the best epoch in
``out`` (a safetensors checkpoint that ``--pretrained`` loads), stop early
when held-out recall stops improving, and save the training state next to
``out`` so an interrupted run resumes where it was.
"""

import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import open_clip
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2
from safetensors.torch import save as safetensors_bytes
from tqdm import tqdm

from ..encoding.encoder import load_encoder
from ..encoding.images import load_image
from ..encoding.weights import IMAGE_TOWER_KEY
from ..errors import ImageError, InvalidArgumentError
from ..store.atomic import atomic_file
from ..store.bundle import Bundle
from .evaluation import in_bundle, score
from .training import FinetuneSettings, ResumeState, epoch_pairs, make_optimizer, make_schedule, split_photos

MAX_HELD_OUT = 1000  # photos measured after each epoch, at most (Flickr30k's test split is 1,000)


@dataclass
class FinetuneReport:
    mode: str
    out: str
    photos: dict  # {"train", "held_out"}
    before: dict  # held-out figures, as ``indexer eval``'s
    after: dict  # of the best epoch (the one in ``out``)
    best_epoch: int  # 0: no epoch beat the starting weights
    epochs: list = field(default_factory=list)  # per epoch: loss, held-out text->image recall, seconds
    stopped_early: bool = False
    resumed: bool = False
    samples_per_second: float = 0.0
    left_out: dict = field(default_factory=dict)  # captions left out, by reason
    problems: list = field(default_factory=list)

    def to_dict(self):
        return asdict(self)


def finetune(index, captions, out, settings=None, device="auto", key=None, progress=False, on_step=None):
    """Fine-tune the model of the bundle at ``index`` on ``captions`` (a CaptionSet) into ``out``.

    ``key(path)``: photos that count as the same when measuring (default: each photo itself).
    ``on_step(step)`` is called after each optimiser step. Returns a :class:`FinetuneReport`.
    """
    settings = settings or FinetuneSettings()
    if not str(out).endswith(".safetensors"):
        raise InvalidArgumentError(f"--out must name a .safetensors file (got {out})")
    bundle = Bundle.open(index, use_gpu=False)
    kept, vectors, paths = in_bundle(bundle, captions)
    train, held = split_photos(paths, settings.held_out, settings.seed)
    base = bundle.fingerprint
    encoder = load_encoder(base.name, base.pretrained, device=device, config=base.config, precision="fp32")
    bundle.fingerprint.check_same_space(encoder.fingerprint, where=f"the index at {bundle.path}")
    run = _Run(bundle, encoder, settings, kept, dict(zip(paths, vectors)), held[:MAX_HELD_OUT], key)
    resume = ResumeState(f"{out}.resume", _signature(base, kept, train, held, settings))
    report = run.train(train, out, resume, progress, on_step)
    report.left_out, report.problems = run.captions.counts(), run.captions.problems
    return report


class _Run:
    def __init__(self, bundle, encoder, settings, captions, vector_of, held, key):
        self.bundle, self.encoder, self.settings, self.key = bundle, encoder, settings, key
        self.model = encoder.model
        self.captions = captions  # broken photos met in full mode are moved to its problems
        self.vector_of = vector_of
        self.texts_of = {}
        for c in captions.captions:
            self.texts_of.setdefault(c.path, []).append(c.text)
        if settings.mode == "text":
            self.model.lock_image_tower(unlocked_groups=0, freeze_bn_stats=True)
        else:
            cfg = PreprocessCfg(**self.model.visual.preprocess_cfg)
            self.augment = image_transform_v2(cfg, is_train=True)
        self.held = [p for p in held if settings.mode == "text" or self._image(p, encoder.preprocess) is not None]
        self.loss = open_clip.ClipLoss()
        cuda = encoder.device == "cuda"
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext

    def train(self, train, out, resume, progress, on_step):
        s, model = self.settings, self.model
        steps_per_epoch = -(-len(train) // s.batch_size)
        optimizer = make_optimizer(model, s)
        schedule = make_schedule(optimizer, steps_per_epoch * s.epochs, s.warmup)
        state = resume.load()
        if state:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            torch.set_rng_state(state["rng"])
            report = FinetuneReport(**state["report"])
            report.resumed = True
            epoch, step, best, bad = state["epoch"], state["step"], tuple(state["best"]), state["bad"]
        else:
            before = self.measure()
            report = FinetuneReport(s.mode, os.path.abspath(out), {"train": len(train), "held_out": len(self.held)},
                                    before, before, 0)
            epoch, step, best, bad = 0, 0, _rank(before), 0
            self.write(out)
        seen, start = 0, time.perf_counter()

        def save():
            resume.save(model=model.state_dict(), optimizer=optimizer.state_dict(), schedule=schedule.state_dict(),
                        rng=torch.get_rng_state(), report=report.to_dict(), epoch=epoch, step=step, best=best,
                        bad=bad)

        while epoch < s.epochs and bad <= s.patience:
            pairs = epoch_pairs(self.texts_of, [p for p in train if p in self.texts_of], s.seed, epoch)  # not broken
            losses, epoch_start = [], time.perf_counter()
            model.train()
            with tqdm(total=len(pairs), initial=min(step * s.batch_size, len(pairs)), unit="pair",
                      desc=f"epoch {epoch + 1}/{s.epochs}", disable=not progress) as bar:
                while step * s.batch_size < len(pairs):
                    batch = pairs[step * s.batch_size:(step + 1) * s.batch_size]
                    loss = self.step(batch, optimizer)
                    losses += [] if loss is None else [loss]
                    schedule.step()
                    step += 1
                    seen += len(batch)
                    bar.update(len(batch))
                    bar.set_postfix(loss=f"{losses[-1]:.3f}" if losses else "-")
                    if step % s.checkpoint_every == 0:
                        save()
                    if on_step:
                        on_step(schedule.last_epoch)
            figures = self.measure()
            epoch, step = epoch + 1, 0
            report.epochs.append({"epoch": epoch, "loss": round(float(np.mean(losses)), 4) if losses else None,
                                  "text_to_image": figures["text_to_image"],
                                  "seconds": round(time.perf_counter() - epoch_start, 2)})
            if _rank(figures) > best:
                best, bad, report.after, report.best_epoch = _rank(figures), 0, figures, epoch
                self.write(out)
            else:
                bad += 1
            save()
        report.stopped_early = epoch < s.epochs
        elapsed = time.perf_counter() - start
        report.samples_per_second = round(seen / elapsed, 2) if seen and elapsed else 0.0
        resume.clear()
        return report

    def step(self, batch, optimizer):
        model = self.model
        texts = self.encoder.tokenizer([text for _, text in batch]).to(self.encoder.device)
        with self.autocast():
            if self.settings.mode == "text":
                images = torch.from_numpy(np.stack([self.vector_of[p] for p, _ in batch])).to(self.encoder.device)
            else:
                decoded = [(self._image(p, self.augment), i) for i, (p, _) in enumerate(batch)]
                keep = [i for image, i in decoded if image is not None]
                if len(keep) < 2:  # nothing to contrast
                    return None
                texts = texts[keep]
                images = model.encode_image(torch.stack([image for image, _ in decoded if image is not None])
                                            .to(self.encoder.device), normalize=True)
            features = model.encode_text(texts, normalize=True)
            loss = self.loss(images.float(), features.float(), model.logit_scale.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():  # as open_clip's training: a temperature of at least 1/100
            model.logit_scale.clamp_(0, np.log(100))
        return float(loss.detach())

    def measure(self):
        """The held-out figures of the model as it is now."""
        self.model.eval()
        if self.settings.mode == "text":
            images = np.stack([self.vector_of[p] for p in self.held])
        else:
            images = np.concatenate([self.encoder.encode_images(torch.stack([self._image(p, self.encoder.preprocess)
                                                                              for p in self.held[i:i + 64]]))
                                     for i in range(0, len(self.held), 64)])
        held = set(self.held)
        return score(self.encoder, images, self.held, [c for c in self.captions.captions if c.path in held],
                     self.key)

    def _image(self, path, transform):
        """``path`` decoded and transformed, or ``None`` (and its captions reported) when it cannot be read."""
        try:
            image, _ = load_image(os.path.join(self.bundle.root, path), min_size=self.encoder.image_size)
        except (ImageError, OSError):
            if path in self.texts_of:
                self.captions = self.captions.keep_photos(set(self.texts_of) - {path}, {path: "broken"})
                del self.texts_of[path]
            return None
        return transform(image)

    def write(self, out):
        """The model as it is now, as a checkpoint ``--pretrained`` loads."""
        base = self.bundle.fingerprint
        meta = {"photosearch.mode": self.settings.mode,
                "photosearch.base": json.dumps(_identity(base))}
        if self.settings.mode == "text":
            pretrained, sha = base.image_weights()
            meta[IMAGE_TOWER_KEY] = json.dumps({"pretrained": pretrained, "checkpoint_sha256": sha})
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in self.model.state_dict().items()}
        with atomic_file(out) as f:
            f.write(safetensors_bytes(tensors, metadata=meta))


def _rank(figures):
    """What early stopping compares: held-out text->image recall@1, then @5, then @10."""
    t2i = figures["text_to_image"]
    return tuple(t2i[f"recall@{k}"] or 0.0 for k in (1, 5, 10))


def _identity(fingerprint):
    """The fingerprint without its architecture (recorded in the bundle already)."""
    return {k: v for k, v in fingerprint.to_dict().items() if k != "config"}


def _signature(base, captions, train, held, settings):
    """What must match for a saved state to be resumed."""
    h = hashlib.sha256()
    for c in captions.captions:
        h.update(f"{c.path}\0{c.text}\n".encode())
    h.update(json.dumps([train, held]).encode())
    return {"model": _identity(base), "captions": h.hexdigest(),
            "settings": {k: v for k, v in settings.to_dict().items() if k != "checkpoint_every"}}
