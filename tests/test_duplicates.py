"""Duplicate groups: planted copies found, distinct photos left alone, the same pairs as brute force."""

import json
import os
import shutil

import numpy as np
import pytest

from indexer.cli import main
from search.errors import InvalidArgumentError
from search.quality.duplicates import find_duplicates
from search.store.bundle import Bundle
from tests.photos import make_scene

# Random weights see every photo as alike (distinct generated photos reach cosine 0.99 with the tiny model),
# but byte-level re-encodings and resizes stay above 0.9999: the tests plant those, at a threshold between.
THRESHOLD = 0.999


@pytest.fixture(scope="module")
def planted(tmp_path_factory, tiny_config_file, tiny_checkpoint):
    from indexer import BuildConfig, build

    root = tmp_path_factory.mktemp("dupes")
    photos = root / "photos"
    (photos / "a").mkdir(parents=True)
    (photos / "b").mkdir()
    for i in range(16):
        make_scene(i).save(photos / "a" / f"scene{i:02d}.png")
    shutil.copy(photos / "a" / "scene00.png", photos / "b" / "scene00 copy.png")  # exact
    shutil.copy(photos / "a" / "scene00.png", photos / "b" / "scene00 copy 2.png")
    os.utime(photos / "b" / "scene00 copy 2.png", (1e9, 1e9))  # the oldest of three identical files
    make_scene(1).save(photos / "b" / "scene01.jpg", quality=60)  # re-encoded
    make_scene(2).resize((160, 120)).save(photos / "b" / "scene02-small.png")  # resized: the original is kept
    build(BuildConfig(photos=str(photos), index=str(root / "index"), model=tiny_config_file.stem,
                      model_config=str(tiny_config_file), pretrained=str(tiny_checkpoint), workers=0))
    return Bundle.open(str(root / "index"), use_gpu=False), root / "index"


def test_planted_groups_are_found_and_nothing_else(planted):
    bundle, _ = planted
    report = find_duplicates(bundle, THRESHOLD)
    found = {frozenset(r.path for r in g.records): (g.kind, g.keep.path) for g in report.groups}
    assert found == {
        frozenset({"a/scene00.png", "b/scene00 copy.png", "b/scene00 copy 2.png"}): ("exact", "b/scene00 copy 2.png"),
        frozenset({"a/scene01.png", "b/scene01.jpg"}): ("near", "a/scene01.png"),
        frozenset({"a/scene02.png", "b/scene02-small.png"}): ("near", "a/scene02.png"),
    }
    assert [len(g.records) for g in report.groups] == [3, 2, 2]  # largest first
    assert report.photos == 20 and all(g.similarity >= THRESHOLD for g in report.groups)


def test_groups_equal_the_components_of_all_pairs_at_the_threshold(planted):
    """Against brute force: every pair of photos at or above the threshold, joined into components."""
    bundle, _ = planted
    for threshold in (0.99, 0.995, THRESHOLD):
        records = bundle.metadata.all()
        vectors = np.asarray(bundle.vectors[bundle.rows_of([r.id for r in records])])
        linked = (vectors @ vectors.T) >= threshold
        components, seen = [], set()
        for i in range(len(records)):
            if i in seen:
                continue
            stack, part = [i], set()
            while stack:
                j = stack.pop()
                if j not in part:
                    part.add(j)
                    stack.extend(np.flatnonzero(linked[j]).tolist())
            seen |= part
            if len(part) > 1:
                components.append(frozenset(records[j].path for j in part))
        found = {frozenset(r.path for r in g.records) for g in find_duplicates(bundle, threshold).groups}
        assert found == set(components)


def test_cli_prints_the_groups_as_json_and_as_text(planted, capsys):
    _, index = planted
    assert main(["duplicates", "--index", str(index), "--threshold", str(THRESHOLD), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [g["count"] for g in out["groups"]] == [3, 2, 2] and out["duplicates"] == 4
    group = out["groups"][0]
    assert group["kind"] == "exact" and group["keep"] == group["paths"][0] == "b/scene00 copy 2.png"
    assert {"path", "size", "width", "height", "taken"} <= set(group["files"][0])
    assert main(["duplicates", "--index", str(index), "--threshold", str(THRESHOLD)]) == 0
    text = capsys.readouterr().out
    assert "3 groups of duplicates among 20 photos" in text and "keep b/scene00 copy 2.png" in text


def test_bad_thresholds_are_refused(planted, capsys):
    bundle, index = planted
    for bad in (0.2, 1.5, True, "0.9"):
        with pytest.raises(InvalidArgumentError, match="cosine from 0.5 to 1"):
            find_duplicates(bundle, bad)
    assert main(["duplicates", "--index", str(index), "--threshold", "2"]) == 1
    assert "error: the duplicate threshold is a cosine from 0.5 to 1" in capsys.readouterr().err
