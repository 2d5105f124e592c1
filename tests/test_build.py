"""Building and updating bundles through the pipeline, with the tiny model."""

import multiprocessing
import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from indexer import BuildError, Stages
from indexer.checkpoint import Checkpoint
from indexer.executors import workers
from indexer.stages import read
from search.store.bundle import Bundle
from search.errors import BundleLockedError, ModelMismatchError
from search.query.searcher import Searcher
from tests.photos import add_broken_files, make_image, make_photo_tree, save_image

FORMATS = (".jpg", ".png", ".webp", ".gif", ".bmp", ".tif", ".JPEG", ".TIFF")


def test_mixed_folder_every_valid_image_once_every_broken_one_reported(tmp_path, make_config):
    photos = tmp_path / "photos"
    good = make_photo_tree(photos, 24, exts=FORMATS)
    expected_bad = add_broken_files(photos)
    save_image(photos / ".hidden" / "secret.jpg", 500)
    summary = make_config(photos, max_pixels=100_000_000)()
    assert summary.indexed == summary.added == summary.embedded == len(good)
    reasons = {s["path"]: s["reason"] for s in summary.skipped}
    assert set(reasons) == set(expected_bad)
    for path, prefix in expected_bad.items():
        assert reasons[path].startswith(prefix), reasons[path]
    bundle = Bundle.open(tmp_path / "index")
    paths = sorted(r.path for r in bundle.metadata.all())
    assert paths == sorted(str(p.relative_to(photos)) for p in good)
    assert len(set(r.sha256 for r in bundle.metadata.all())) == len(good)


def test_second_run_embeds_nothing_and_loads_no_model(tmp_path, make_config):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 12)
    make_config(photos)()
    summary = make_config(photos, stages=Stages(load_encoder=lambda choice: pytest.fail("model loaded")))()
    assert (summary.unchanged, summary.embedded, summary.added, summary.removed) == (12, 0, 0, 0)


def test_incremental_counts_are_exact(tmp_path, make_config):
    photos = tmp_path / "photos"
    paths = make_photo_tree(photos, 20)
    make_config(photos)()
    before = {r.path: r for r in Bundle.open(tmp_path / "index").metadata.all()}
    save_image(photos / "new1.jpg", 9001)                                     # added
    save_image(photos / "new2.png", 9002)                                     # added
    save_image(paths[0], 9003)                                                # updated (same path, new content)
    os.utime(paths[1], ns=(1, 1))                                             # touched: unchanged
    paths[2].rename(photos / "renamed.webp")                                  # renamed
    shutil.copy(paths[3], photos / f"copy_of_3{paths[3].suffix}")           # duplicate: added, not embedded
    paths[4].unlink()                                                         # removed
    paths[5].unlink()                                                         # removed
    summary = make_config(photos)()
    counts = {k: getattr(summary, k) for k in ("added", "updated", "renamed", "removed", "unchanged", "embedded")}
    assert counts == dict(added=3, updated=1, renamed=1, removed=2, unchanged=16, embedded=3)
    assert summary.indexed == 20 + 3 - 2
    after = {r.path: r for r in Bundle.open(tmp_path / "index").metadata.all()}
    assert after["renamed.webp"].id == before[str(paths[2].relative_to(photos))].id  # a rename keeps its id
    assert after[str(paths[0].relative_to(photos))].id == before[str(paths[0].relative_to(photos))].id
    assert max(before[p].id for p in before) < after["new1.jpg"].id


def test_stored_vectors_equal_the_encoder_and_text_ranking_is_brute_force(tmp_path, make_config, encoder):
    photos = tmp_path / "photos"
    paths = make_photo_tree(photos, 15, exts=(".png",))
    make_config(photos)()
    searcher = Searcher.open(str(tmp_path / "index"), device="cpu")
    bundle = searcher.bundle
    for record in bundle.metadata.all()[:5]:
        expected = encoder.encode_images([Image.open(photos / record.path).convert("RGB")])[0]
        assert float(bundle.vector(record.id) @ expected) >= 0.999
    query = searcher.encoder.encode_texts(["a photo of a red square"])[0]  # in the searcher's precision
    page = searcher.search_text("a photo of a red square", k=10)
    order = np.argsort(-(np.asarray(bundle.vectors) @ query), kind="stable")[:10]
    assert [r.id for r in page.results] == bundle.ids[order].tolist()
    assert page.total == len(paths)


