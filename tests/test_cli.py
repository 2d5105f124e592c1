"""The CLI: in this process through ``main(argv)``, and as a user runs it (a normal build, the offline message)."""

import json
import os
import subprocess
import sys

import open_clip
import pytest
import torch

from indexer.cli import main
from tests.photos import make_photo_tree, save_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "indexer", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=600)


def test_build_json_then_info_json(tmp_path, model_args):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 6)
    (photos / "bad.jpg").write_bytes(b"nope")
    out = run("build", photos, "--index", tmp_path / "idx", *model_args, "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)  # exactly one JSON object, nothing else on stdout
    for key in ("indexed", "added", "updated", "removed", "unchanged", "skipped", "seconds",
                "images_per_second", "index", "model"):
        assert key in summary
    assert summary["indexed"] == summary["added"] == 6
    assert summary["skipped"] == [{"path": "bad.jpg", "reason": "not_an_image: not a recognised image format"}]
    info = run("info", tmp_path / "idx", "--json")
    assert info.returncode == 0, info.stderr
    info = json.loads(info.stdout)
    assert info["count"] == 6 and info["model"] == "tiny-test" and info["bytes"] > 0 and info["updated_at"]


def test_human_output_lists_skipped_files(tmp_path, model_args, capsys):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 2)
    (photos / "empty.png").write_bytes(b"")
    assert main(["build", str(photos), *model_args]) == 0
    out = capsys.readouterr().out
    assert "indexed 2 images" in out and "skipped empty.png: empty" in out


@pytest.mark.parametrize("case", ["missing_folder", "bad_batch_size", "bad_memory", "unknown_model", "no_bundle",
                                  "gpus_on_cpu", "more_gpus_than_torch_sees", "unreadable_model_config"])
def test_fatal_problems_are_one_line_and_non_zero(tmp_path, case, capsys):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 1)
    args = {
        "missing_folder": ("build", tmp_path / "nope"),
        "bad_batch_size": ("build", photos, "--batch-size", "0"),
        "bad_memory": ("build", photos, "--max-index-memory", "lots"),
        "unknown_model": ("build", photos, "--model", "ViT-Q-99"),
        "no_bundle": ("info", tmp_path / "nothing"),
        "gpus_on_cpu": ("build", photos, "--device", "cpu", "--gpus", "2"),
        "more_gpus_than_torch_sees": ("build", photos, "--gpus", str(torch.cuda.device_count() + 1)),
        "unreadable_model_config": ("build", photos, "--model-config", tmp_path / "missing.json"),
    }[case]
    assert main([str(a) for a in args]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert not (photos / ".photoindex" / "manifest.json").exists()


def test_default_model_offline_gives_instructions_not_a_traceback(tmp_path):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 1)
    out = run("build", photos, env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "ViT-B-32" in out.stderr and "laion2b_s34b_b79k" in out.stderr
    assert "Pre-download" in out.stderr and "--pretrained" in out.stderr
    assert not (photos / ".photoindex" / "manifest.json").exists()


def test_models_lists_the_default(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "ViT-B-32" in out and "(default)" in out


@pytest.mark.slow
@pytest.mark.timeout(600)  # ViT-B-32 or killed builder processes: past the default limit on a busy machine
def test_real_architecture_checkpoint_through_pretrained_path(tmp_path, capsys):
    """A seeded random-init ViT-B-32, saved to a file and indexed via --pretrained PATH."""
    torch.manual_seed(0)
    checkpoint = tmp_path / "vit-b-32.pt"
    torch.save(open_clip.create_model("ViT-B-32").state_dict(), checkpoint)
    photos = tmp_path / "photos"
    for i in range(8):
        save_image(photos / f"p{i}.jpg", i, size=(1600, 1200), quality=90)
    args = ["build", str(photos), "--model", "ViT-B-32", "--pretrained", str(checkpoint), "--json", "--batch-size", "8"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["embedded"] == 8 and summary["model"]["name"] == "ViT-B-32"
    assert main(["info", str(photos / ".photoindex"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dim"] == 512 and info["count"] == 8
