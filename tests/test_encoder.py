import json
import logging
import os
import shutil
import time

import huggingface_hub.constants
import numpy as np
import open_clip
import pytest
import torch

from search.encoding import weights
from search.encoding.encoder import load_encoder, register_model_config
from search.errors import InvalidArgumentError, ModelLoadError, ModelMismatchError, WeightsUnavailableError
from search.encoding.fingerprint import DEFAULT_MODEL, DEFAULT_PRETRAINED, ModelFingerprint
from search.encoding.text_tower import TrimmedTextTower, pack_rows
from tests.conftest import TINY_MODEL
from search.query.searcher import Searcher
from tests.photos import make_image, make_photo_tree


def test_default_model_and_tag_exist_in_open_clip_registry():
    assert DEFAULT_MODEL in open_clip.list_models()
    assert (DEFAULT_MODEL, DEFAULT_PRETRAINED) in open_clip.list_pretrained()


def test_checkpoint_file_is_fingerprinted(encoder, tiny_checkpoint):
    fp = encoder.fingerprint
    assert (fp.name, fp.pretrained, fp.dim) == (TINY_MODEL, str(tiny_checkpoint), 32)
    assert len(fp.checkpoint_sha256) == 64
    assert fp.config["embed_dim"] == 32


def test_outputs_are_float32_unit_vectors(encoder):
    images = encoder.encode_images([make_image(i) for i in range(3)])
    texts = encoder.encode_texts(["a red square", "a blue sky"])
    for out, n in ((images, 3), (texts, 2)):
        assert out.dtype == np.float32 and out.shape == (n, 32)
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert encoder.encode_texts([]).shape == (0, 32)


def test_image_vector_equals_open_clip_reference(encoder, tiny_checkpoint):
    model, _, preprocess = open_clip.create_model_and_transforms(TINY_MODEL, pretrained=str(tiny_checkpoint))
    image = make_image(11, (120, 90))
    with torch.no_grad():
        reference = model.eval().encode_image(preprocess(image)[None], normalize=True)[0].numpy()
    ours = encoder.encode_images([image])[0]
    assert float(ours @ reference) >= 0.999


def test_unknown_model_suggests_close_names():
    with pytest.raises(ModelLoadError, match="did you mean ViT-B-32"):
        load_encoder("ViT-B-32x", DEFAULT_PRETRAINED)


def test_unknown_tag_lists_available_tags():
    with pytest.raises(ModelLoadError, match="available tags: .*laion2b_s34b_b79k"):
        load_encoder(DEFAULT_MODEL, "no-such-tag")


def test_missing_checkpoint_file():
    with pytest.raises(ModelLoadError, match="checkpoint file not found"):
        load_encoder(DEFAULT_MODEL, "/nonexistent/model.pt")


def test_checkpoint_of_another_architecture(tiny_checkpoint):
    with pytest.raises(ModelLoadError, match="cannot load model"):
        load_encoder("RN50", str(tiny_checkpoint))


def test_unknown_device():
    with pytest.raises(InvalidArgumentError, match="auto, cpu, cuda"):
        load_encoder(TINY_MODEL, None, device="tpu")


@pytest.mark.parametrize(
    "name, tag", [(DEFAULT_MODEL, DEFAULT_PRETRAINED), ("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", None)]
)
def test_offline_without_cached_weights_is_one_clear_error(monkeypatch, tmp_path, name, tag):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(weights, "hub_reachable", lambda *a, **k: False)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as e:
        load_encoder(name, tag, device="cpu", cache_dir=str(tmp_path / "hub"))
    assert time.monotonic() - start < 30
    message = str(e.value)
    assert name in message and str(tmp_path / "hub") in message
    assert "Pre-download" in message and "--pretrained /path/to/" in message


