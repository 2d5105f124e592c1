import os

from indexer.stages.walk import walk_photos
from tests.photos import save_image


def rels(root, **kwargs):
    return [f.rel for f in walk_photos(root, **kwargs)]


def test_recursive_sorted_case_insensitive(tmp_path):
    save_image(tmp_path / "b" / "x.JPG", 1)
    save_image(tmp_path / "a.png", 2)
    save_image(tmp_path / "b" / "c" / "y.TiFf", 3)
    (tmp_path / "notes.txt").write_text("not a photo")
    assert rels(tmp_path) == ["a.png", "b/c/y.TiFf", "b/x.JPG"]


def test_hidden_files_and_folders_skipped_unless_asked(tmp_path):
    save_image(tmp_path / ".hidden.jpg", 1)
    save_image(tmp_path / ".cache" / "a.jpg", 2)
    save_image(tmp_path / "seen.jpg", 3)
    assert rels(tmp_path) == ["seen.jpg"]
    assert rels(tmp_path, include_hidden=True) == [".cache/a.jpg", ".hidden.jpg", "seen.jpg"]


def test_excluded_folder_never_entered(tmp_path):
    save_image(tmp_path / "index" / "thumbnails" / "1.jpg", 1)
    save_image(tmp_path / "a.jpg", 2)
    assert rels(tmp_path, exclude=[tmp_path / "index"]) == ["a.jpg"]


def test_symlink_cycles_end_and_linked_folders_are_followed_once(tmp_path):
    save_image(tmp_path / "real" / "a.jpg", 1)
    os.symlink(tmp_path, tmp_path / "real" / "loop")  # points back up
    os.symlink(tmp_path / "real", tmp_path / "alias")
    found = rels(tmp_path)
    assert found.count("alias/a.jpg") + found.count("real/a.jpg") == 1


def test_dangling_symlink_ignored(tmp_path):
    os.symlink(tmp_path / "missing.jpg", tmp_path / "dangling.jpg")
    assert rels(tmp_path) == []


def test_stat_recorded(tmp_path):
    path = save_image(tmp_path / "a.jpg", 1)
    (photo,) = walk_photos(tmp_path)
    st = path.stat()
    assert (photo.size, photo.mtime_ns, photo.path) == (st.st_size, st.st_mtime_ns, str(path))


def test_linked_folders_are_followed_only_inside_the_root_unless_asked(tmp_path):
    """The audit's case: a symlinked folder pointing out of the photo folder was indexed (and served)."""
    root = tmp_path / "photos"
    save_image(root / "real" / "a.jpg", 1)
    save_image(tmp_path / "outside" / "secret.jpg", 2)
    os.symlink(tmp_path / "outside", root / "out")
    os.symlink(root / "real", root / "alias")  # inside: followed (and "real" is then not walked again)
    assert rels(root) == ["alias/a.jpg"]
    assert rels(root, follow_links=True) == ["alias/a.jpg", "out/secret.jpg"]


def test_a_root_given_through_a_link_is_walked(tmp_path):
    save_image(tmp_path / "photos" / "album" / "a.jpg", 1)
    os.symlink(tmp_path / "photos", tmp_path / "link")
    assert rels(tmp_path / "link") == ["album/a.jpg"]


def test_symlinked_files_are_never_indexed(tmp_path):
    # The service opens photos without following links, so a linked file could never be shown.
    root = tmp_path / "photos"
    save_image(root / "a.jpg", 1)
    save_image(tmp_path / "outside.jpg", 2)
    os.symlink(root / "a.jpg", root / "b.jpg")
    os.symlink(tmp_path / "outside.jpg", root / "c.jpg")
    assert rels(root) == rels(root, follow_links=True) == ["a.jpg"]
