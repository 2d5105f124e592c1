"""The build on a Ray cluster: a local cluster of three nodes on this machine, with the tiny model.

The distributed build must give the local build's bundle (ids, paths,
hashes, vectors, skipped files, search results); a worker node lost mid-job,
a killed driver and a damaged shard must all end in that same bundle, and
shards already made are not embedded again.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

from indexer import BuildConfig, build
from indexer.cluster.shards import ShardStore
from search.index import tuning
from search.query.searcher import Searcher
from search.store.bundle import Bundle
from tests.photos import add_broken_files, make_photo_tree, save_image
from web import ServeConfig, create_app

pytestmark = [pytest.mark.ray, pytest.mark.timeout(420)]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = 72
GROUP = 8  # --batch-size: files per group (and shard), about
ONDISK_PHOTOS = 200


@pytest.fixture(scope="module")
def cluster():
    """A head node for the driver alone and two worker nodes of one CPU each, this process the driver."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
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
    index = tmp_path_factory.mktemp("local") / "index"
    build(BuildConfig(photos=str(photos), index=str(index), **_model(tiny_config_file, tiny_checkpoint), workers=0,
                      batch_size=GROUP), progress=False)
    return Bundle.open(index, use_gpu=False)


def _model(config_file, checkpoint):
    return dict(model="tiny-test", model_config=str(config_file), pretrained=str(checkpoint))


@pytest.fixture(scope="module")
def ray_build(cluster, photos, tiny_config_file, tiny_checkpoint):
    """``ray_build(index, **settings)``: build ``photos`` on the cluster; returns the summary."""
    def run(index, **settings):
        options = dict(photos=str(photos), index=str(index), **_model(tiny_config_file, tiny_checkpoint),
                       batch_size=GROUP, ray=cluster[0].address)
        options.update(settings)
        return build(BuildConfig(**options), progress=False)
    return run


@pytest.fixture(scope="module")
def first(ray_build, tmp_path_factory):
    """A build on the cluster, its shards kept at ``--shards``: ``(index, shards, summary)``."""
    base = tmp_path_factory.mktemp("first")
    return base / "index", base / "shards", ray_build(base / "index", shards=str(base / "shards"))


def assert_same_bundle(index, reference, min_cosine=0.9999):
    bundle = Bundle.open(index, use_gpu=False)
    mine, theirs = bundle.metadata.all(), reference.metadata.all()
    assert [(r.id, r.path, r.sha256, r.width, r.height) for r in mine] == \
           [(r.id, r.path, r.sha256, r.width, r.height) for r in theirs]
    np.testing.assert_array_equal(bundle.ids, reference.ids)
    cosines = np.sum(np.asarray(bundle.vectors) * np.asarray(reference.vectors), axis=1)
    assert cosines.min() >= min_cosine
    return bundle


def embedded_rows(store, keys=None):
    """How many vectors the shards ``keys`` (default: all whole ones) hold."""
    tables = [store.read(k) for k in (store.keys() if keys is None else keys)]
    return sum(t.num_rows - t.column("vector").null_count for t in tables if t is not None)


def test_same_bundle_and_results_as_a_local_build(first, local):
    index, shards, summary = first
    assert summary.embedded == summary.indexed == summary.added == PHOTOS
    assert {s["path"]: s["reason"].split(":")[0] for s in summary.skipped} == {
        "broken/bomb.png": "too_many_pixels", "broken/empty.jpg": "empty", "broken/text.png": "not_an_image",
        "broken/truncated.jpg": "corrupt"}
    assert [s["path"] for s in summary.skipped] == sorted(s["path"] for s in summary.skipped)
    assert summary.stages["ray_embed"] > 0
    bundle = assert_same_bundle(index, local)
    assert embedded_rows(ShardStore(str(shards))) == PHOTOS  # --shards keeps them after the build
    ours, theirs = Searcher(bundle, encoder=None), Searcher(local, encoder=None)
    for image_id in (0, 17, 40):
        assert [r.id for r in ours.search_id(image_id, k=10).results] == \
               [r.id for r in theirs.search_id(image_id, k=10).results]