def fake_hub_cache(cache, repo, files):
    """A Hugging Face cache holding ``files`` (name -> source path) of ``repo``, laid out as huggingface_hub lays it."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)
    for name, source in files.items():
        shutil.copy(source, snapshot / name)
    return snapshot


def test_offline_hub_model_loads_from_the_cache_without_a_global_switch(monkeypatch, tmp_path, encoder,
                                                                        tiny_checkpoint):
    """The hub down, an hf-hub: model in the cache: loaded from there, at once, with the vectors of the file."""
    from tests.conftest import TINY_CONFIG

    config = tmp_path / "open_clip_config.json"
    config.write_text(json.dumps({"model_cfg": TINY_CONFIG, "preprocess_cfg": {}}))
    fake_hub_cache(tmp_path / "hub", "test/tiny", {"open_clip_config.json": config,
                                                   "open_clip_pytorch_model.bin": tiny_checkpoint})
    monkeypatch.setattr(weights, "hub_reachable", lambda *a, **k: False)
    real_create, seen = open_clip.create_model_and_transforms, []

    def create(*args, **kwargs):  # what the process looks like while open_clip loads
        seen.append((huggingface_hub.constants.HF_HUB_OFFLINE, logging.root.manager.disable))
        return real_create(*args, **kwargs)

    monkeypatch.setattr(open_clip, "create_model_and_transforms", create)
    offline_before = huggingface_hub.constants.HF_HUB_OFFLINE
    start = time.monotonic()
    hub_encoder = load_encoder("hf-hub:test/tiny", None, device="cpu", cache_dir=str(tmp_path / "hub"),
                               precision="fp32")
    assert time.monotonic() - start < 30
    assert seen == [(offline_before, 0)] and huggingface_hub.constants.HF_HUB_OFFLINE == offline_before
    assert hub_encoder.fingerprint.name == "hf-hub:test/tiny" and hub_encoder.fingerprint.pretrained is None
    np.testing.assert_allclose(hub_encoder.encode_texts(["a red square"]), encoder.encode_texts(["a red square"]),
                               atol=1e-5)


def test_offline_tag_resolves_to_the_cached_file_with_the_tags_preprocessing(monkeypatch, tmp_path,
                                                                             tiny_checkpoint):
    repo = open_clip.get_pretrained_cfg(DEFAULT_MODEL, DEFAULT_PRETRAINED)["hf_hub"].rstrip("/")
    snapshot = fake_hub_cache(tmp_path / "hub", repo, {"open_clip_pytorch_model.bin": tiny_checkpoint})
    monkeypatch.setattr(weights, "hub_reachable", lambda *a, **k: False)
    source = weights.resolve(DEFAULT_MODEL, DEFAULT_PRETRAINED, cache_dir=str(tmp_path / "hub"))
    assert source.pretrained == str(snapshot / "open_clip_pytorch_model.bin")
    assert source.recorded == DEFAULT_PRETRAINED and source.checkpoint_sha256 is None
    assert source.preprocess["image_mean"] == open_clip.get_pretrained_cfg(DEFAULT_MODEL, DEFAULT_PRETRAINED)["mean"]


def test_fingerprints_compare_by_weights_not_path():
    a = ModelFingerprint("ViT-B-32", "/a/model.pt", 512, "ab" * 32)
    b = ModelFingerprint("ViT-B-32", "/elsewhere/model.pt", 512, "ab" * 32)
    c = ModelFingerprint("ViT-B-32", "laion2b_s34b_b79k", 512)
    assert a.same_space(b) and not a.same_space(c)
    with pytest.raises(ModelMismatchError, match="built with ViT-B-32"):
        a.check_same_space(c)


TEXTS = ["a", "a red square", "a photo of a dog on the beach at sunset, seen from far away", "word " * 90, ""]


def test_text_vectors_equal_open_clip_full_context(encoder, tiny_checkpoint):
    """Text encoding stops at the end-of-text token; the vectors are the 77-token ones."""
    model = open_clip.create_model(TINY_MODEL, pretrained=str(tiny_checkpoint)).eval()
    tokenizer = open_clip.get_tokenizer(TINY_MODEL)
    assert TrimmedTextTower.for_model(model, tokenizer, "cpu") is not None
    with torch.no_grad():
        reference = model.encode_text(tokenizer(TEXTS), normalize=True).numpy()
    np.testing.assert_allclose(encoder.encode_texts(TEXTS), reference, atol=1e-5)  # one text fills the context
    np.testing.assert_allclose(encoder.encode_texts(TEXTS[:3]), reference[:3], atol=1e-5)  # trimmed, mixed lengths
    for text, expected in zip(TEXTS, reference):
        np.testing.assert_allclose(encoder.encode_texts([text])[0], expected, atol=1e-5)


QUERIES = ["dog", "red car", "sunset over the sea", "a cat sleeping on a laptop keyboard", "snow",
           "kids playing football in the rain on a sunday afternoon", "wedding cake", "boat"]


def test_short_texts_share_rows_and_keep_their_vectors(encoder, monkeypatch):
    tower, packs = encoder._text_tower, []
    monkeypatch.setattr(tower, "_packed", lambda *args, packed=tower._packed: packs.append(1) or packed(*args))
    tokens = encoder.tokenizer(QUERIES)
    lengths = (tokens.argmax(dim=-1) + 1).tolist()
    width = max(lengths)
    rows = pack_rows(lengths, width)
    assert len(rows) < len(QUERIES)  # so the calls below pack
    assert sorted(i for row in rows for i in row) == list(range(len(QUERIES)))
    assert all(sum(lengths[i] for i in row) <= width for row in rows)
    with torch.inference_mode():
        packed = tower.encode(tokens).numpy()
        np.testing.assert_allclose(packed, tower.encode(tokens, pack=False).numpy(), atol=1e-5)
    alone = np.stack([encoder.encode_texts([text])[0] for text in QUERIES])
    np.testing.assert_allclose(encoder.encode_texts(QUERIES), alone, atol=1e-5)
    assert len(packs) == 2  # on a CPU, calls of several texts pack by default


def test_pack_rows_fits_longest_first():
    assert pack_rows([5, 2, 3, 1], 5) == [[0], [2, 1], [3]]
    assert pack_rows([4, 4], 4) == [[0], [1]]
    assert pack_rows([1, 1, 1], 3) == [[0, 1, 2]]


def test_text_towers_the_shortcut_does_not_describe_keep_full_context(tiny_checkpoint):
    tokenizer = open_clip.get_tokenizer(TINY_MODEL)
    model = open_clip.create_model(TINY_MODEL, pretrained=str(tiny_checkpoint)).eval()
    model.text_pool_type = "last"  # pooling at the last position reads the padding
    assert TrimmedTextTower.for_model(model, tokenizer, "cpu") is None
    model.text_pool_type = "argmax"
    model.attn_mask = torch.zeros_like(model.attn_mask)  # bidirectional attention: padding matters
    assert TrimmedTextTower.for_model(model, tokenizer, "cpu") is None


@pytest.mark.slow
def test_the_default_architecture_stops_at_the_end_of_text_token():
    """ViT-B-32 (seeded random init): the trimmed text tower is used and gives open_clip's vectors."""
    torch.manual_seed(0)
    model = open_clip.create_model(DEFAULT_MODEL).eval()
    tokenizer = open_clip.get_tokenizer(DEFAULT_MODEL)
    tower = TrimmedTextTower.for_model(model, tokenizer, "cpu")
    assert tower is not None
    with torch.no_grad():
        for batch in [TEXTS[:3], QUERIES, *([t] for t in TEXTS)]:  # trimmed to the longest text of each call
            tokens = tokenizer(batch)
            expected = model.encode_text(tokens).numpy()
            np.testing.assert_allclose(tower.encode(tokens).numpy(), expected, atol=1e-4)  # short ones packed
            np.testing.assert_allclose(tower.encode(tokens, pack=False).numpy(), expected, atol=1e-4)


