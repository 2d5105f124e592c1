"""Captioned photo sets: reading the layouts people have, and checking them against the photos.

Formats, told apart by the file's extension and content:

- JSONL: one ``{"path": ..., "caption": ...}`` object per line;
- CSV with a header row ``path,caption``;
- COCO captions JSON: ``{"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}``;
- Karpathy-split JSON (Flickr30k, COCO 5k): ``{"images": [{"filename", "filepath"?, "split",
  "sentences": [{"raw"}]}]}``; ``split`` keeps one split (``test`` for the published figures).

Paths are relative to the photo folder, ``/`` separated; a photo may have
several captions. Nothing is dropped silently: empty and repeated captions,
and captions whose photo is missing or could not be read, are left out and
listed in :attr:`CaptionSet.problems` with the reason.
"""

import csv
import json
from dataclasses import dataclass, field

from ..errors import InvalidArgumentError


@dataclass(frozen=True)
class Caption:
    path: str  # the photo, relative to the photo folder
    text: str
    where: str  # line or entry of the file, for reports


@dataclass
class CaptionSet:
    captions: list  # Caption, in file order
    problems: list = field(default_factory=list)  # {"path", "caption", "where", "reason"}

    @property
    def photos(self):
        """The captioned photos, each once, in order of first caption."""
        return list(dict.fromkeys(c.path for c in self.captions))

    def counts(self):
        """How many captions were left out, by reason."""
        out = {}
        for p in self.problems:
            out[p["reason"]] = out.get(p["reason"], 0) + 1
        return out

    def keep_photos(self, available, reasons):
        """Keep the captions whose photo is in ``available``; the others are reported with
        ``reasons[path]`` (default ``"missing"``). Returns a new set."""
        kept, problems = [], list(self.problems)
        for c in self.captions:
            if c.path in available:
                kept.append(c)
            else:
                problems.append(_problem(c, reasons.get(c.path, "missing")))
        return CaptionSet(kept, problems)


def read_captions(path, split=None):
    """The :class:`CaptionSet` of the caption file at ``path``; empty and repeated captions are
    left out (and reported). Raises :class:`InvalidArgumentError` for a file that is unreadable
    or in none of the formats."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidArgumentError(f"cannot read the captions file {path}: {e}") from e
    raw = _parse(path, text, split)
    return _clean(raw)


def _parse(path, text, split):
    if path.lower().endswith(".csv"):
        return _csv(path, text)
    stripped = text.lstrip()
    if stripped.startswith("{") and not path.lower().endswith(".jsonl"):
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None  # one JSONL object per line also starts with "{"
        if isinstance(doc, dict):
            return _json_document(path, doc, split)
    return _jsonl(path, text)


def _jsonl(path, text):
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise _bad(path, f"line {n} is not JSON ({e})") from e
        if not isinstance(row, dict) or not isinstance(row.get("path"), str) or "caption" not in row:
            raise _bad(path, f'line {n} is not an object with "path" and "caption"')
        out.append(Caption(row["path"], row["caption"], f"line {n}"))
    return out


def _csv(path, text):
    rows = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(rows, [])]
    if header[:2] != ["path", "caption"]:
        raise _bad(path, f"the first row must be the header path,caption (found {','.join(header) or 'nothing'})")
    out = []
    for n, row in enumerate(rows, 2):
        if not row:
            continue
        if len(row) < 2:
            raise _bad(path, f"line {n} has no caption column")
        out.append(Caption(row[0], row[1], f"line {n}"))
    return out


def _json_document(path, doc, split):
    images = doc.get("images")
    if not isinstance(images, list):
        raise _bad(path, 'a JSON document needs an "images" list (COCO captions or Karpathy split)')
    try:
        if "annotations" in doc:
            names = {im["id"]: im["file_name"] for im in images}
            return [Caption(names[a["image_id"]], a["caption"], f"annotation {a.get('id', i)}")
                    for i, a in enumerate(doc["annotations"]) if a["image_id"] in names]
        out = []
        for im in images:
            if split is not None and im.get("split") not in _splits(split):
                continue
            rel = "/".join(p for p in (im.get("filepath"), im["filename"]) if p)
            out.extend(Caption(rel, s["raw"], f"image {im['filename']}") for s in im["sentences"])
        return out
    except (KeyError, TypeError) as e:
        raise _bad(path, f"a COCO or Karpathy entry lacks the field {e}") from e


def _splits(split):
    # Karpathy's "restval" images are the training images moved out of validation
    return {"train", "restval"} if split == "train" else {split}


def _clean(raw):
    kept, problems, seen = [], [], set()
    for c in raw:
        text = c.text.strip() if isinstance(c.text, str) else ""
        path = c.path.strip().removeprefix("./") if isinstance(c.path, str) else ""
        c = Caption(path, text, c.where)
        if not text or not path:
            problems.append(_problem(c, "empty"))
        elif (path, text.lower()) in seen:
            problems.append(_problem(c, "duplicate"))
        else:
            seen.add((path, text.lower()))
            kept.append(c)
    return CaptionSet(kept, problems)


def _problem(c, reason):
    return {"path": c.path, "caption": c.text, "where": c.where, "reason": reason}


def _bad(path, why):
    return InvalidArgumentError(f"{path}: {why}; formats: JSONL, CSV (path,caption), COCO captions JSON, "
                                "Karpathy-split JSON")