def test_worker_processes_give_the_same_vectors(tmp_path, make_config):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 10)
    make_config(photos, index=str(tmp_path / "inline"))()
    make_config(photos, index=str(tmp_path / "pooled"), workers=2)()
    a, b = Bundle.open(tmp_path / "inline"), Bundle.open(tmp_path / "pooled")
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5)


def test_workers_that_never_get_the_cpu_cannot_stall_the_build(tmp_path, make_config, monkeypatch):
    """Workers decode at idle priority; starved completely, the builder decodes every chunk itself."""
    photos = tmp_path / "photos"
    make_photo_tree(photos, 40)
    make_config(photos, index=str(tmp_path / "inline"))()
    monkeypatch.setattr(workers, "lowest_priority", lambda: time.sleep(3600))  # in the forked workers
    summary = make_config(photos, index=str(tmp_path / "starved"), workers=2)()
    assert summary.embedded == 40 and "wait_for_decode" not in summary.stages and summary.stages["decode"] > 0
    a, b = Bundle.open(tmp_path / "inline"), Bundle.open(tmp_path / "starved")
    assert a.metadata.all() == b.metadata.all()
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5)


def test_decode_chunks_are_taken_once():
    claims = multiprocessing.get_context("fork").Array("b", 3)
    assert [workers.claim(claims, n) for n in (0, 2, 0, 2, 1)] == [True, True, False, False, True]


def test_unreadable_and_vanishing_files_are_skipped(tmp_path, make_config, monkeypatch):
    photos = tmp_path / "photos"
    paths = make_photo_tree(photos, 6)
    real_open = open

    def flaky_open(path, *args, **kwargs):
        if str(path) == str(paths[0]):
            raise PermissionError(13, "Permission denied")
        if str(path) == str(paths[1]):
            raise FileNotFoundError(2, "No such file")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(read, "open", flaky_open, raising=False)
    summary = make_config(photos)()
    reasons = {s["path"]: s["reason"] for s in summary.skipped}
    assert reasons[str(paths[0].relative_to(photos))].startswith("unreadable")
    assert reasons[str(paths[1].relative_to(photos))].startswith("vanished")
    assert summary.indexed == 4


def test_interrupted_build_resumes_without_re_embedding(tmp_path, make_config, interrupt_build):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 40)
    interrupt_build(photos)
    assert not os.path.exists(tmp_path / "index" / "manifest.json")
    summary = make_config(photos)()
    assert summary.embedded == 40 - 16 and summary.reused == 16 and summary.indexed == 40
    assert not os.path.exists(Checkpoint(str(tmp_path / "index")).dir)


def test_failed_write_keeps_the_previous_bundle_and_the_new_embeddings(tmp_path, make_config):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 8)
    make_config(photos)()
    save_image(photos / "more.jpg", 4242)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with pytest.raises(BuildError, match="No space left on device; the previous index at .* is unchanged"):
        make_config(photos, stages=Stages(write=disk_full))()
    assert Bundle.open(tmp_path / "index").count == 8
    summary = make_config(photos)()  # the checkpoint kept the new photo's embedding
    assert (summary.added, summary.embedded, summary.reused, summary.indexed) == (1, 0, 1, 9)


def test_other_model_on_existing_bundle_is_refused(tmp_path, make_config):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 3)
    make_config(photos)()
    save_image(photos / "more.jpg", 4243)
    with pytest.raises(ModelMismatchError, match="built with tiny-test"):
        make_config(photos, model="ViT-B-32", pretrained=None)()


