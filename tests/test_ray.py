"""The build on a Ray cluster: a local cluster of three nodes on this machine, with the tiny model.

The distributed build must give the local build's bundle (ids, paths,
hashes, vectors, skipped files, search results); a worker node lost mid-job,
a killed driver and a damaged shard must all end in that same bundle, and
shards already made are not embedded again.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from indexer.cluster.shards import ShardStore  # noqa: E402
from search.query.searcher import Searcher  # noqa: E402
from search.store.bundle import Bundle  # noqa: E402
from tests.photos import add_broken_files, make_photo_tree, save_image  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = 72
GROUP = 8  # --batch-size: files per group (and shard), about


@pytest.fixture(scope="module")
def cluster():
    """A head and two worker nodes of one CPU each, this process connected as the driver."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray") / "photos"
    make_photo_tree(root, PHOTOS)
    add_broken_files(root)
    return root


@pytest.fixture(scope="module")
def local(photos, tmp_path_factory, tiny_config_file, tiny_checkpoint):
    from indexer import BuildConfig, build
    index = tmp_path_factory.mktemp("local") / "index"
    build(BuildConfig(photos=str(photos), index=str(index), **_model(tiny_config_file, tiny_checkpoint), workers=0,
                      batch_size=GROUP), progress=False)
    return Bundle.open(index, use_gpu=False)


def _model(config_file, checkpoint):
    return dict(model="tiny-test", model_config=str(config_file), pretrained=str(checkpoint))


@pytest.fixture
def ray_build(cluster, photos, tiny_config_file, tiny_checkpoint, tmp_path):
    """``ray_build(index=..., **settings)``: build ``photos`` on the cluster; returns the summary."""
    from indexer import BuildConfig, build

    def run(index=tmp_path / "index", **settings):
        options = dict(photos=str(photos), index=str(index), **_model(tiny_config_file, tiny_checkpoint),
                       batch_size=GROUP, ray=cluster[0].address, **settings)
        return build(BuildConfig(**options), progress=False)
    return run


def assert_same_bundle(index, reference):
    bundle = Bundle.open(index, use_gpu=False)
    mine, theirs = bundle.metadata.all(), reference.metadata.all()
    assert [(r.id, r.path, r.sha256, r.width, r.height) for r in mine] == \
           [(r.id, r.path, r.sha256, r.width, r.height) for r in theirs]
    np.testing.assert_array_equal(bundle.ids, reference.ids)
    cosines = np.sum(np.asarray(bundle.vectors) * np.asarray(reference.vectors), axis=1)
    assert cosines.min() >= 0.9999
    return bundle


def test_same_bundle_and_results_as_a_local_build(ray_build, local, tmp_path):
    summary = ray_build()
    assert summary.embedded == summary.indexed == summary.added == PHOTOS
    assert [s["path"] for s in summary.skipped] == sorted(
        ["broken/empty.jpg", "broken/text.png", "broken/truncated.jpg", "broken/bomb.png"])
    assert {s["path"]: s["reason"].split(":")[0] for s in summary.skipped} == {
        "broken/bomb.png": "too_many_pixels", "broken/empty.jpg": "empty", "broken/text.png": "not_an_image",
        "broken/truncated.jpg": "corrupt"}
    assert "ray_embed" in summary.stages
    bundle = assert_same_bundle(tmp_path / "index", local)
    assert not os.path.exists(tmp_path / "index" / "checkpoint")  # the shards went with the checkpoint
    ours, theirs = Searcher(bundle, encoder=None), Searcher(local, encoder=None)
    for image_id in (0, 17, 40):
        assert [r.id for r in ours.search_id(image_id, k=10).results] == \
               [r.id for r in theirs.search_id(image_id, k=10).results]


def test_rerun_embeds_only_new_files(ray_build, photos, tmp_path):
    ray_build()
    save_image(photos / "late" / "new.png", 99_001)
    try:
        summary = ray_build()
        assert (summary.embedded, summary.added, summary.unchanged) == (1, 1, PHOTOS)
    finally:
        (photos / "late" / "new.png").unlink()
        (photos / "late").rmdir()


def _embedded_rows(store):
    return sum(sum(v is not None for v in store.read(k).column("vector").to_pylist()) for k in store.keys())


def test_damaged_shard_is_made_again(ray_build, local, tmp_path):
    shards = tmp_path / "shards"
    first = ray_build(index=tmp_path / "a", shards=str(shards))
    store = ShardStore(str(shards))
    keys = store.keys()
    assert first.embedded == PHOTOS and len(keys) >= 3
    assert _embedded_rows(store) == PHOTOS  # --shards keeps them after the build
    damaged = store.path(keys[1])
    rows = sum(v is not None for v in store.read(keys[1]).column("vector").to_pylist())
    data = bytearray(open(damaged, "rb").read())
    data[len(data) // 3: len(data) // 3 + 64] = b"\xff" * 64
    open(damaged, "wb").write(bytes(data))
    assert store.read(keys[1]) is None
    again = ray_build(index=tmp_path / "b", shards=str(shards))
    assert again.embedded == rows  # only the damaged shard's files
    assert_same_bundle(tmp_path / "b", local)


def test_lost_worker_node_mid_job(cluster, ray_build, local, tmp_path):
    head, workers = cluster
    shards = tmp_path / "shards"
    done = {}
    thread = threading.Thread(target=lambda: done.update(summary=ray_build(shards=str(shards))))
    thread.start()
    deadline = time.monotonic() + 120
    while not (shards.exists() and any(n.endswith(".parquet") for n in os.listdir(shards))):
        assert time.monotonic() < deadline and thread.is_alive(), "no shard was written"
        time.sleep(0.05)
    head.remove_node(workers.pop())  # its raylet and every worker process on it die
    thread.join(180)
    assert not thread.is_alive()
    assert done["summary"].indexed == PHOTOS
    assert_same_bundle(tmp_path / "index", local)
    workers.append(head.add_node(num_cpus=1))


@pytest.mark.timeout(300)
def test_killed_driver_resumes_from_its_shards(cluster, ray_build, photos, local, tmp_path, model_args):
    shards, index = tmp_path / "shards", tmp_path / "index"
    command = [sys.executable, "-m", "indexer", "build", str(photos), "--index", str(index), *model_args,
               "--batch-size", str(GROUP), "--ray", cluster[0].address, "--shards", str(shards), "--json"]
    env = {**os.environ, "PYTHONPATH": ROOT}
    driver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    store = None
    deadline = time.monotonic() + 180
    while store is None or not store.keys():
        assert driver.poll() is None, "the build ended before it could be killed"
        assert time.monotonic() < deadline, "no shard was written"
        store = ShardStore(str(shards)) if shards.exists() else None
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = {k: os.stat(store.path(k)).st_mtime_ns for k in store.keys() if store.read(k) is not None}
    made = _embedded_rows(store)
    assert 0 < made < PHOTOS and not os.path.exists(index / "manifest.json")
    summary = ray_build(shards=str(shards))
    assert summary.embedded == PHOTOS - made  # the killed run's shards were reused, not embedded again
    assert {k: os.stat(store.path(k)).st_mtime_ns for k in before} == before
    assert_same_bundle(index, local)
    assert json.loads(json.dumps(summary.to_dict()))["indexed"] == PHOTOS
