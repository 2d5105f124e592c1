"""Encoder precision: int8 and bf16 on a CPU are guarded against float32 at load; a bundle keeps one precision."""

import dataclasses
import json
import logging
import re
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from search.encoding import precision as precision_module
from search.encoding.encoder import load_encoder
from search.encoding.fingerprint import ModelFingerprint
from search.encoding.int8 import Int8Attention, Int8Linear
from search.encoding.precision import MIN_COSINE, PRECISIONS, for_bundle, reduce, resolve_precision
from search.errors import InvalidArgumentError, ModelMismatchError
from search.query.searcher import Searcher
from search.store.bundle import Bundle
from search.store.manifest import MANIFEST
from tests.conftest import TINY_MODEL
from tests.photos import make_image, make_photo_tree

README = Path(__file__).resolve().parents[1] / "README.md"
QUERIES = ["a red square", "a photo of a dog on the beach", "blue sky", "a green field with a tree", "x " * 60]


@pytest.fixture(scope="module")
def int8_encoder(tiny_checkpoint):
    return load_encoder(TINY_MODEL, str(tiny_checkpoint), device="cpu", precision="int8")


@pytest.fixture(scope="module")
def outlier_checkpoint(tiny_config_file, tmp_path_factory):
    """The tiny model with one activation channel a thousand times larger before each MLP, and that channel's
    weights a thousand times smaller: float32 computes the same function, but int8 takes each token's scale from
    its largest channel, so every other channel rounds to zero (the outliers trained weights have, exaggerated)."""
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_MODEL)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, open_clip.transformer.ResidualAttentionBlock):
                module.ln_2.weight[0] *= 1000
                module.ln_2.bias[0] *= 1000
                module.mlp.c_fc.weight[:, 0] /= 1000
    path = tmp_path_factory.mktemp("outliers") / "outliers.pt"
    torch.save(model.state_dict(), path)
    return path


def cosines(a, b):
    return np.sum(a * b, axis=1)


def test_auto_is_int8_on_a_cpu_and_fp16_on_cuda(int8_encoder, tiny_checkpoint):
    assert resolve_precision("auto", "cpu") == "int8" and resolve_precision("auto", "cuda") == "fp16"
    assert load_encoder(TINY_MODEL, str(tiny_checkpoint), device="cpu").fingerprint.precision == "int8"
    assert int8_encoder.fingerprint.precision == "int8" and int8_encoder.fingerprint.precision_note is None
    assert int8_encoder.fingerprint.describe().endswith("/ dim 32 / int8")
    visual, text = int8_encoder.model.visual, int8_encoder.model.transformer
    attention = [m for m in visual.modules() if isinstance(m, torch.nn.MultiheadAttention)]
    assert attention and all(isinstance(m, Int8Attention) for m in attention)
    assert not any(type(m) is torch.nn.Linear for m in visual.modules())
    assert not any(isinstance(m, (Int8Attention, Int8Linear)) for m in text.modules())  # texts stay fp32


@pytest.mark.parametrize("precision, device, words", [
    ("int8", "cuda", "--precision int8 runs on CPUs only; on CUDA use fp16, bf16 or fp32"),
    ("fp16", "cpu", "--precision fp16 needs CUDA; on a CPU use int8, bf16 or fp32"),
    ("int4", "cpu", "unknown precision 'int4'; choose one of auto, fp32, int8, bf16, fp16"),
])
def test_a_precision_the_device_cannot_run_is_refused(precision, device, words):
    with pytest.raises(InvalidArgumentError, match=re.escape(words)):
        resolve_precision(precision, device)


