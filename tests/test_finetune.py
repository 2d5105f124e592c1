"""``indexer finetune``: both modes, what they do to the index, early stopping, resume, bad input."""

import itertools
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from indexer.cli import main
from search.encoding.encoder import load_encoder
from search.errors import InvalidArgumentError, ModelMismatchError
from search.quality.captions import read_captions
from search.quality.finetune import finetune
from search.quality.training import SETTINGS, FinetuneSettings, make_schedule, split_photos
from search.query.searcher import Searcher
from search.query.terms import QueryKind, QueryTerm
from search.store.bundle import Bundle
from tests.captioned import kind_of, make_captioned_set
from tests.conftest import TINY_MODEL

FAST = {"epochs": 2, "batch_size": 16, "lr": 1e-3}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Training steps of the tiny model are too small to share between threads: on a busy CPU two threads
    waiting for each other made them several times slower (benchmarks/RESULTS.md, "Fine-tuning")."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    make_captioned_set(root, per_kind=2)
    return root


@pytest.fixture
def shapes_index(shapes, tmp_path, make_config):
    """The shapes photos (a copy this test may change) indexed with the tiny model at ``tmp_path/index``."""
    shutil.copytree(shapes / "photos", tmp_path / "photos")
    make_config(tmp_path / "photos")()
    return tmp_path / "index", read_captions(str(shapes / "captions.jsonl"))


def test_text_mode_keeps_the_index_valid_and_the_image_tower_unchanged(shapes_index, tmp_path, make_config, encoder):
    index, captions = shapes_index
    out = tmp_path / "text.safetensors"
    report = finetune(str(index), captions, str(out), FinetuneSettings(mode="text", **FAST), device="cpu")
    assert report.photos == {"train": 38, "held_out": 10} and len(report.epochs) == 2
    assert set(report.before) == {"text_to_image", "image_to_text", "photos", "captions"}
    assert not (tmp_path / "text.safetensors.resume").exists()
    tuned = load_encoder(TINY_MODEL, str(out), device="cpu", precision="fp32")  # as the fixture encoder
    page = Searcher(Bundle.open(str(index), use_gpu=False), tuned).search([QueryTerm(QueryKind.TEXT, "a red circle")], k=5)  # the service's path
    assert len(page.results) == 5
    images = torch.rand(4, 3, 32, 32)
    assert np.array_equal(tuned.encode_images(images), encoder.encode_images(images))
    assert not np.allclose(tuned.encode_texts(["a red circle"]), encoder.encode_texts(["a red circle"]))
    summary = make_config(tmp_path / "photos", pretrained=str(out))()  # the indexer too: nothing to re-embed
    assert summary.embedded == 0 and summary.unchanged == 48


def test_full_mode_makes_a_new_model_that_the_old_index_refuses(shapes_index, tmp_path, make_config, capsys):
    index, captions = shapes_index
    out = tmp_path / "full.safetensors"
    report = finetune(str(index), captions, str(out), FinetuneSettings(mode="full", **FAST), device="cpu")
    assert report.mode == "full" and report.epochs[0]["loss"] > 0
    tuned = load_encoder(TINY_MODEL, str(out), device="cpu", precision="fp32")  # as the fixture encoder
    with pytest.raises(ModelMismatchError, match="build a new index"):
        Bundle.open(str(index), use_gpu=False).fingerprint.check_same_space(tuned.fingerprint)
    (tmp_path / "photos" / "new.png").write_bytes((tmp_path / "photos" / "kind00_000.png").read_bytes())
    with pytest.raises(ModelMismatchError, match="build a new index"):
        make_config(tmp_path / "photos", pretrained=str(out))()
    summary = make_config(tmp_path / "photos", pretrained=str(out), index=str(tmp_path / "new-index"))()
    assert summary.indexed == 49


