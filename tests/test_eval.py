"""``indexer eval``: recall@k and median rank both ways, checked against brute force, and the command."""

import json
import shutil

import numpy as np
import pytest

from indexer import BuildConfig, build
from indexer.cli import main
from search.quality.captions import read_captions
from search.quality.evaluation import evaluate_bundle
from search.quality.retrieval import evaluate, ranks, relevance
from tests.captioned import kind_of, make_captioned_set
from tests.conftest import TINY_MODEL


def brute_force_ranks(queries, candidates, relevant):
    """Rank of the first relevant candidate in a full descending sort, per query with any relevant."""
    out = []
    for q, rel in zip(queries, relevant):
        if rel:
            order = np.argsort(-(candidates @ q), kind="stable")
            out.append(1 + min(int(np.flatnonzero(order == r)[0]) for r in rel))
    return np.array(out)


def unit(rng, n, d=16):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("key", [None, lambda p: p[0]])
def test_ranks_match_a_full_sort(key):
    rng = np.random.default_rng(1)
    photos = [f"{'abcd'[i % 4]}{i}.jpg" for i in range(40)]
    caption_paths = [photos[i] for i in rng.integers(0, 40, 150)] + ["gone.jpg"]
    texts, images = unit(rng, len(caption_paths)), unit(rng, 40)
    caps, rows = relevance(caption_paths, photos, key)
    by_caption = [[r for c, r in zip(caps, rows) if c == i] for i in range(len(caption_paths))]
    by_image = [[c for c, r in zip(caps, rows) if r == j] for j in range(40)]
    assert np.array_equal(ranks(texts, images, caps, rows), brute_force_ranks(texts, images, by_caption))
    assert np.array_equal(ranks(images, texts, rows, caps), brute_force_ranks(images, texts, by_image))


def test_recall_counts_any_row_of_the_photo_in_the_top_k():
    images = np.eye(3, dtype=np.float32)
    texts = np.array([[0.9, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32)  # caption 0's photo is row 0 or row 2
    caps, rows = np.array([0, 0, 1]), np.array([0, 2, 2])
    figures = evaluate(texts, images, caps, rows)
    assert figures["text_to_image"] == {"recall@1": 0.5, "recall@5": 1.0, "recall@10": 1.0, "median_rank": 1.5}
    assert figures["image_to_text"]["recall@1"] == 1.0  # row 1 has no caption: not counted


@pytest.fixture(scope="module")
def shapes_index(tmp_path_factory, tiny_config_file, tiny_checkpoint):
    root = tmp_path_factory.mktemp("shapes")
    photos, _ = make_captioned_set(root, per_kind=2)
    build(BuildConfig(photos=str(photos), index=str(root / "index"), model=TINY_MODEL, workers=0,
                      model_config=str(tiny_config_file), pretrained=str(tiny_checkpoint)), progress=False)
    return root


def test_eval_of_a_bundle_equals_brute_force_with_the_same_model(shapes_index, encoder):
    captions = read_captions(str(shapes_index / "captions.jsonl"))
    report = evaluate_bundle(str(shapes_index / "index"), captions, encoder, key=kind_of)
    from search.store.bundle import Bundle

    bundle = Bundle.open(str(shapes_index / "index"), use_gpu=False)
    paths = captions.photos
    by_path = {r.path: r.id for r in bundle.metadata.all()}
    images = np.asarray(bundle.vectors[bundle.rows_of([by_path[p] for p in paths])])
    texts = encoder.encode_texts([c.text for c in captions.captions])
    relevant = [[j for j, p in enumerate(paths) if kind_of(p) == kind_of(c.path)] for c in captions.captions]
    t2i = brute_force_ranks(texts, images, relevant)
    assert report.text_to_image["recall@1"] == round(float(np.mean(t2i <= 1)), 4)
    assert report.text_to_image["recall@10"] == round(float(np.mean(t2i <= 10)), 4)
    assert report.text_to_image["median_rank"] == float(np.median(t2i))
    assert (report.photos, report.captions) == (48, 96)


def test_cli_eval_index_json_counts_missing_and_unindexed_photos(shapes_index, tmp_path, make_config, capsys):
    photos = tmp_path / "photos"
    shutil.copytree(shapes_index / "photos", photos)
    (photos / "broken.png").write_text("not an image")  # the build skips it
    make_config(photos)()
    index = tmp_path / "index"
    captions = tmp_path / "c.jsonl"
    captions.write_text((shapes_index / "captions.jsonl").read_text() + "\n".join(json.dumps(x) for x in [
        {"path": "gone.png", "caption": "a photo that is not there"},
        {"path": "broken.png", "caption": "a photo that could not be read"},
        {"path": "kind00_000.png", "caption": ""}]))
    assert main(["eval", "--index", str(index), "--captions", str(captions), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["text_to_image"]) == set(out["image_to_text"]) == {"recall@1", "recall@5", "recall@10",
                                                                      "median_rank"}
    assert (out["photos"], out["captions"]) == (48, 96)
    assert out["left_out"] == {"missing": 1, "not_indexed": 1, "empty": 1}
    assert {p["path"]: p["reason"] for p in out["problems"]}["broken.png"] == "not_indexed"
    assert out["images_per_second"] > 0


def test_cli_eval_compares_models_on_a_photo_folder(shapes_index, model_args, capsys):
    args = ["eval", str(shapes_index / "photos"), "--captions", str(shapes_index / "captions.jsonl")]
    assert main(args + model_args + ["--model", TINY_MODEL, "--pretrained", model_args[-1], "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out, list) and len(out) == 2 and out[0]["text_to_image"] == out[1]["text_to_image"]
    assert main(args + model_args) == 0
    assert "text->image R@1" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    ([], "give either --index DIR"),
    (["--index", "X", "PHOTOS"], "give either --index DIR"),
    (["PHOTOS", "--model", "a", "--model", "b", "--pretrained", "x"], "one --pretrained per --model"),
])
def test_cli_eval_bad_arguments(shapes_index, extra, message, capsys):
    captions = str(shapes_index / "captions.jsonl")
    assert main(["eval", "--captions", captions] + extra) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