def test_int8_stays_within_the_guard_and_ranks_as_float32(encoder, int8_encoder):
    images = [make_image(seed) for seed in range(48)]
    exact, reduced = encoder.encode_images(images), int8_encoder.encode_images(images)
    assert cosines(exact, reduced).min() >= MIN_COSINE
    texts_exact, texts_reduced = encoder.encode_texts(QUERIES), int8_encoder.encode_texts(QUERIES)
    assert cosines(texts_exact, texts_reduced).min() >= MIN_COSINE
    # int8's top 10 is float32's, up to near-ties: each result scores within 0.01 of float32's score at its rank
    k = 10
    truth = np.sort(texts_exact @ exact.T, axis=1)[:, ::-1][:, :k]
    order = np.argsort(-(texts_reduced @ reduced.T), axis=1, kind="stable")[:, :k]
    assert np.all(np.take_along_axis(texts_exact @ exact.T, order, axis=1) >= truth - 0.01)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_int8_vit_b_32_keeps_cosine_0999_and_the_top_10(vit_b_32):
    """The seeded ViT-B-32 (benchmarks/bench_precision.py measures it at scale)."""
    int8 = reduce(vit_b_32, "int8")
    assert int8.fingerprint.precision == "int8"
    images = [make_image(seed, size=(320, 240)) for seed in range(32)]
    exact, reduced = vit_b_32.encode_images(images), int8.encode_images(images)
    assert cosines(exact, reduced).min() >= 0.999
    texts = [f"a photo of {n} {thing}" for n in ("one", "two", "some") for thing in ("dogs", "cars", "trees")]
    queries_exact, queries_reduced = vit_b_32.encode_texts(texts), int8.encode_texts(texts)
    truth = np.sort(queries_exact @ exact.T, axis=1)[:, ::-1][:, :10]
    order = np.argsort(-(queries_reduced @ reduced.T), axis=1, kind="stable")[:, :10]
    assert np.all(np.take_along_axis(queries_exact @ exact.T, order, axis=1) >= truth - 0.005)


def test_int8_encodes_texts_as_fp32_through_the_trimmed_tower(int8_encoder, encoder):
    assert int8_encoder._text_tower is not None
    exact = encoder.encode_texts(QUERIES)
    packed = int8_encoder.encode_texts(QUERIES)  # the short texts share rows
    alone = np.concatenate([int8_encoder.encode_texts([text]) for text in QUERIES])
    np.testing.assert_allclose(packed, exact, atol=1e-6)
    np.testing.assert_allclose(alone, exact, atol=1e-5)  # as the fp32 tower's own layouts differ (test_encoder)


def test_the_guard_falls_back_to_fp32_once_and_says_so(outlier_checkpoint, caplog):
    with caplog.at_level(logging.WARNING, logger=precision_module.__name__):
        encoder = load_encoder(TINY_MODEL, str(outlier_checkpoint), device="cpu", precision="int8")
    fingerprint = encoder.fingerprint
    assert fingerprint.precision == "fp32"
    assert re.search(rf"int8 gave cosine 0\.\d+ < {MIN_COSINE} to fp32 on probe inputs: fell back to fp32",
                     fingerprint.precision_note)
    assert fingerprint.precision_note in fingerprint.describe()
    plain = dataclasses.replace(fingerprint, precision_note=None).describe()
    assert [r.getMessage() for r in caplog.records] == [f"{plain}: {fingerprint.precision_note}"]
    assert fingerprint.to_dict()["precision"] == "fp32"  # what ran is what a bundle records
    exact = load_encoder(TINY_MODEL, str(outlier_checkpoint), device="cpu", precision="fp32")
    assert not any(isinstance(m, Int8Attention) for m in encoder.model.modules())
    np.testing.assert_allclose(encoder.encode_texts(QUERIES), exact.encode_texts(QUERIES), atol=1e-6)

def test_the_outlier_model_is_the_tiny_model_in_float32(outlier_checkpoint, encoder):
    """So the fallback above is int8's fault, not a broken model's; the unchanged tiny model passes the guard."""
    exact = load_encoder(TINY_MODEL, str(outlier_checkpoint), device="cpu", precision="fp32")
    assert cosines(exact.encode_texts(QUERIES), encoder.encode_texts(QUERIES)).min() > 0.9999


def test_auto_takes_bf16_where_the_cpu_has_it_and_it_is_faster(encoder, monkeypatch):
    monkeypatch.setattr(precision_module, "native_bf16", lambda: True)
    monkeypatch.setattr(precision_module, "_seconds",
                        lambda reduced, images: {"int8": 2.0, "bf16": 1.0}[reduced.fingerprint.precision])
    assert reduce(encoder, "int8", auto=True).fingerprint.precision == "bf16"
    monkeypatch.setattr(precision_module, "_seconds",
                        lambda reduced, images: {"int8": 1.0, "bf16": 2.0}[reduced.fingerprint.precision])
    assert reduce(encoder, "int8", auto=True).fingerprint.precision == "int8"
    assert reduce(encoder, "int8").fingerprint.precision == "int8"  # asked for int8: no bf16 tried


def test_bf16_loads_guarded(tiny_checkpoint, encoder):
    bf16 = load_encoder(TINY_MODEL, str(tiny_checkpoint), device="cpu", precision="bf16")
    assert bf16.fingerprint.precision == "bf16" and bf16.dtype == torch.bfloat16
    assert cosines(bf16.encode_texts(QUERIES), encoder.encode_texts(QUERIES)).min() >= MIN_COSINE


