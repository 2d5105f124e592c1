"""Files a build cannot index: remembered between builds, bounded in size, never waited on.

Issue 13 (re-runs over broken files, HEIC without a decoder) and issue 14
(items 11 and 12: a huge sparse file, a FIFO swapped in after the walk).
"""

import importlib
import os

import pytest

from indexer import Stages
from indexer.stages import read
from indexer.stages.read import read_file
from indexer.stages.walk import PhotoFile
from search.encoding import images
from search.store.bundle import Bundle
from search.store.skipped import SKIPPED_FILE
from tests.photos import add_broken_files, make_photo_tree, save_image


def no_model(choice):
    pytest.fail("the model was loaded")


def generation(index):
    return Bundle.open(index, use_gpu=False).manifest.generation


def test_rerun_over_broken_files_loads_no_model_and_writes_no_generation(tmp_path, make_config):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 6)
    expected = add_broken_files(photos)
    first = make_config(photos)()
    assert {s["path"] for s in first.skipped} == set(expected)
    gen = generation(tmp_path / "index")
    again = make_config(photos, stages=Stages(load_encoder=no_model))()
    assert again.skipped == first.skipped  # still listed, with their reasons
    assert (again.unchanged, again.indexed, again.embedded) == (6, 6, 0)
    assert generation(tmp_path / "index") == gen
    # a broken file that changes is retried: fixed, it is indexed
    save_image(photos / "broken" / "truncated.jpg", 5)
    fixed = make_config(photos)()
    assert (fixed.added, fixed.embedded) == (1, 1)
    assert {s["path"] for s in fixed.skipped} == set(expected) - {"broken/truncated.jpg"}
    assert generation(tmp_path / "index") == gen + 1


def test_touched_broken_file_is_read_again(tmp_path, make_config, monkeypatch):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 3)
    add_broken_files(photos)
    make_config(photos)()
    opened = []
    real_read_file = read.read_file
    monkeypatch.setattr(read, "read_file", lambda photo, *a: opened.append(photo.rel) or real_read_file(photo, *a))
    os.utime(photos / "broken" / "text.png", ns=(1, 1))
    summary = make_config(photos)()
    assert opened == ["broken/text.png"]  # the other broken files are not read again
    assert any(s["path"] == "broken/text.png" and s["reason"].startswith("not_an_image") for s in summary.skipped)
    assert make_config(photos, stages=Stages(load_encoder=no_model))().embedded == 0


def test_skipped_files_are_retried_when_the_limits_change(tmp_path, make_config):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 2)
    add_broken_files(photos)  # bomb.png has 144 MP
    make_config(photos)()
    summary = make_config(photos, max_pixels=200_000_000)()
    assert summary.added == 1 and "broken/bomb.png" not in {s["path"] for s in summary.skipped}


def test_bundle_without_a_skipped_list_reads_its_broken_files_once_more(tmp_path, make_config):
    """Bundles written before skipped.json existed stay readable; their broken files are retried once."""
    photos = tmp_path / "photos"
    make_photo_tree(photos, 3)
    add_broken_files(photos)
    make_config(photos)()
    bundle = Bundle.open(tmp_path / "index", use_gpu=False)
    os.unlink(os.path.join(bundle.path, bundle.manifest.generation_dir, SKIPPED_FILE))
    assert len(make_config(photos)().skipped) == 4
    assert make_config(photos, stages=Stages(load_encoder=no_model))().unchanged == 3


def test_heic_without_a_decoder_is_listed_with_the_install_hint(tmp_path, make_config, monkeypatch):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 3)
    save_image(photos / "IMG_0001.jpg", 9)
    os.rename(photos / "IMG_0001.jpg", photos / "IMG_0001.HEIC")  # the content does not matter: no decoder
    monkeypatch.setattr(images, "heif_available", lambda: False)
    summary = make_config(photos)()
    assert summary.skipped == [{"path": "IMG_0001.HEIC",
                                "reason": "unsupported: no decoder for .heic files is installed: pip install "
                                          "pillow-heif"}]
    assert make_config(photos, stages=Stages(load_encoder=no_model))().skipped == summary.skipped
    # with the decoder installed the file is retried (here: found to be a JPEG under another name)
    monkeypatch.setattr(images, "heif_available", lambda: True)
    assert make_config(photos)().skipped != summary.skipped


def test_huge_sparse_file_is_skipped_unread(tmp_path, make_config, monkeypatch):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 3)
    with open(photos / "huge.jpg", "wb") as f:
        f.truncate(40 << 30)  # 40 GB, no blocks
    real_read_file = read.read_file

    def read_but_not_huge(photo, *args):
        assert photo.rel != "huge.jpg", "a file over the limit was opened"
        return real_read_file(photo, *args)

    monkeypatch.setattr(read, "read_file", read_but_not_huge)
    summary = make_config(photos)()
    assert summary.indexed == 3
    assert summary.skipped == [{"path": "huge.jpg", "reason": f"too_large: the file has {40 << 30} bytes, over "
                                                             f"the limit of {512 << 20} (--max-file-bytes)"}]


def test_read_checks_the_size_on_the_open_file(tmp_path):
    """A file that grew past the limit after the walk is not read whole."""
    path = tmp_path / "grown.jpg"
    path.write_bytes(b"\xff" * 10)
    photo = PhotoFile(str(path), "grown.jpg", 10, 0)
    with open(path, "r+b") as f:
        f.truncate(40 << 30)
    skipped = read_file(photo, max_bytes=1 << 20)
    assert skipped.reason.startswith("too_large: the file has 42949672960 bytes")


@pytest.mark.timeout(60)
def test_photo_swapped_for_a_fifo_after_the_walk_is_skipped(tmp_path, make_config, monkeypatch):
    photos = tmp_path / "photos"
    paths = make_photo_tree(photos, 4)
    build_module = importlib.import_module("indexer.build")
    real_walk = build_module.walk_photos

    def walk_then_swap(*args, **kwargs):
        found = list(real_walk(*args, **kwargs))
        os.unlink(paths[0])
        os.mkfifo(paths[0])  # no writer will ever come
        return found

    monkeypatch.setattr(build_module, "walk_photos", walk_then_swap)
    summary = make_config(photos)()
    assert summary.indexed == 3
    assert summary.skipped == [{"path": str(paths[0].relative_to(photos)),
                                "reason": "not_a_file: no longer a regular file (replaced since the walk)"}]


def test_indexed_photo_that_grows_over_the_limit_leaves_the_index(tmp_path, make_config):
    photos = tmp_path / "photos"
    paths = make_photo_tree(photos, 3)
    make_config(photos)()
    limit = max(p.stat().st_size for p in paths) + 10
    with open(paths[0], "ab") as f:
        f.write(b"\0" * limit)
    summary = make_config(photos, max_file_bytes=limit)()
    assert (summary.removed, summary.unchanged, summary.indexed) == (1, 2, 2)
    assert [s["path"] for s in summary.skipped] == [str(paths[0].relative_to(photos))]
    assert str(paths[0].relative_to(photos)) not in {r.path for r in Bundle.open(tmp_path / "index").metadata.all()}
