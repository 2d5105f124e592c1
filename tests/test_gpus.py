"""One builder process per GPU (``indexer.executors.gpus``), run here as several processes on the CPU.

The parent's choice of devices is the only thing replaced: the processes are
spawned, load the model, read, decode and embed their share, and write the
checkpoint exactly as they do on GPUs.
"""

import os
import shutil
import time

import numpy as np
import pytest
import torch

from indexer import BuildConfig, BuildError
from indexer.checkpoint import Checkpoint
from indexer.executors import gpus
from search.store.bundle import Bundle
from search.errors import InvalidArgumentError, SearchError
from search.encoding.fingerprint import ModelFingerprint
from tests.photos import add_broken_files, make_photo_tree

TWO = ["cpu", "cpu"]


@pytest.fixture
def two_processes(monkeypatch):
    """Two builder processes, whatever the machine has."""
    monkeypatch.setattr(gpus, "builder_devices", lambda config, files: TWO)


def fingerprint(name):
    return ModelFingerprint(name, None, 4)


def test_checkpoint_writers_share_a_folder_and_only_the_same_model_is_read(tmp_path):
    a, b, other = Checkpoint(tmp_path), Checkpoint(tmp_path), Checkpoint(tmp_path)
    for writer, sha in ((a, "a1"), (b, "b1"), (a, "a2"), (other, "o1")):
        writer.add(sha, np.full(4, len(sha), np.float32))
        writer.flush(fingerprint("other" if writer is other else "m"))
    (tmp_path / "checkpoint" / "chunk-damaged.npz").write_bytes(b"not a zip")
    (tmp_path / "checkpoint" / "chunk-partial.npz.tmp").write_bytes(b"")
    assert len(os.listdir(tmp_path / "checkpoint")) == 6
    assert Checkpoint(tmp_path).hashes(fingerprint("m")) == {"a1", "a2", "b1"}
    assert set(Checkpoint(tmp_path).load(fingerprint("m"))) == {"a1", "a2", "b1"}
    assert set(Checkpoint(tmp_path).load(fingerprint("other"))) == {"o1"}


def test_devices_are_every_gpu_torch_sees_unless_gpus_says(monkeypatch, tmp_path):
    def devices(files=100_000, **settings):
        return gpus.builder_devices(BuildConfig(photos=str(tmp_path), **settings), files)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices(device="cpu") == ["cpu"]
    assert devices() == ["auto"]
    with pytest.raises(InvalidArgumentError, match="torch sees no CUDA device; leave --gpus out"):
        devices(gpus=2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert devices() == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert devices(files=3 * gpus.MIN_SHARE) == ["cuda:0", "cuda:1", "cuda:2"]  # a share per process worth its start
    assert devices(files=gpus.MIN_SHARE + 1, device="cuda") == ["cuda"]  # this process, as on one GPU
    assert devices(files=10, gpus=2) == ["cuda:0", "cuda:1"]
    assert devices(gpus=1) == ["auto"]
    with pytest.raises(InvalidArgumentError, match="--gpus 5 was asked for, but torch sees 4 CUDA devices; use at most 4"):
        devices(gpus=5)
    for bad, message in (({"gpus": 0}, "--gpus must be an integer >= 1"),
                         ({"gpus": 2, "device": "cpu"}, "--gpus needs CUDA")):
        with pytest.raises(InvalidArgumentError, match=message):
            BuildConfig(photos=str(tmp_path), **bad)


@pytest.mark.slow  # spawns processes that import torch
def test_builder_processes_make_the_bundle_one_process_makes(tmp_path, make_config, monkeypatch):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 17, exts=(".jpg", ".png"))
    shutil.copy(photos / "album0" / "img0000.jpg", photos / "copy.jpg")  # the same content, maybe in another share
    expected_bad = add_broken_files(photos)
    one = make_config(photos, index=str(tmp_path / "one"))()
    monkeypatch.setattr(gpus, "builder_devices", lambda config, files: TWO)
    both = make_config(photos, index=str(tmp_path / "both"), decode="device", workers=2)()
    assert (both.devices, one.devices) == (TWO, [])
    assert both.indexed == one.indexed == 18
    assert both.embedded + both.reused == one.embedded + one.reused == 18  # the copy is embedded once per share
    assert both.decoded_on_device == both.embedded - 8 and both.stages["embed"] > 0  # every JPEG embedded
    assert {s["path"]: s["reason"].split(":")[0] for s in both.skipped} == expected_bad
    a, b = Bundle.open(tmp_path / "one"), Bundle.open(tmp_path / "both")
    assert a.metadata.all() == b.metadata.all()
    assert np.min(np.sum(a.vectors * b.vectors, axis=1)) >= 0.99  # torchvision's JPEG decoder against Pillow's
    assert not os.path.exists(Checkpoint(str(tmp_path / "both")).dir)


@pytest.mark.slow  # spawns processes that import torch
def test_builder_processes_resume_an_interrupted_build(tmp_path, make_config, interrupt_build, monkeypatch):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 40)
    interrupt_build(photos)
    monkeypatch.setattr(gpus, "builder_devices", lambda config, files: TWO)
    summary = make_config(photos)()
    assert (summary.embedded, summary.reused, summary.indexed) == (40 - 16, 16, 40)
    make_photo_tree(photos / "more", 2, seed=1)  # an update with nothing saved to resume
    shutil.copy(photos / "album0" / "img0000.jpg", photos / "more" / "copy.jpg")  # known to the bundle
    summary = make_config(photos)()
    assert (summary.embedded, summary.reused, summary.unchanged, summary.indexed) == (2, 1, 40, 43)


@pytest.mark.slow  # spawns processes that import torch
def test_an_error_in_one_process_stops_the_build(tmp_path, make_config, two_processes):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 4)
    with pytest.raises(SearchError, match="no-such-tag"):
        make_config(photos, pretrained="no-such-tag")()
    assert not os.path.exists(tmp_path / "index" / "manifest.json")


def die_or_wait(device, number, count, files):
    if number == 1:
        os._exit(3)
    time.sleep(60)


@pytest.mark.slow  # spawns processes that import torch
def test_a_process_that_dies_stops_the_others():
    start = time.perf_counter()
    with pytest.raises(BuildError, match=r"the builder process for cpu:1 died \(exit code 3\); run the same command"):
        gpus.run_shards(die_or_wait, ["cpu:0", "cpu:1"], [])
    assert time.perf_counter() - start < 30  # the other process was stopped, not waited for