def test_fp16_model_takes_float32_images(encoder, tiny_checkpoint):
    """As on CUDA, where the model is fp16 but some of its parameters (the class embedding) stay float32."""
    from search.encoding.encoder import Encoder

    model, _, preprocess = open_clip.create_model_and_transforms(
        TINY_MODEL, pretrained=str(tiny_checkpoint), precision="fp16")
    assert next(model.visual.parameters()).dtype == torch.float32  # the parameter that once set the input dtype
    half = Encoder(model, preprocess, encoder.tokenizer, encoder.fingerprint, "cpu")
    assert half.dtype == torch.float16
    pixels = torch.stack([preprocess(make_image(seed)) for seed in range(3)])
    vectors = half.encode_images(pixels)
    assert vectors.dtype == np.float32
    assert np.all(np.sum(vectors * encoder.encode_images(pixels), axis=1) > 0.99)


@pytest.mark.parametrize("name", ["{target}", "sub/name", "..", "a..b", "bad\\name", "new\nline", ""])
def test_custom_architecture_name_that_is_not_a_file_name_writes_nothing(tmp_path, name):
    """A bundle's manifest names its architecture; a name like ../../x/settings once overwrote
    x/settings.json when the server registered the config (issue 14, item 4)."""
    target = tmp_path / "settings"
    name = name.format(target="../" * 12 + str(target).lstrip("/"))
    with pytest.raises(ModelLoadError, match="invalid model name"):
        register_model_config(name, {"embed_dim": 8})
    assert not os.path.exists(str(target) + ".json")


def test_bundle_naming_a_path_as_its_model_writes_nothing(tmp_path, make_config):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 2)
    make_config(photos)()
    manifest_path = tmp_path / "index" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    target = tmp_path / "settings"
    manifest["model"]["name"] = "../" * 12 + str(target).lstrip("/")
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="invalid model name"):
        Searcher.open(str(tmp_path / "index"), device="cpu")
    assert not os.path.exists(str(target) + ".json")