def test_cli_finetune_text_then_eval_with_the_new_text_tower(shapes_index, tmp_path, shapes, capsys):
    index, _ = shapes_index
    out = tmp_path / "t.safetensors"
    args = ["finetune", "--index", str(index), "--captions", str(shapes / "captions.jsonl"), "--out", str(out),
            "--epochs", "1", "--lr", "1e-3", "--device", "cpu"]
    assert main(args + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "text" and report["after"]["text_to_image"]["recall@1"] is not None
    assert main(["eval", "--index", str(index), "--captions", str(shapes / "captions.jsonl"), "--pretrained",
                 str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["pretrained"] == str(out)
    assert main(args) == 0
    assert "search the same index with --pretrained" in capsys.readouterr().out


def test_early_stopping_keeps_the_starting_weights_when_nothing_improves(shapes_index, tmp_path):
    index, captions = shapes_index
    settings = FinetuneSettings(mode="text", epochs=10, patience=1, lr=1e-12, batch_size=16)
    report = finetune(str(index), captions, str(tmp_path / "o.safetensors"), settings, device="cpu")
    assert report.stopped_early and len(report.epochs) == 2
    assert report.best_epoch == 0 and report.after == report.before


def test_an_interrupted_run_resumes_where_it_was_and_ends_the_same(shapes_index, tmp_path):
    index, captions = shapes_index
    settings = FinetuneSettings(mode="text", checkpoint_every=2, **FAST)  # 3 steps an epoch
    whole = finetune(str(index), captions, str(tmp_path / "whole.safetensors"), settings, device="cpu")

    def stop_at_step_5(step):  # after the save at the second step of the second epoch
        if step == 5:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C

    out = str(tmp_path / "again.safetensors")
    with pytest.raises(KeyboardInterrupt):
        finetune(str(index), captions, out, settings, device="cpu", on_step=stop_at_step_5)
    steps = []
    resumed = finetune(str(index), captions, out, settings, device="cpu", on_step=steps.append)
    assert resumed.resumed and steps[0] == 6
    assert resumed.after == whole.after and resumed.best_epoch == whole.best_epoch
    a, b = load_file(str(tmp_path / "whole.safetensors")), load_file(out)
    assert all(torch.allclose(a[k], b[k]) for k in a)


def test_a_saved_state_of_another_run_is_refused(shapes_index, tmp_path):
    index, captions = shapes_index
    out = str(tmp_path / "o.safetensors")
    with pytest.raises(KeyboardInterrupt):
        finetune(str(index), captions, out, FinetuneSettings(checkpoint_every=1, **FAST), device="cpu",
                 on_step=lambda step: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(InvalidArgumentError, match="different fine-tuning run"):
        finetune(str(index), captions, out, FinetuneSettings(checkpoint_every=1, **(FAST | {"lr": 5e-4})),
                 device="cpu")


def test_broken_and_missing_photos_are_reported_and_left_out(shapes_index, tmp_path):
    index, captions = shapes_index
    train, held = split_photos(captions.photos, FinetuneSettings().held_out, 0)
    for photo in (train[0], held[0]):  # one met while training, one while measuring
        (tmp_path / "photos" / photo).write_text("broken after the build")
    captions.captions.append(type(captions.captions[0])("gone.png", "not there", "line 999"))
    report = finetune(str(index), captions, str(tmp_path / "o.safetensors"),
                      FinetuneSettings(mode="full", **FAST), device="cpu")
    reasons = {p["path"]: p["reason"] for p in report.problems}
    assert reasons == {"gone.png": "missing", train[0]: "broken", held[0]: "broken"}
    assert report.left_out == {"missing": 1, "broken": 4}  # two captions of each broken photo
    assert report.photos["held_out"] == 9 and len(report.epochs) == 2


def test_a_set_too_small_to_split_is_a_clear_error(shapes_index, tmp_path, capsys):
    index, captions = shapes_index
    few = tmp_path / "few.jsonl"
    few.write_text("\n".join(json.dumps({"path": c.path, "caption": c.text}) for c in captions.captions[:16]))
    assert main(["finetune", "--index", str(index), "--captions", str(few), "--out", str(tmp_path / "o.safetensors")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: too few captioned photos to split: 8 (at least 10")


@pytest.mark.parametrize("flags, message", [
    (["--mode", "lit"], "invalid choice"),
    (["--lr", "0"], "--lr must be positive"),
    (["--held-out", "1.5"], "--held-out must be a number from 0.01 to 0.9"),
])
def test_bad_settings_are_refused(shapes, tmp_path, flags, message, capsys):
    args = ["finetune", "--index", str(tmp_path), "--captions", str(shapes / "captions.jsonl"), "--out", "o.safetensors"]
    try:
        code = main(args + flags)
    except SystemExit as e:  # argparse refuses a choice itself
        code = e.code
    assert code in (1, 2) and message in capsys.readouterr().err


def test_out_must_be_a_safetensors_file(shapes_index, tmp_path):
    index, captions = shapes_index
    with pytest.raises(InvalidArgumentError, match=r"\.safetensors"):
        finetune(str(index), captions, str(tmp_path / "o.pt"))


def test_learning_rate_warms_up_then_decays_to_zero():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = make_schedule(optimizer, total_steps=100, warmup=0.1)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(rates[9:])) and rates[-1] < 0.01


def test_the_readme_lists_the_finetune_options():
    with open("README.md") as f:
        assert SETTINGS.markdown() in f.read()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_vit_b_32_fine_tunes_in_both_modes_through_a_checkpoint_file(vit_b_32, tmp_path):
    root = tmp_path / "shapes"
    photos, captions_file = make_captioned_set(root, per_kind=1, size=96)  # 24 photos
    from indexer import BuildConfig, build

    base = vit_b_32.fingerprint.pretrained
    index = str(root / "index")
    build(BuildConfig(photos=str(photos), index=index, model="ViT-B-32", pretrained=base, workers=0), progress=False)
    captions = read_captions(str(captions_file))
    for mode in ("text", "full"):
        out = str(tmp_path / f"{mode}.safetensors")
        # one step an epoch on the same 18 photos; the default rate of full fine-tuning, no warmup
        settings = FinetuneSettings(mode=mode, epochs=3, batch_size=24, lr=1e-5, warmup=0.0, held_out=0.25)
        report = finetune(index, captions, out, settings, device="cpu", key=kind_of)
        losses = [e["loss"] for e in report.epochs]
        assert losses[-1] < losses[0], (mode, losses)
        tuned = load_encoder("ViT-B-32", out, device="cpu")
        assert tuned.fingerprint.same_space(vit_b_32.fingerprint) == (mode == "text")
        summary = build(BuildConfig(photos=str(photos), index=str(tmp_path / f"{mode}-index"), model="ViT-B-32",
                                    pretrained=out, workers=0), progress=False)
        assert summary.indexed == 24