def test_rerun_embeds_only_new_files(first, ray_build, photos):
    index, shards, _ = first
    save_image(photos / "late" / "new.png", 99_001)
    try:
        summary = ray_build(index, shards=str(shards))
        assert (summary.embedded, summary.added, summary.unchanged) == (1, 1, PHOTOS)
    finally:
        (photos / "late" / "new.png").unlink()
        (photos / "late").rmdir()


def wait_for_shard(folder, alive, seconds=300):
    """Wait until a shard file is in ``folder`` while ``alive()``."""
    deadline = time.monotonic() + seconds
    while not (os.path.isdir(folder) and any(n.endswith(".parquet") for n in os.listdir(folder))):
        assert alive(), "the build ended before a shard was seen"
        assert time.monotonic() < deadline, "no shard was written"
        time.sleep(0.05)


def test_lost_worker_node_mid_job(cluster, ray_build, local, tmp_path):
    head, workers = cluster
    index = tmp_path / "index"
    done = {}
    thread = threading.Thread(target=lambda: done.update(summary=ray_build(index)))
    thread.start()
    wait_for_shard(index / "checkpoint" / "shards", thread.is_alive)
    head.remove_node(workers.pop())  # its raylet and every worker process on it die
    thread.join(200)
    workers.append(head.add_node(num_cpus=1))
    assert not thread.is_alive()
    assert done["summary"].indexed == PHOTOS
    assert_same_bundle(index, local)
    assert not os.path.exists(index / "checkpoint")  # shards in the checkpoint folder go with it