def test_the_fingerprint_records_precision_and_old_bundles_are_fp32():
    fp = ModelFingerprint("tiny", "/w.pt", 4, "abc", None, precision="int8")
    assert ModelFingerprint.from_dict(fp.to_dict()) == fp
    old = {k: v for k, v in fp.to_dict().items() if k != "precision"}
    assert ModelFingerprint.from_dict(old).precision == "fp32"
    fp32 = ModelFingerprint.from_dict(old)
    assert fp.same_space(fp32) and not fp.same_vectors(fp32)  # queries may differ; a bundle's vectors may not
    with pytest.raises(ModelMismatchError, match="holds int8 vectors, but the encoder runs in fp32; .*"
                                                 "use --precision int8 \\(or leave it out\\), or build a new index"):
        fp.check_same_vectors(fp32, where="the index")


def test_a_bundle_keeps_its_precision(tmp_path, make_config):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 6, exts=(".png",))
    assert make_config(photos, precision="int8")().model["precision"] == "int8"  # the build's --json
    assert Bundle.open(str(tmp_path / "index")).fingerprint.precision == "int8"
    make_photo_tree(photos / "more", 2, seed=7, exts=(".png",))
    with pytest.raises(ModelMismatchError, match=r"holds int8 vectors, not fp32; leave --precision out .*--index"):
        make_config(photos, precision="fp32")()
    summary = make_config(photos)()  # auto keeps the bundle's int8
    assert summary.embedded == 2 and Bundle.open(str(tmp_path / "index")).fingerprint.precision == "int8"
    # queries may come in another precision: the bundle's vectors stay comparable; auto queries as the bundle
    searcher = Searcher.open(str(tmp_path / "index"), device="cpu", precision="fp32")
    assert searcher.encoder.fingerprint.precision == "fp32" and searcher.search_text("a red square", k=3).results
    assert Searcher.open(str(tmp_path / "index"), device="cpu").encoder.fingerprint.precision == "int8"


def test_queries_follow_the_bundles_precision_where_the_device_runs_it():
    assert for_bundle("auto", "fp32", "cpu") == "fp32" and for_bundle("auto", "int8", "cpu") == "int8"
    assert for_bundle("auto", "fp16", "cpu") == "auto"  # fp16 vectors from a GPU: the CPU's own auto
    assert for_bundle("auto", "int8", "cuda") == "auto" and for_bundle("bf16", "fp32", "cpu") == "bf16"


def test_a_bundle_written_before_precision_was_recorded_opens_and_updates_in_fp32(tmp_path, make_config):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 4, exts=(".png",))
    make_config(photos, precision="fp32")()
    manifest = tmp_path / "index" / MANIFEST
    data = json.loads(manifest.read_text())
    del data["model"]["precision"]
    manifest.write_text(json.dumps(data))
    assert Bundle.open(str(tmp_path / "index")).fingerprint.precision == "fp32"
    make_photo_tree(photos / "more", 2, seed=3, exts=(".png",))
    assert make_config(photos)().embedded == 2  # auto: the bundle's fp32, not int8
    assert Bundle.open(str(tmp_path / "index")).fingerprint.precision == "fp32"
    with pytest.raises(ModelMismatchError, match="holds fp32 vectors, not int8"):
        make_config(photos, precision="int8")()


def test_the_readme_table_names_every_precision_and_the_threshold():
    text = README.read_text()
    section = text[text.index("## Encoder precision"):]
    section = section[:section.index("\n## ", 1)]
    rows = {line.split("|")[1].strip().strip("`") for line in section.splitlines() if line.startswith("| `")}
    assert rows == set(PRECISIONS)
    assert str(MIN_COSINE) in section and "--precision" in section and "indexer eval" in section


@pytest.mark.parametrize("name", ["encoder", "int8_encoder"])
def test_a_photos_vector_does_not_depend_on_its_batch(name, request):
    """Each activation row gets its own scale, so a build that resumes or re-embeds a few files gives the
    vectors of a build in one go (tests/test_crash.py checks that end to end)."""
    encoder = request.getfixturevalue(name)
    torch.manual_seed(1)
    images = torch.rand(12, 3, 32, 32)
    images[6:] *= 4  # batch-mates of another range
    together = encoder.encode_images(images)
    for batch in ([0, 1, 2, 3], [3], [3, 7, 11, 0], [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]):
        np.testing.assert_allclose(encoder.encode_images(images[batch]), together[batch], rtol=0, atol=1e-6)
