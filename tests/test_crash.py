"""Crash safety of the indexer: SIGKILL at many moments, a full disk, two builds at once.

The kills hit a child running the CLI's ``main`` (the same code as
``python -m indexer build``), forked from a forkserver that has imported torch
but run nothing, so each costs well under a second instead of a fresh
interpreter's imports; real subprocess kills follow.
"""

import multiprocessing
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from indexer.cli import main as cli_main
from search.query.searcher import Searcher
from search.store.bundle import Bundle
from tests.photos import make_photo_tree, save_image

KILLS = 20
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, model_args):
    """A v1 bundle of 120 photos, then a folder changed into v2 (adds, edits, deletes, renames)."""
    base = tmp_path_factory.mktemp("crash")
    photos, index = base / "photos", base / "index"
    paths = make_photo_tree(photos, 120)
    args = ["build", str(photos), "--index", str(index), *model_args, "--workers", "1", "--batch-size", "8",
            "--checkpoint-every", "16"]
    assert cli_main(args + ["--json"]) == 0
    pristine = base / "v1"
    shutil.copytree(index, pristine)
    for i in range(60):
        save_image(photos / "new" / f"n{i:03d}.png", 10_000 + i, size=(160, 120))
    for p in paths[:10]:
        save_image(p, 20_000 + paths.index(p))
    for p in paths[10:20]:
        p.unlink()
    paths[20].rename(photos / "moved.jpg")
    reference = base / "reference"
    assert cli_main(args[:3] + [str(reference)] + args[4:] + ["--json"]) == 0
    return dict(photos=photos, index=index, pristine=pristine, args=args, reference=Bundle.open(reference))


def contents(bundle):
    records = bundle.metadata.all()
    return {r.path: (r.sha256, tuple(np.round(bundle.vector(r.id), 5))) for r in records}


def stage_on_disk(index):
    names = os.listdir(index)
    if any(n.endswith(".tmp") or n.startswith("manifest.json.tmp") for n in names):
        return "write"
    if os.path.isdir(index / "checkpoint") and any(n.startswith("chunk-") for n in os.listdir(index / "checkpoint")):
        return "embed"
    return "decode"


def _build(args):
    os._exit(cli_main(args))


@pytest.fixture(scope="module")
def forkserver():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["indexer.cli", "indexer.build", "search.encoding.encoder"])
    return context


def run_and_kill(context, args, delay, when=None):
    """Run a build and SIGKILL it after ``delay`` seconds, or as soon as ``when()`` is true."""
    child = context.Process(target=_build, args=(args + ["--json"],))
    child.start()
    if when is None:
        child.join(delay)
    else:
        deadline = time.monotonic() + delay
        while child.is_alive() and not when() and time.monotonic() < deadline:
            time.sleep(0.0002)
    killed = child.is_alive()
    if killed:
        os.kill(child.pid, signal.SIGKILL)
        child.join()
    return killed


@pytest.mark.slow
@pytest.mark.timeout(600)  # ViT-B-32 or killed builder processes: past the default limit on a busy machine
def test_sigkill_at_any_moment_loses_nothing(scenario, forkserver):
    index = scenario["index"]
    v1 = contents(Bundle.open(scenario["pristine"]))
    v2 = contents(scenario["reference"])
    run_and_kill(forkserver, ["info", str(scenario["pristine"])], 120)  # starts the forkserver
    # How long an uninterrupted update takes, to spread the kills over it.
    shutil.rmtree(index)
    shutil.copytree(scenario["pristine"], index)
    start = time.monotonic()
    run_and_kill(forkserver, scenario["args"], 120)
    duration = time.monotonic() - start
    rng = random.Random(0)
    stages, tried = {"decode": 0, "embed": 0, "write": 0}, 0
    for i in range(3 * KILLS):
        if tried == KILLS:
            break
        shutil.rmtree(index)
        shutil.copytree(scenario["pristine"], index)
        # A third of the kills fall at a random moment, a third as soon as the
        # first embeddings are checkpointed, a third as soon as the write begins
        # (a few ms long): timings alone would rarely hit the last two.
        wanted = ("decode", "embed", "write")[i % 3]
        delay = duration * rng.uniform(0.02, 0.95) if wanted == "decode" else 120
        when = None if wanted == "decode" else (lambda wanted=wanted: stage_on_disk(index) == wanted)
        if not run_and_kill(forkserver, scenario["args"], delay, when):
            duration *= 0.9  # the build beat the kill: aim earlier (timings vary on a busy machine)
            continue
        tried += 1
        stages[stage_on_disk(index)] += 1
        after = contents(Bundle.open(index))  # loads and answers after every kill
        assert after in (v1, v2), f"kill {i} at {delay:.2f}s left a mixed bundle"
        bundle = Bundle.open(index)
        assert Searcher(bundle).search_vector(bundle.vectors[0], k=5).results
        # The next build finishes the work exactly, reusing what was checkpointed.
        assert run_and_kill(forkserver, scenario["args"], 120) is False
        assert contents(Bundle.open(index)) == v2, f"build after kill {i} is not exact"
    assert tried == KILLS, f"only {tried} kills landed before the build ended"
    assert all(stages.values()), stages


@pytest.mark.slow
@pytest.mark.timeout(600)  # ViT-B-32 or killed builder processes: past the default limit on a busy machine
def test_real_cli_killed_then_resumed(scenario):
    index = scenario["index"]
    shutil.rmtree(index, ignore_errors=True)
    shutil.copytree(scenario["pristine"], index)
    cmd = [sys.executable, "-m", "indexer", *scenario["args"], "--json"]
    for _ in range(2):
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not (index / "checkpoint").exists() and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert Bundle.open(index).count in (120, scenario["reference"].count)
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert contents(Bundle.open(index)) == contents(scenario["reference"])


def test_disk_full_during_write_is_one_line_and_keeps_the_bundle(tmp_path, model_args):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 10)
    index = tmp_path / "index"
    base = [sys.executable, "-m", "indexer", "build", str(photos), "--index", str(index), *model_args]
    assert subprocess.run(base, cwd=ROOT, capture_output=True, timeout=300).returncode == 0
    for i in range(300):
        save_image(photos / "more" / f"m{i}.png", 500 + i, size=(48, 36))

    def small_files_only():  # writes past 8 KB fail with EFBIG, like a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    out = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=small_files_only)
    assert out.returncode == 1
    assert out.stderr.startswith("error: cannot write the index: File too large")
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert Bundle.open(index).count == 10


def test_two_builds_at_once_the_second_is_refused(tmp_path, model_args):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 200)
    cmd = [sys.executable, "-m", "indexer", "build", str(photos), "--index", str(tmp_path / "index"), *model_args]
    first = subprocess.Popen(cmd + ["--workers", "0"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock = tmp_path / "index" / ".lock"
    while first.poll() is None and not (lock.exists() and lock.read_text().strip()):
        time.sleep(0.01)
    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    first_rc = first.wait(timeout=300)
    assert first_rc == 0
    assert second.returncode == 1 and "another build is writing" in second.stderr
    assert Bundle.open(tmp_path / "index").count == 200