def test_killed_driver_resumes_and_damaged_shard_is_redone(cluster, ray_build, photos, local, tmp_path, model_args):
    shards, index = tmp_path / "shards", tmp_path / "index"
    command = [sys.executable, "-m", "indexer", "build", str(photos), "--index", str(index), *model_args,
               "--batch-size", str(GROUP), "--ray", cluster[0].address, "--shards", str(shards), "--json"]
    driver = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": ROOT}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_for_shard(shards, lambda: driver.poll() is None)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    # the cluster stops the dead driver's actors soon after; until then they may finish a group more
    deadline = time.monotonic() + 120
    while any("EmbedGroups" in a["ActorClassName"]  # not Ray Data's own detached actor
              for a in ray._private.state.actors(actor_state_name="ALIVE").values()):
        assert time.monotonic() < deadline, "the killed driver's actors were not stopped"
        time.sleep(0.2)
    store = ShardStore(str(shards))
    whole = [k for k in store.keys() if store.read(k) is not None]
    made = embedded_rows(store, whole)
    assert 0 < made < PHOTOS and not os.path.exists(index / "manifest.json")
    damaged, kept = whole[0], whole[1:]
    with open(store.path(damaged), "r+b") as f:  # a disk error in the middle of a page
        f.seek(os.path.getsize(store.path(damaged)) // 3)
        f.write(b"\xff" * 64)
    assert store.read(damaged) is None
    before = {k: os.stat(store.path(k)).st_mtime_ns for k in kept}
    summary = ray_build(index, shards=str(shards))
    # every file embedded once more, but for those in the killed run's whole shards
    assert summary.embedded == PHOTOS - embedded_rows(store, kept) and summary.embedded > PHOTOS - made
    assert {k: os.stat(store.path(k)).st_mtime_ns for k in kept} == before
    assert store.read(damaged) is not None
    assert_same_bundle(index, local)


@pytest.fixture(scope="module")
def many_photos(tmp_path_factory):
    """Enough photos for an on-disk index to train on (``search.index.ondisk.MIN_VECTORS``)."""
    root = tmp_path_factory.mktemp("many") / "photos"
    make_photo_tree(root, ONDISK_PHOTOS)
    return root


def test_on_disk_index_build_serves_like_an_exact_scan(ray_build, many_photos, tmp_path, tiny_config_file,
                                                       tiny_checkpoint, encoder):
    index = tmp_path / "ondisk"
    build(BuildConfig(photos=str(many_photos), index=str(tmp_path / "local"), workers=0, batch_size=GROUP,
                      **_model(tiny_config_file, tiny_checkpoint)), progress=False)
    local = Bundle.open(tmp_path / "local", use_gpu=False)
    summary = ray_build(index, photos=str(many_photos), index_type="ondisk")
    assert summary.embedded == summary.indexed == ONDISK_PHOTOS
    bundle = assert_same_bundle(index, local, min_cosine=0.999)  # float16 vectors
    assert bundle.vectors.stored_dtype == np.float16 and bundle.index.memory_mapped
    assert bundle.manifest.index_type.startswith("IVF") and bundle.manifest.index_params["target_met"]
    vectors = np.asarray(bundle.vectors)
    searcher = Searcher(bundle)
    found, truth = [], []
    for image_id in range(0, ONDISK_PHOTOS, 10):  # "more like this": the image itself left out
        found.append([r.id for r in searcher.search_id(image_id, k=10).results])
        exact = np.argsort(-(vectors @ vectors[image_id]), kind="stable")
        truth.append([i for i in exact if i != image_id][:10])
    assert tuning.recall(np.array(found), np.array(truth)) >= 0.95
    app = create_app(ServeConfig(index=str(index), photos=str(many_photos), device="cpu", warmup=False),
                     searcher=Searcher(bundle, encoder))
    response = app.test_client().post("/api/search", json={"id": 5, "k": 10})
    assert response.status_code == 200
    assert [r["id"] for r in response.get_json()["results"]] == [r.id for r in searcher.search_id(5, k=10).results]
    # a re-run embeds the new file only; the index is rebuilt, every other image keeps its id
    save_image(many_photos / "late" / "new.png", 99_002)
    try:
        summary = ray_build(index, photos=str(many_photos), index_type="ondisk")
    finally:
        (many_photos / "late" / "new.png").unlink()
        (many_photos / "late").rmdir()
    assert (summary.embedded, summary.added, summary.unchanged) == (1, 1, ONDISK_PHOTOS)
    again = Bundle.open(index, use_gpu=False)
    assert again.manifest.generation == 2 and again.count == ONDISK_PHOTOS + 1
    before = {r.path: r.id for r in bundle.metadata.all()}
    assert {r.path: r.id for r in again.metadata.all() if r.path in before} == before
    np.testing.assert_array_equal(np.asarray(again.vectors)[:ONDISK_PHOTOS], vectors)


def test_summary_times_the_actor_pool(first):
    """The Ray build reports its start-up apart from the embedding (benchmarks/bench_ray.py reads these)."""
    stages = first[2].stages
    assert 0 < stages["ray_start"] <= stages["ray_pool_ready"] <= stages["ray_embed"]
    assert stages["load_model"] > 0 and stages["ray_idle"] >= 0 and 0 <= stages["ray_tail"] <= stages["ray_embed"]


def test_pool_stages_from_the_groups_timeline():
    from indexer.cluster.actors import pool_stages

    # actor a: made at 10, ready at 15, groups 15.5-17.5 and 18-20; actor b: made at 11, ready 17, one group 17-21
    groups = [{"actor": np.array(["a", "b"]), "created": np.array([10.0, 11.0]), "ready": np.array([15.0, 17.0]),
               "started": np.array([18.0, 17.0]), "finished": np.array([20.0, 21.0])},
              {"actor": np.array(["a"]), "created": np.array([10.0]), "ready": np.array([15.0]),
               "started": np.array([15.5]), "finished": np.array([17.5])}]
    assert pool_stages(groups, start=9.0) == {"ray_start": 1.0, "load_model": 11.0, "ray_pool_ready": 8.0,
                                              "ray_idle": 1.0, "ray_tail": 1.0}
    assert pool_stages([], start=9.0) == {}