def test_missing_folder_and_concurrent_build(tmp_path, make_config):
    with pytest.raises(BuildError, match="photo folder not found"):
        make_config(tmp_path / "nope")()
    photos = tmp_path / "photos"
    make_photo_tree(photos, 2)
    from search.store.writer import bundle_lock

    with bundle_lock(str(tmp_path / "index")):
        with pytest.raises(BundleLockedError):
            make_config(photos)()


def test_default_index_folder_inside_photos_is_not_indexed(tmp_path, make_config):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 3)
    make_config(photos, index=None)()
    save_image(photos / ".photoindex" / "thumbnails" / "0.jpg", 1)
    summary = make_config(photos, index=None)()
    assert summary.indexed == 3 and summary.index == str(photos / ".photoindex")


def test_all_images_decode_identically_to_the_query_path(tmp_path, make_config, encoder):
    photos = tmp_path / "photos"
    img = make_image(31, (300, 200))
    img.save(photos.mkdir() or photos / "one.jpg", quality=95)
    make_config(photos)()
    searcher = Searcher.open(str(tmp_path / "index"), device="cpu")
    page = searcher.search_image(str(photos / "one.jpg"), k=1)
    assert page.results[0].path == "one.jpg" and page.results[0].score == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("workers", [0, 2])
def test_decoding_on_the_device_gives_the_same_bundle(tmp_path, make_config, workers):
    """--decode device (torchvision on the CPU device here): JPEGs read by threads and decoded in
    batches; other formats, CMYK JPEGs and JPEGs the device rejects go through Pillow."""
    photos = tmp_path / "photos"
    make_photo_tree(photos, 16, exts=(".jpg", ".png", ".jpeg", ".webp"))
    exif = Image.Exif()
    exif[0x0112] = 6
    make_image(5, (120, 80)).save(photos / "rotated.jpg", exif=exif)
    make_image(6, (120, 80)).convert("CMYK").save(photos / "cmyk.jpg")
    expected_bad = add_broken_files(photos)
    shutil.copy(photos / "broken" / "truncated.jpg", photos / "broken" / "truncated-copy.jpg")
    expected_bad["broken/truncated-copy.jpg"] = "corrupt"
    pillow = make_config(photos, index=str(tmp_path / "pillow"), decode="workers")()
    device = make_config(photos, index=str(tmp_path / "device"), decode="device", workers=workers)()
    assert device.stages["decode_on_device"] > 0 and "decode_on_device" not in pillow.stages
    assert (device.decoded_on_device, pillow.decoded_on_device) == (9, 0)  # the RGB JPEGs that decode
    assert (device.indexed, device.embedded, device.reused) == (pillow.indexed, pillow.embedded, pillow.reused) == (
        18, 18, 0)
    assert {s["path"]: s["reason"].split(":")[0] for s in device.skipped} == expected_bad
    a, b = Bundle.open(tmp_path / "pillow"), Bundle.open(tmp_path / "device")
    assert a.metadata.all() == b.metadata.all()
    assert np.min(np.sum(a.vectors * b.vectors, axis=1)) >= 0.99



def test_records_carry_the_identity_of_each_file_indexed(tmp_path, make_config):
    paths = make_photo_tree(tmp_path / "photos", 3)
    make_config(tmp_path / "photos")()
    bundle = Bundle.open(tmp_path / "index", use_gpu=False)
    for r in bundle.metadata.all():
        st = os.stat(tmp_path / "photos" / r.path)
        assert (r.dev, r.ino, r.ctime_ns) == (st.st_dev, st.st_ino, st.st_ctime_ns)
    # a copy put in place of a photo, with the same size and mtime: read again, found to be the same photo
    shutil.copy2(paths[0], str(paths[0]) + ".tmp")
    os.replace(str(paths[0]) + ".tmp", paths[0])
    summary = make_config(tmp_path / "photos")()
    assert (summary.unchanged, summary.embedded, summary.reused) == (3, 0, 1)
    record = {r.path: r for r in Bundle.open(tmp_path / "index", use_gpu=False).metadata.all()}["album0/img0000.jpg"]
    assert record.ino == os.stat(paths[0]).st_ino
